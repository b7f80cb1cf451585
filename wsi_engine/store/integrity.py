"""What a complete array must hold on disk, and the checks that it still does (docs/store.md, "Integrity").

Zarr returns the fill value for a chunk file that is absent, so a store copied
partway or damaged on disk would otherwise read as plausible zeros. When a
writer completes an array it *seals* it: it lists the array's chunk files (a
sharded array's files are its shards) and records each file's key and CRC-32C
in the array attribute :data:`INTEGRITY_KEY`. A chunk Zarr did not write
because it equalled the fill value is not listed, and reads as that value.

Readers check an array's listing against the record before its first use
(cheap: one directory walk) and the CRC of every chunk file they read; a
missing, unexpected-size or corrupt chunk is a :class:`StoreError` (exit 5)
naming the slide, array, chunk and the command that rebuilds it.
:func:`verify_store` checks every sealed array of a store completely
(``wsi-engine verify``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c  # zarr's own dependency for its crc32c codec
import zarr

from wsi_engine.errors import StoreError
from wsi_engine.store import layout

INTEGRITY_KEY = "wsi_engine_integrity"
"""Array attribute holding ``{"algorithm": "crc32c", "chunks": {key: "<8 hex digits>"}}``."""

ALGORITHM = "crc32c"
_METADATA = "zarr.json"


def crc32c_file(path: Path) -> str:
    """CRC-32C of a file's bytes as 8 hex digits."""
    return f"{google_crc32c.value(path.read_bytes()):08x}"


def array_dir(store_path: Path, array: zarr.Array) -> Path:
    """Directory of ``array`` inside the store at ``store_path``."""
    return Path(store_path) / array.path


def chunk_files(directory: Path) -> dict[str, Path]:
    """{chunk key (``c/0/0``): file} of every chunk file under an array's directory."""
    files: dict[str, Path] = {}
    for parent, _, names in os.walk(directory):
        for name in names:
            path = Path(parent) / name
            key = path.relative_to(directory).as_posix()
            if key != _METADATA:
                files[key] = path
    return files


def seal(store_path: Path, array: zarr.Array) -> None:
    """Record the chunk files ``array`` holds now and their checksums (call when it is complete)."""
    files = chunk_files(array_dir(store_path, array))
    record = {
        "algorithm": ALGORITHM,
        "chunks": {k: crc32c_file(p) for k, p in sorted(files.items())},
    }
    array.attrs[INTEGRITY_KEY] = record


def unseal(array: zarr.Array) -> None:
    """Drop the record of an array that is being rewritten."""
    if INTEGRITY_KEY in array.attrs:
        del array.attrs[INTEGRITY_KEY]


def record(array: zarr.Array) -> dict[str, str] | None:
    """{chunk key: crc} recorded for ``array``, or ``None`` when it was never sealed."""
    value = array.attrs.get(INTEGRITY_KEY)
    if not isinstance(value, dict) or value.get("algorithm") != ALGORITHM:
        return None
    chunks = value.get("chunks")
    return dict(chunks) if isinstance(chunks, dict) else None


@dataclass(frozen=True)
class Problem:
    """One missing or corrupt chunk (or an unsealed array) of a store."""

    store: Path
    slide_id: str
    array: str
    chunk: str
    what: str
    """``missing``, ``corrupt`` (checksum differs) or ``unsealed``"""
    rebuild: str
    """the command that rebuilds the array"""

    def __str__(self) -> str:
        where = f"slide {self.slide_id}, array {self.array}"
        if self.chunk:
            where += f", chunk {self.chunk}"
        return f"{self.store}: {where}: {self.what} (rebuild with `{self.rebuild}`)"

    def error(self) -> StoreError:
        where = f"array {self.array}" + (f", chunk {self.chunk}" if self.chunk else "")
        return StoreError(
            f"slide {self.slide_id}: {where} is {self.what}",
            path=self.store,
            hint=f"rebuild it with `{self.rebuild}`; `wsi-engine verify` checks the whole store",
        )


class ArrayGuard:
    """Checks of one sealed array: presence of every recorded chunk, CRC of chunks read."""

    def __init__(self, store_path: Path, store_attrs: dict[str, Any], array: zarr.Array):
        self.store_path = Path(store_path)
        self.store_attrs = store_attrs
        self.array = array
        self.directory = array_dir(self.store_path, array)
        self.chunks = record(array)
        self._by_block: dict[int, list[str]] = {}
        for key in self.chunks or ():
            self._by_block.setdefault(_row_block(key), []).append(key)
        self._checked: set[str] = set()

    def problem(self, chunk: str, what: str) -> Problem:
        slide_id = str(self.store_attrs.get("slide", {}).get("id", self.store_path.name))
        return Problem(
            self.store_path,
            slide_id,
            self.array.path,
            chunk,
            what,
            rebuild_command(self.store_path, self.store_attrs, self.array),
        )

    def missing(self) -> list[Problem]:
        """Recorded chunks absent from disk (one directory walk)."""
        if self.chunks is None:
            return []
        present = chunk_files(self.directory)
        return [self.problem(k, "missing") for k in sorted(self.chunks) if k not in present]

    def corrupt(self, keys: list[str] | None = None) -> list[Problem]:
        """Recorded chunks among ``keys`` (default: all) whose bytes no longer match their CRC."""
        if self.chunks is None:
            return []
        problems = []
        for key in sorted(self.chunks) if keys is None else keys:
            path = self.directory / key
            if key not in self.chunks or not path.is_file():
                continue
            if crc32c_file(path) != self.chunks[key]:
                problems.append(self.problem(key, "corrupt (checksum differs)"))
        return problems

    def check_present(self) -> None:
        """Raise StoreError for the first recorded chunk that is absent."""
        missing = self.missing()
        if missing:
            raise missing[0].error()

    def check_rows(self, start: int, stop: int) -> None:
        """Raise StoreError unless every recorded chunk covering rows ``[start, stop)`` is present and intact."""
        if self.chunks is None or stop <= start:
            return
        rows = (self.array.shards or self.array.chunks)[0]
        first, last = start // rows, (stop - 1) // rows
        keys = [
            key
            for block in range(first, last + 1)
            for key in self._by_block.get(block, ())
            if key not in self._checked
        ]
        for key in keys:
            if not (self.directory / key).is_file():
                raise self.problem(key, "missing").error()
        corrupt = self.corrupt(keys)
        if corrupt:
            raise corrupt[0].error()
        self._checked.update(keys)

    def read(self, start: int | None = None, stop: int | None = None) -> Any:
        """``array[start:stop]`` (all of it by default) after :meth:`check_rows`; decode errors name the chunk."""
        start = 0 if start is None else start
        stop = self.array.shape[0] if stop is None else stop
        self.check_rows(start, stop)
        try:
            return self.array[start:stop]
        except Exception as error:  # a chunk that fails to decode: corrupt
            problem = self.problem(
                "", f"unreadable in rows {start}-{stop - 1} ({type(error).__name__}: {error})"
            )
            raise problem.error() from error


def _row_block(key: str) -> int:
    """First grid index of a default-encoded chunk key ``c/i/j/...``."""
    parts = key.split("/")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1


def rebuild_command(store_path: Path, store_attrs: dict[str, Any], array: zarr.Array) -> str:
    """The command that rebuilds ``array`` of the store at ``store_path``."""
    name = array.path
    if name.startswith(f"{layout.FEATURES}/"):
        encoder_id = name.split("/", 1)[1]
        return f"wsi-engine embed {store_path} --encoder {encoder_id} --overwrite"
    if name.startswith(f"{layout.SCORES}/"):
        group = zarr.open_group(str(store_path), mode="r")[name.rsplit("/", 1)[0]]
        attrs = group.attrs.get(layout.ATTRS_KEY, {}) or {}
        run = attrs.get("fit_run") or "RUN_DIR"
        command = "predict" if attrs.get("kind", "bag") == "bag" else "predict-patches"
        return f"wsi-engine {command} --run {run} --stores {store_path} --out OUT.csv"
    slide = store_attrs.get("slide", {}).get("path") or "SLIDE"
    return f"wsi-engine tile {slide} --out {Path(store_path).parent} --overwrite"


def sealed_arrays(root: zarr.Group) -> list[zarr.Array]:
    """Every array of a store's group except the progress markers."""
    arrays = []
    for _, array in root.members(max_depth=None):
        if isinstance(array, zarr.Array) and not array.path.startswith(layout.PROGRESS):
            if not any(part.startswith(layout.TMP_PREFIX) for part in array.path.split("/")):
                arrays.append(array)
    return arrays
