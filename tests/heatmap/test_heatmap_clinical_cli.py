"""``heatmap --formats dicom,dsa`` and ``run --heatmap-formats``: the new formats through the command line."""

from __future__ import annotations

from pathlib import Path

from wsi_engine.cli import main
from wsi_engine.pipeline import load_pipeline_config


def test_heatmap_command_writes_dicom_and_dsa(tmp_path: Path, scored_store: Path) -> None:
    args = ["heatmap", "--stores", str(scored_store), "--scores", "run1", "--out", str(tmp_path)]
    assert main([*args, "--formats", "dicom,dsa", "--class", "tumor"]) == 0
    folder = tmp_path / "slide-a"
    assert (folder / "dsa_annotation.json").is_file()
    assert sorted(p.name for p in (folder / "dicom").iterdir()) == [
        "ann_patches.dcm", "seg_scores_L0.dcm", "seg_scores_L1.dcm",
        "seg_tissue_L0.dcm", "seg_tissue_L1.dcm",
    ]  # fmt: skip
    assert not (folder / "tiles.geojson").exists()  # only what was asked for


def test_pipeline_accepts_the_clinical_formats() -> None:
    config = load_pipeline_config(None, {"heatmap.formats": ["png", "dicom", "dsa"]})
    assert config.heatmap.formats == ["png", "dicom", "dsa"]


def test_run_rejects_an_unknown_heatmap_format_before_any_work(tmp_path: Path, capsys) -> None:
    code = main(["run", str(tmp_path), "--out", str(tmp_path / "out"),
                 "--heatmap-formats", "dicom,svg"])  # fmt: skip
    assert code == 3
    assert "svg" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
