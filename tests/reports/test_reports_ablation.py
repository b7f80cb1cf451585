"""`reports ablation`: with vs without privileged text on the same splits and seeds, paired differences with CIs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsi_engine.cli import main
from wsi_engine.patch.privileged_ablation import paired_bootstrap, t_interval

from .conftest import imported_corpus, write_images


def test_ablation_command_prints_paired_differences_with_intervals(
    tmp_path, tiny_clip_args, capsys
):
    images = tmp_path / "images"
    write_images(images / "normal", (230, 180, 200), 10)
    write_images(images / "tumor", (90, 40, 140), 10)
    corpus = imported_corpus(
        tmp_path, ["pink normal tissue", "purple tumour cells", "fibrous stroma"], tiny_clip_args
    )
    out = tmp_path / "ablation.json"
    args = [
        "reports",
        "ablation",
        "--images",
        str(images),
        "--privileged-text",
        str(corpus),
        *tiny_clip_args,
    ]
    args += [
        "--seeds",
        "0,1",
        "--epochs",
        "2",
        "--hidden",
        "8",
        "--bootstrap",
        "20",
        "--out",
        str(out),
    ]
    capsys.readouterr()
    assert main(args) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert (
        "mean paired difference over 2 seed(s)" in printed and "95 % paired bootstrap CI" in printed
    )
    assert "held-out test patches" in printed
    result = json.loads(out.read_text())
    assert [s["seed"] for s in result["seeds"]] == [0, 1]
    for seed in result["seeds"]:
        assert seed["n_test"] == 6  # 3 of 10 images per class held out, for both arms
        for metric, value in seed["difference"].items():
            assert value == pytest.approx(seed["with_text"][metric] - seed["without"][metric])
            low, high = seed["interval"][metric]
            assert low <= high
    mean = np.mean([s["difference"]["balanced_accuracy"] for s in result["seeds"]])
    assert result["mean_difference"]["balanced_accuracy"] == pytest.approx(mean)


def test_intervals():
    rng = np.random.default_rng(0)
    targets = np.repeat([0, 1], 50)
    good = np.stack([1 - targets, targets], 1) * 0.8 + 0.1
    noisy = rng.dirichlet([1, 1], size=100)
    low, high = paired_bootstrap(targets, good, noisy, ("balanced_accuracy",), 200, 0)[
        "balanced_accuracy"
    ]
    assert 0 < low < high  # a clearly better arm: the interval excludes 0
    low, high = paired_bootstrap(targets, noisy, noisy, ("auc",), 50, 0)["auc"]
    assert low == high == 0
    low, high = t_interval([0.1, 0.2, 0.3])
    assert low == pytest.approx(0.2 - 4.302653 * 0.1 / np.sqrt(3), rel=1e-5) and high > 0.2
    assert all(np.isnan(t_interval([0.1])))
