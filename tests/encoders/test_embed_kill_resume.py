"""A run killed with SIGKILL mid-way resumes to the same features as an uninterrupted run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import zarr

from wsi_engine.encoders.embed import embed_stores
from wsi_engine.store import PatchStore

REPO = Path(__file__).resolve().parents[2]

# The child slows each forward pass down so that it can be killed between block writes.
CHILD = """
import sys, time
from wsi_engine.encoders.encoder import ImageEmbedder
from wsi_engine.encoders.embed import embed_stores
forward = ImageEmbedder.forward
def slow(self, pixels):
    time.sleep(0.25)
    return forward(self, pixels)
ImageEmbedder.forward = slow
embed_stores([sys.argv[1]], "tiny-clip", checkpoint=sys.argv[2], device="cpu", batch_size=8, workers=0)
"""


def _done_blocks(store: Path) -> np.ndarray:
    """Indices of the blocks marked done by the embedding run."""
    try:
        markers = zarr.open_array(str(store / "_progress" / "features" / "tiny-clip"), mode="r")
        return np.flatnonzero(np.asarray(markers[:]))
    except Exception:
        return np.zeros(0, dtype=int)


def test_killed_embed_resumes_to_the_same_result(tmp_path, tiled, tiny_checkpoint, tiny_encoder):
    store = Path(shutil.copytree(tiled["jpeg"] / "b.zarr", tmp_path / "run" / "b.zarr"))
    reference = Path(shutil.copytree(store, tmp_path / "ref" / "b.zarr"))
    blocks = PatchStore.open(store).shard_ranges()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store), str(tiny_checkpoint)], cwd=REPO
    )
    try:
        deadline = time.monotonic() + 120
        while len(_done_blocks(store)) < 2 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.poll() is None, "the child finished before it could be killed"
        child.kill()
    finally:
        child.wait()
    done = _done_blocks(store)
    assert 2 <= len(done) < len(blocks)
    assert not PatchStore.open(store).has_features("tiny-clip")
    resumed = embed_stores([store], tiny_encoder, device="cpu", batch_size=8, workers=0)
    kept = sum(blocks[k][1] - blocks[k][0] for k in done)
    assert (
        resumed.results[0].status == "done"
        and resumed.embedded == PatchStore.open(store).n_patches - kept
    )
    embed_stores([reference], tiny_encoder, device="cpu", batch_size=8, workers=0)
    got = PatchStore.open(store).read_features("tiny-clip")
    want = PatchStore.open(reference).read_features("tiny-clip")
    # batch boundaries differ after a resume: rows agree to float16 rounding of float32 results
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)
