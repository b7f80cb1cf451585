"""The dicom and dsa formats through the command line, the pipeline config, and on a generated slide tiled for real."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pydicom
import pytest

from wsi_engine.cli import main
from wsi_engine.heatmap import make_heatmaps
from wsi_engine.heatmap.dsa import SCHEMA_PATH
from wsi_engine.pipeline import load_pipeline_config

from .conftest import plant_scores
from .dicom_checks import assert_dciodvfy_clean, extent_mm


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


def test_dicom_and_dsa_of_a_generated_and_tiled_slide(real_store, tmp_path: Path) -> None:
    """wsi_engine.synthetic slide (2048 x 1536 px, 0.5 µm/px), tiled for real, scored under its own run id."""
    store_path, _ = real_store
    plant_scores(store_path, run_id="clinical")
    report = make_heatmaps([store_path], "clinical", tmp_path, formats=["dicom", "dsa"])
    (slide,) = report.slides
    assert slide.error is None
    dicom_files = [p for p in slide.files if p.suffix == ".dcm"]
    assert len(dicom_files) == 5
    for path in dicom_files:
        assert_dciodvfy_clean(path)
        ds = pydicom.dcmread(path)
        if path.name.startswith("seg_"):
            assert extent_mm(ds) == pytest.approx((1536 * 0.5e-3, 2048 * 0.5e-3), rel=1e-6)
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    document = json.loads((tmp_path / "tum-1" / "dsa_annotation.json").read_text())
    jsonschema.Draft6Validator(schema).validate(document)
