"""``fit`` and ``predict`` take ``--device auto|cuda|cpu``; CUDA runs are skipped without a GPU."""

from __future__ import annotations

import csv

import pytest
import torch

from wsi_engine.cli import main

from .conftest import bag_cohort
from .test_mil_cli_fit_predict import CLASSES, fit_args, fold_metrics, predict_args

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    _, stores, labels = bag_cohort(root, CLASSES, n_per_class=6, dim=16, size=(20, 40), seed=5)
    return root, stores, labels


def _probs(path):
    return {r["slide_id"]: float(r["prob_tumor"]) for r in csv.DictReader(open(path))}


def test_fit_and_predict_on_the_cpu(cohort):
    root, stores, labels = cohort
    for name, extra in (("cpu", ["--device", "cpu"]), ("default", [])):
        assert main(fit_args(stores, labels, root / name, *extra, shots="2", model="libra")) == 0
    assert fold_metrics(root / "cpu") == fold_metrics(root / "default")  # auto is the CPU here
    assert main(predict_args(root / "cpu", stores, root / "p.csv", "--device", "cpu")) == 0
    assert len(_probs(root / "p.csv")) == 12


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_cuda_without_a_gpu_is_a_usage_error(cohort, capsys):
    root, stores, labels = cohort
    assert main(fit_args(stores, labels, root / "x", "--device", "cuda", shots="2")) == 3
    assert "no CUDA GPU" in capsys.readouterr().err
    assert not (root / "x" / "results.json").exists()


@needs_cuda
def test_fit_on_cuda_predicts_like_the_cpu(cohort):
    root, stores, labels = cohort
    for device in ("cuda", "cpu"):
        run = root / f"run-{device}"
        assert main(fit_args(stores, labels, run, "--device", device, shots="2")) == 0
        command = predict_args(run, stores, root / f"{device}.csv", "--device", device)
        assert main(command) == 0
    gpu, cpu = _probs(root / "cuda.csv"), _probs(root / "cpu.csv")
    assert gpu.keys() == cpu.keys()
    assert max(abs(gpu[k] - cpu[k]) for k in gpu) < 0.05  # float32 on both; kernels differ
