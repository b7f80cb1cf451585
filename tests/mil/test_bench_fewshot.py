"""The real-feature few-shot benchmark (tools/bench_fewshot.py), reduced: one seed, 8 shots, 3 epochs.

Runs only when ``../shared`` (TCGA patches, filler slide, EfficientNet-Lite0 weights) is present.
The embeddings are cached in the benchmark's cache folder, so only the first run embeds.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench_fewshot.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_fewshot", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    if not module.shared_present():
        pytest.skip("../shared (TCGA patches, filler slide, EfficientNet-Lite0) not present")
    return module


def test_pseudo_slides_keep_test_patches_apart_and_follow_the_witness_rate(bench):
    emb = bench.load_embeddings(Path.home() / ".cache" / "wsi-engine" / "bench_fewshot", 1, 256)
    assert emb.patches.shape[:2] == (2, 130) and emb.patches.shape[2] == 1280
    assert not np.allclose(emb.patches[0], emb.patches[1])  # the shifted variant differs
    bags = bench.make_bags(emb, "low", 0, 1)
    assert len(bags) == 2 * (bench.POOL + bench.VAL + bench.TEST)
    for bag in bags:
        witness_sources = emb.sources[bag.witness_index]
        assert (witness_sources == (1 if bag.part == "test" else 0)).all(), bag.slide_id
        assert (emb.classes[bag.witness_index] == bag.label).all()
        rate = len(bag.witness_index) / len(bag.features)
        assert rate <= 0.055 and 150 <= len(bag.features) <= 300
    again = bench.make_bags(emb, "low", 0, 1)
    assert all(np.array_equal(a.features, b.features) for a, b in zip(bags, again, strict=True))


def test_reduced_benchmark_runs_through_the_cli(bench, tmp_path):
    results, rows = bench.run(
        [0],
        [8],
        3,
        ["libra", "mean"],
        ["low"],
        tmp_path,
        Path.home() / ".cache" / "wsi-engine" / "bench_fewshot",
        variants=1,
        filler_stride=256,
        log=lambda *_: None,
    )
    with h5py.File(tmp_path / "low-seed0" / "clam" / "h5_files" / "LUAD-test00.h5") as handle:
        assert handle["features"].shape[1] == 1280 and handle["coords"].shape[1] == 2
    assert (tmp_path / "low-seed0" / "stores" / "LUAD-test00.zarr").is_dir()
    assert {r["model"] for r in rows} == {"libra", "mean", bench.REFERENCE}
    for row in rows:
        for metric in ("balanced_accuracy", "auc"):
            mean, half = row[metric]
            assert 0 <= mean <= 1 and math.isnan(half)  # one seed: no interval
    libra = next(r for r in rows if r["model"] == "libra")
    assert libra["balanced_accuracy_diff"][0] == 0.0
    table = bench.format_table(rows, "libra")
    assert table.count("\n") == 4 and "| low | 8 | mean |" in table
