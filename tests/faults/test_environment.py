"""Attacks 6, 7, 9 and the category nit: disk full, read-only outputs, bad model.pt, NaN checkpoints."""

from __future__ import annotations

import csv
import pickle
import shutil

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from wsi_engine.cli import main
from wsi_engine.store import PatchStore

from .conftest import ENCODER, fit_args, fit_cohort


def _one_line_naming(err: str, path) -> None:
    assert str(path) in err, err
    assert "internal error" not in err and "Traceback" not in err, err


def test_tile_on_a_full_disk_exits_8_naming_the_path(world, dask_cluster, full_disk, capsys):
    args = ["tile", str(world.slide), "--out", str(full_disk / "out"), "--scheduler", dask_cluster]
    assert main([*args, "--patch-size", "128", "--mpp-target", "1.0"]) == 8
    err = capsys.readouterr().err
    _one_line_naming(err, full_disk / "out")
    assert "no space left" in err or "not writable" in err
    assert not list((full_disk / "out").glob("*.zarr")) if (full_disk / "out").exists() else True


def test_fit_on_a_full_disk_exits_8_naming_a_file(tmp_path, full_disk, capsys):
    stores, labels = fit_cohort(tmp_path / "fit")
    assert main(fit_args(stores, labels, full_disk / "run")) == 8
    err = capsys.readouterr().err
    _one_line_naming(err, full_disk / "run")
    assert "unexpected pos" not in err


def test_commands_writing_into_a_read_only_folder_exit_8(world, tmp_path, read_only_dir, capsys):
    target = read_only_dir / "out"
    stores, labels = fit_cohort(tmp_path / "fit")
    commands = {
        "fit": fit_args(stores, labels, target),
        "predict": ["predict", "--run", str(world.run), "--stores", str(world.store),
                    "--out", str(target / "p.csv"), "--no-scores"],
        "import-features": ["import-features", str(tmp_path / "none.h5"), "--out", str(target),
                            "--encoder-id", "x", "--mpp", "0.5"],
        "run": ["run", str(world.slide), "--out", str(target), "--encoder", ENCODER],
    }  # fmt: skip
    (tmp_path / "none.h5").write_bytes(b"")
    for name, args in commands.items():
        code = main(args)
        err = capsys.readouterr().err
        assert code == 8, (name, err)
        _one_line_naming(err, read_only_dir)


def _tamper(run_dir, how: str) -> list:
    files = sorted(run_dir.rglob("model.pt"))
    for path in files:
        if how == "pickle":  # an arbitrary object: refused by weights_only=True
            path.write_bytes(pickle.dumps({"format": "x", "payload": np.dtype("float32")}))
        else:  # a valid checkpoint whose tensors do not fit the model
            payload = torch.load(path, weights_only=True)
            payload["state_dict"] = {
                k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) if v.ndim else v
                for k, v in payload["state_dict"].items()
            }
            torch.save(payload, path)
    return files


def test_a_bad_model_pt_exits_7_naming_the_file(world, tmp_path, capsys):
    for how in ("pickle", "size"):
        run = tmp_path / how
        shutil.copytree(world.run, run)
        files = _tamper(run, how)
        args = ["predict", "--run", str(run), "--stores", str(world.store)]
        assert main([*args, "--out", str(tmp_path / "p.csv"), "--no-scores"]) == 7
        err = capsys.readouterr().err
        assert any(str(f) in err for f in files), err
        assert "weights_only=False" not in err and "internal error" not in err, err


def test_a_checkpoint_with_nan_weights_fails_the_embed_naming_it(
    store_copy, tiny_checkpoint, tmp_path, capsys
):
    weights = load_file(tiny_checkpoint)
    name = next(k for k, v in weights.items() if v.ndim == 2 and "visual" in k)
    weights[name] = torch.full_like(weights[name], float("nan"))
    bad = tmp_path / "nan.safetensors"
    save_file(weights, bad)
    PatchStore.open(store_copy, mode="r+").delete_features(ENCODER)
    args = ["embed", str(store_copy), "--encoder", ENCODER, "--checkpoint", str(bad)]
    assert main([*args, "--device", "cpu", "--workers", "0"]) == 6
    err = capsys.readouterr().err
    assert "NaN or infinite features" in err and str(bad) in err
    assert not PatchStore.open(store_copy).has_features(ENCODER)


def test_per_slide_failures_carry_their_category(world, dask_cluster, tmp_path):
    slides = tmp_path / "slides"
    slides.mkdir()
    shutil.copy(world.slide, slides / "good.tiff")
    (slides / "broken.svs").write_bytes(world.slide.read_bytes()[:5000])  # truncated
    out = tmp_path / "out"
    args = ["tile", str(slides), "--out", str(out), "--scheduler", dask_cluster]
    assert main([*args, "--patch-size", "128", "--mpp-target", "1.0"]) == 1
    rows = {r["slide_id"]: r for r in csv.DictReader(open(out / "tiling_report.csv"))}
    assert rows["good"]["status"] == "ok"
    assert rows["broken"]["reason"].startswith("slide error: "), rows["broken"]["reason"]
