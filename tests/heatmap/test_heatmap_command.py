"""``wsi-engine heatmap``: outputs, one-line errors and exit codes."""

from __future__ import annotations

from pathlib import Path

from wsi_engine.cli import main

from .conftest import build_store, plant_scores


def _run(stores: Path, out: Path, *extra: str) -> int:
    args = [
        "heatmap",
        "--stores",
        str(stores),
        "--scores",
        "run1",
        "--out",
        str(out),
        "--formats",
        "geojson",
    ]
    return main([*args, *extra])


def test_command_writes_outputs_and_a_summary(tmp_path: Path, scored_store: Path, capsys) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("slide_id,label\nslide-a,tumor\n")
    assert _run(scored_store.parent, tmp_path / "out", "--labels", str(labels)) == 0
    assert (tmp_path / "out" / "slide-a" / "tiles.geojson").is_file()
    assert (tmp_path / "out" / "heatmap.yaml").is_file()
    assert "slide-a" in capsys.readouterr().out


def test_missing_scores_exit_5_naming_predict(tmp_path: Path, capsys) -> None:
    store = build_store(tmp_path / "stores", "unscored")
    assert _run(store, tmp_path / "out") == 5
    err = capsys.readouterr().err
    assert "no scores for run 'run1'" in err and "wsi-engine predict" in err


def test_some_failures_exit_1_after_the_others_finished(tmp_path: Path, capsys) -> None:
    plant_scores(build_store(tmp_path / "stores", "scored"))
    build_store(tmp_path / "stores", "unscored")
    assert _run(tmp_path / "stores", tmp_path / "out") == 1
    assert (tmp_path / "out" / "scored" / "tiles.geojson").is_file()
    assert "1 of 2 stores failed" in capsys.readouterr().err


def test_bad_options_are_configuration_errors(tmp_path: Path, scored_store: Path, capsys) -> None:
    assert _run(scored_store, tmp_path / "out", "--class", "nope") == 3
    assert "no class 'nope'" in capsys.readouterr().err
    assert main(["heatmap", "--stores", str(scored_store), "--scores", "run1", "--out", str(tmp_path),
                 "--formats", "png,svg"]) == 3  # fmt: skip
    assert "svg" in capsys.readouterr().err
