"""Per-block completion markers for resumable writers (the store's ``_progress`` group)."""

from __future__ import annotations

import numpy as np
import zarr

from wsi_engine.store.layout import PROGRESS


class BlockProgress:
    """A ``(n_blocks,)`` uint8 marker array at ``_progress/<name>``; 1 = block fully written.

    Chunk size is 1, so marking block ``k`` writes one small file and never
    races with another writer marking block ``j``. A marker file left truncated
    by a killed process reads as "not done".
    """

    def __init__(self, root: zarr.Group, name: str, n_blocks: int):
        self._root = root
        self._name = f"{PROGRESS}/{name}"
        self.n_blocks = n_blocks
        try:
            array = root[self._name]
            if array.shape != (n_blocks,):
                del root[self._name]
                raise KeyError(self._name)
        except KeyError:
            array = root.create_array(
                self._name,
                shape=(n_blocks,),
                chunks=(1,),
                dtype="uint8",
                fill_value=0,
                overwrite=True,
            )
        self._array = array

    def mark_done(self, block: int) -> None:
        """Record that block ``block`` is fully written."""
        self._array[block] = 1

    def done(self) -> np.ndarray:
        """Boolean array (n_blocks,), True where the block is recorded as done."""
        status = np.zeros(self.n_blocks, dtype=bool)
        for block in range(self.n_blocks):
            try:
                status[block] = bool(self._array[block])
            except Exception:  # truncated marker of a killed writer: not done
                status[block] = False
        return status

    def remaining(self) -> list[int]:
        """Indices of blocks not yet done."""
        return [int(k) for k in np.flatnonzero(~self.done())]

    def clear(self) -> None:
        """Delete the markers (called once the writer's output is complete)."""
        del self._root[self._name]
        parent = self._name.rsplit("/", 1)[0]
        while parent.startswith(PROGRESS) and not any(True for _ in self._root[parent].keys()):
            del self._root[parent]
            if parent == PROGRESS:
                break
            parent = parent.rsplit("/", 1)[0]
