"""Exclusive locks that cannot outlive their owner: one writer per output folder or per store.

A lock is a file (``OUT/.wsi-engine.lock`` for a folder, ``<slide_id>.zarr.lock``
beside a store) on which the owner holds an OS lock (``flock``) for as long as
it runs. The kernel drops that lock when the process ends, however it ends
(``kill -9``, a crash, a container restart), so a lock is held exactly while
its owner lives: a file left behind, or one naming a process id that was
reused (the new run in a container is PID 1 again), is taken over. The file
also records the owner's host, process id and start time, for the message a
second writer is refused with (:class:`~wsi_engine.errors.OutputError`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

import psutil

from wsi_engine.errors import OutputError, output_error

LOCK_NAME = ".wsi-engine.lock"
"""Lock file of an output folder."""

STORE_LOCK_SUFFIX = ".lock"
"""A store's lock is ``<slide_id>.zarr.lock`` beside it (outside the Zarr group)."""


class FileLock:
    """Context manager holding an exclusive OS lock on ``path`` while the block runs.

    ``subject`` is the locked folder or store, ``what`` names it in the
    message a second writer gets ("this folder", "this store").
    """

    def __init__(self, path: str | Path, subject: str | Path, what: str):
        self.path = Path(path)
        self.subject = Path(subject)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(
                f"cannot create the folder ({error.strerror})", path=self.path.parent
            ) from error
        for _ in range(5):
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputError(f"cannot lock ({error.strerror})", path=self.path) from error
                owner = self.owner()
                raise OutputError(
                    f"another wsi-engine run (pid {owner.get('pid')} on {owner.get('host')}) is writing {self.what}",
                    path=self.subject,
                    hint="wait for it to finish, or choose another output",
                ) from None
            if not self._same_file(fd):  # unlinked by the previous owner as we opened it: again
                os.close(fd)
                continue
            self._fd = fd
            try:
                self._write_owner(fd)
            except OSError as error:  # a full disk
                self.release()
                raise output_error(error, self.path) from error
            return
        raise OutputError("could not take the lock", path=self.path)

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # while still locked: nobody else holds this file
            os.close(self._fd)
            self._fd = None

    def owner(self) -> dict[str, Any]:
        """The owner recorded in the file: ``host``, ``pid``, ``started`` (process start, s since epoch).

        ``{}`` when the file is gone or holds no JSON object.
        """
        try:
            recorded = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return recorded if isinstance(recorded, dict) else {}

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as error:
            raise OutputError(
                f"cannot create the lock file ({error.strerror})",
                path=self.path,
                hint="check that the output location is writable",
            ) from error

    def _same_file(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def _write_owner(self, fd: int) -> None:
        process = psutil.Process()
        owner = {"host": socket.gethostname(), "pid": process.pid, "started": process.create_time()}
        data = json.dumps(owner).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RunLock(FileLock):
    """The lock of an output folder: ``OUT/.wsi-engine.lock``."""

    def __init__(self, out_dir: str | Path):
        super().__init__(Path(out_dir) / LOCK_NAME, out_dir, "this folder")


class StoreLock(FileLock):
    """The lock of one store (``<slide_id>.zarr.lock`` beside it), held by a command writing into it."""

    def __init__(self, store: str | Path):
        store = Path(store)
        super().__init__(store.with_name(store.name + STORE_LOCK_SUFFIX), store, "this store")
