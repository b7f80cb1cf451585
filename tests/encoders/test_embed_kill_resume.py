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

from .conftest import make_store

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


def _done_blocks(store: Path) -> int:
    try:
        markers = zarr.open_array(str(store / "_progress" / "features" / "tiny-clip"), mode="r")
        return int(np.asarray(markers[:]).sum())
    except Exception:
        return 0


def test_killed_embed_resumes_to_the_same_result(tmp_path, tiny_checkpoint, tiny_encoder):
    store = make_store(tmp_path / "run", "k", 96, shard=8)
    reference = shutil.copytree(store, tmp_path / "ref" / "k.zarr")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(store), str(tiny_checkpoint)], cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while _done_blocks(store) < 2 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.poll() is None, "the child finished before it could be killed"
        child.kill()
    finally:
        child.wait()
    done = _done_blocks(store)
    assert 2 <= done < 12
    assert not PatchStore.open(store).has_features("tiny-clip")
    resumed = embed_stores([store], tiny_encoder, device="cpu", batch_size=8, workers=0)
    assert resumed.results[0].status == "done" and resumed.embedded == 96 - 8 * done
    embed_stores([reference], tiny_encoder, device="cpu", batch_size=8, workers=0)
    got = PatchStore.open(store).read_features("tiny-clip")
    want = PatchStore.open(reference).read_features("tiny-clip")
    # batches are aligned to these 8-row blocks in both runs, so the rows match bitwise
    assert np.array_equal(got, want)
