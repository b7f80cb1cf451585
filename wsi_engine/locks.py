"""An exclusive lock on an output folder, so two runs never write the same OUT.

The lock is a file ``OUT/.wsi-engine.lock`` created with ``O_EXCL`` holding the
owner's host name and process id. A lock left by a process that no longer
exists on this host (a run killed with ``kill -9``) is taken over; a live one
makes the second run stop with :class:`~wsi_engine.errors.OutputError`.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import psutil

from wsi_engine.errors import OutputError

LOCK_NAME = ".wsi-engine.lock"


class RunLock:
    """Context manager holding ``OUT/.wsi-engine.lock`` for the duration of a run."""

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / LOCK_NAME
        self._held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._stale():
                    self.path.unlink(missing_ok=True)
                    continue
                owner = self._owner()
                raise OutputError(
                    f"another wsi-engine run (pid {owner.get('pid')} on {owner.get('host')}) is writing this folder",
                    path=self.path.parent,
                    hint="wait for it to finish, or choose another --out",
                ) from None
            except PermissionError as error:
                raise OutputError("output folder is not writable", path=self.path.parent) from error
            with os.fdopen(fd, "w") as handle:
                json.dump({"host": socket.gethostname(), "pid": os.getpid()}, handle)
            self._held = True
            return
        raise OutputError("could not take the run lock", path=self.path)

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False

    def _owner(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _stale(self) -> bool:
        owner = self._owner()
        if not owner:  # half-written by a killed process
            return True
        if owner.get("host") != socket.gethostname():
            return False
        pid = owner.get("pid")
        return not (isinstance(pid, int) and psutil.pid_exists(pid))

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
