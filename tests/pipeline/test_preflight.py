"""Preflight: what would stop the whole run fails before any slide is tiled; ``run --dry-run`` prints the plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsi_engine.cli import main


@pytest.fixture(scope="module")
def two_slides(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small synthetic slides and one file that is not a slide."""
    from wsi_engine.synthetic import generate_slide

    folder = tmp_path_factory.mktemp("preflight") / "slides"
    folder.mkdir()
    for index in range(2):
        generate_slide(folder / f"s{index}.tiff", width=768, height=768, mpp=0.5, seed=index)
    (folder / "broken.svs").write_bytes(b"not a slide")
    return folder


def test_dry_run_prints_the_plan_and_writes_nothing(
    two_slides, tiny_clip_args, tmp_path, capsys
) -> None:
    out = tmp_path / "out"
    args = ["run", str(two_slides), "--out", str(out), *tiny_clip_args[:4], "--dry-run"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "plan for 3 slide(s)" in text and "encoder: tiny-clip (weights" in text
    assert "s0: tile run, embed run" in text and "s1: tile run, embed run" in text
    assert "broken: tile run, embed run  PROBLEM:" in text  # recorded as that slide's failure
    assert "fitted run: none" in text and "outputs:" in text
    assert not out.exists()


def test_run_with_missing_weights_fails_before_tiling(two_slides, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WSI_ENGINE_WEIGHTS_DIR", str(tmp_path / "empty-weights"))
    out = tmp_path / "out"
    code = main(["run", str(two_slides), "--out", str(out), "--encoder", "conch_v1"])
    assert code == 6
    err = capsys.readouterr().err
    assert "weights of encoder 'conch_ViT-B-16' not found" in err
    assert not (out / "stores").exists()  # nothing was tiled


def test_run_refuses_bad_names_inputs_and_runs_at_once(two_slides, tmp_path, capsys) -> None:
    out = str(tmp_path / "out")
    assert main(["run", str(two_slides), "--out", out, "--encoder", "conhc"]) == 3
    assert "did you mean 'conch_ViT-B-16'?" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "nope"), "--out", out]) == 4
    assert "slide input not found" in capsys.readouterr().err
    not_a_run = tmp_path / "not-a-run"
    not_a_run.mkdir()
    assert main(["run", str(two_slides), "--out", out, "--run", str(not_a_run)]) == 3
    assert "not a finished `wsi-engine fit` run" in capsys.readouterr().err
    assert not Path(out).exists()


def test_embed_and_fit_check_before_work(tmp_path, capsys) -> None:
    missing = str(tmp_path / "missing.zarr")
    assert main(["embed", missing, "--encoder", "tiny-clip"]) == 5
    assert "store input not found" in capsys.readouterr().err
    stores = tmp_path / "stores"
    stores.mkdir()
    fit = ["fit", "--stores", str(stores), "--task", "synthetic-demo", "--encoder", "tiny-clip"]
    assert main([*fit, "--labels", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "r")]) == 7
    assert "labels file not found" in capsys.readouterr().err
    labels = tmp_path / "labels.csv"
    labels.write_text("slide_id,label\na,normal\n")
    assert (
        main(
            [*fit, "--labels", str(labels), "--out", str(tmp_path / "r"), "--task", "synthetc-demo"]
        )
        == 3
    )
    assert "did you mean 'synthetic-demo'?" in capsys.readouterr().err
