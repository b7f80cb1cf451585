"""``fit-patches --device``: the head trains on the device asked for; CUDA is skipped without a GPU."""

from __future__ import annotations

import json

import pytest
import torch

from .test_patch_from_run import fit_patches, random_text


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"),
        ),
    ],
)
def test_fit_patches_trains_on_the_device(tmp_path, cohort, bag_run_writer, device):
    stores, labels, _ = cohort
    bag = bag_run_writer(tmp_path / "bag", labels, 16, text=random_text(16))
    out = tmp_path / f"run-{device}"
    assert fit_patches(bag, stores, out, "--epochs", "2", "--device", device) == 0
    assert json.loads((out / "run.json").read_text())["best_epoch"] >= 1
    state = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    assert all(tensor.device.type == "cpu" for tensor in state.values())  # saved from the CPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_fit_patches_on_cuda_without_a_gpu_is_a_usage_error(tmp_path, cohort, bag_run_writer):
    stores, labels, _ = cohort
    bag = bag_run_writer(tmp_path / "bag", labels, 16, text=random_text(16))
    assert fit_patches(bag, stores, tmp_path / "x", "--device", "cuda") == 3
