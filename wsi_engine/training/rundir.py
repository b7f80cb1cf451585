"""Run directories of the trainers (``fit``, ``fit-patches``): claim, clear, describe, read back.

A run directory holds one run: ``run.json`` (``format`` names the kind of
run, ``status`` is ``complete`` once it finished) beside the run's files.
Writing one: :func:`check_run_dir` before any work (refuse a directory holding
a run unless ``overwrite``, or holding anything else), then, inside
:func:`writing_run` (the directory's lock held, earlier files removed), the
files and the run's record as ``run.json`` (typed and read back in :mod:`.records`).
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wsi_engine import atomic
from wsi_engine.errors import OutputError
from wsi_engine.locks import LOCK_NAME, RunLock
from wsi_engine.slide.ids import sanitize_name
from wsi_engine.training.records import RUN_FILE

__all__ = [
    "RUN_FILE",
    "check_run_dir",
    "clear_run_dir",
    "run_id_for",
    "write_json",
    "write_rows",
    "writing_run",
]


def check_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse a run directory that holds a run (unless ``overwrite``) or unrelated files."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise OutputError("the run directory is a file", path=run_dir)
    entries = [p for p in run_dir.iterdir() if p.name != LOCK_NAME]
    if not entries:
        return
    if not (run_dir / RUN_FILE).exists():
        raise OutputError(
            "the run directory is not empty and holds no wsi-engine run",
            path=run_dir,
            hint="choose a new --out",
        )
    if not overwrite:
        raise OutputError(
            "the run directory already holds a run",
            path=run_dir,
            hint="pass --overwrite to replace it",
        )


def clear_run_dir(run_dir: Path) -> None:
    """Remove an earlier run's files (keeps the lock of the current run)."""
    for entry in run_dir.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextmanager
def writing_run(run_dir: Path) -> Iterator[None]:
    """Hold the lock of ``run_dir`` and start it empty of an earlier run's files."""
    with RunLock(run_dir):
        clear_run_dir(run_dir)
        yield


def run_id_for(run_dir: Path, run_id: str | None) -> str:
    """``run_id`` or, by default, the run directory's name, sanitised."""
    return sanitize_name(run_id or run_dir.resolve().name)


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    atomic.write_json(path, payload)


def write_rows(
    path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...] | list[str]
) -> None:
    """A CSV of ``rows`` with ``columns`` (missing values empty, extra keys dropped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
