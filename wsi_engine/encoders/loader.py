"""Background reading of patch blocks and re-batching into fixed-size model batches.

Each :class:`BlockTask` is one row block of one store (a pixel shard, or an
equal block of a coordinate-only store). A torch ``DataLoader`` reads blocks
in worker processes, in order, so decoding overlaps the model; blocks arrive
as uint8 tensors in shared memory. :class:`Rebatcher` copies them into
batches of ``batch_size`` rows (pinned staging buffers when feeding a GPU)
across block and store boundaries; a batch is closed early only when the
patch size changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from wsi_engine.tiling import PatchSource


@dataclass(frozen=True)
class BlockTask:
    """Rows ``[start, stop)`` of store ``store`` (an index into the run's store list), block number ``block``."""

    store: int
    block: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass
class BlockData:
    """A read block: pixels (n, S, S, 3) uint8, or ``error`` (one line) when reading failed."""

    index: int
    pixels: torch.Tensor | None
    error: str
    read_seconds: float
    exit_code: int = 0
    """of the error's category (``wsi_engine.errors``), 0 when read"""


_sources: dict[str, PatchSource] = {}
"""Open stores of this process (a worker reads the blocks of several stores)."""


def _source(path: str) -> PatchSource:
    if path not in _sources:
        _sources.clear()  # blocks arrive store by store: keep one open
        _sources[path] = PatchSource(path)
    return _sources[path]


class BlockDataset(Dataset):
    """Item ``i`` = :class:`BlockData` of ``tasks[i]``; errors are returned, not raised, so other stores go on."""

    def __init__(self, tasks: list[BlockTask], store_paths: list[Path]):
        self.tasks = tasks
        self.store_paths = [str(p) for p in store_paths]

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, index: int) -> BlockData:
        task = self.tasks[index]
        began = time.perf_counter()
        try:
            pixels = _source(self.store_paths[task.store]).read(task.start, task.stop)
            if pixels.shape[0] != task.rows:
                raise ValueError(f"read {pixels.shape[0]} patches, expected {task.rows}")
            tensor = torch.from_numpy(np.ascontiguousarray(pixels))
            return BlockData(index, tensor, "", time.perf_counter() - began)
        except Exception as error:  # reported per store by the caller
            from wsi_engine.errors import describe, exit_code_of

            seconds = time.perf_counter() - began
            return BlockData(index, None, describe(error), seconds, exit_code_of(error))


def iter_blocks(
    tasks: list[BlockTask], store_paths: list[Path], workers: int
) -> Iterator[BlockData]:
    """Blocks of ``tasks`` in order, read by ``workers`` background processes (0 = in this process)."""
    _sources.clear()  # a store may have been replaced since an earlier run of this process
    dataset = BlockDataset(tasks, store_paths)
    if workers == 0:
        yield from (dataset[index] for index in range(len(dataset)))
        return
    loader = DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        prefetch_factor=2,  # blocks queued per worker (shared memory: /dev/shm)
        collate_fn=lambda item: item,
    )
    yield from loader


@dataclass
class Segment:
    """Rows ``[lo, hi)`` of block item ``index`` placed at batch rows ``[at, at + hi - lo)``."""

    index: int
    lo: int
    hi: int
    at: int


class Rebatcher:
    """Accumulates block pixels and emits (batch pixels, segments) of ``batch_size`` rows."""

    def __init__(self, batch_size: int, pin_memory: bool):
        self.batch_size = batch_size
        self.pin_memory = pin_memory
        self._pieces: list[
            tuple[int, torch.Tensor, int]
        ] = []  # (item index, pixels, first unused row)
        self._rows = 0
        self._staging: dict[tuple[int, ...], list[torch.Tensor]] = {}
        self._turn = 0

    def add(self, index: int, pixels: torch.Tensor) -> Iterator[tuple[torch.Tensor, list[Segment]]]:
        """Add a block; yield every full batch now available (a patch-size change flushes first)."""
        if self._pieces and self._pieces[0][1].shape[1:] != pixels.shape[1:]:
            yield from self.flush()
        self._pieces.append((index, pixels, 0))
        self._rows += pixels.shape[0]
        while self._rows >= self.batch_size:
            yield self._take(self.batch_size)

    def flush(self) -> Iterator[tuple[torch.Tensor, list[Segment]]]:
        """Yield the remaining rows as a last, smaller batch."""
        if self._rows:
            yield self._take(self._rows)

    def _buffer(self, rows: int, like: torch.Tensor) -> torch.Tensor:
        """A staging tensor of ``rows`` rows shaped like ``like``.

        For a GPU, two pinned buffers per patch shape alternate: a buffer is
        refilled two batches after its last use, when the pipeline (one batch
        in flight) has finished copying it to the device.
        """
        shape = tuple(like.shape[1:])
        if not self.pin_memory:
            return torch.empty((rows, *shape), dtype=like.dtype)
        if shape not in self._staging:
            self._staging[shape] = [
                torch.empty((self.batch_size, *shape), dtype=like.dtype).pin_memory()
                for _ in range(2)
            ]
        self._turn ^= 1
        return self._staging[shape][self._turn][:rows]

    def _take(self, rows: int) -> tuple[torch.Tensor, list[Segment]]:
        batch = self._buffer(rows, self._pieces[0][1])
        segments: list[Segment] = []
        at = 0
        while at < rows:
            index, pixels, used = self._pieces[0]
            n = min(rows - at, pixels.shape[0] - used)
            batch[at : at + n].copy_(pixels[used : used + n])
            segments.append(Segment(index, used, used + n, at))
            at += n
            if used + n == pixels.shape[0]:
                self._pieces.pop(0)
            else:
                self._pieces[0] = (index, pixels, used + n)
        self._rows -= rows
        return batch, segments
