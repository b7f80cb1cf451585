"""``wsi-engine info``: the audit table, its CSV/JSON report and the exit code."""

from __future__ import annotations

import csv
import json

import pytest

from wsi_engine.cli import main
from wsi_engine.errors import BatchFailures, SlideError

pytestmark = pytest.mark.real_slides


def read_report(stem):
    rows = list(csv.DictReader(stem.with_suffix(".csv").read_text("utf-8").splitlines()))
    return {row["slide_id"]: row for row in rows}, json.loads(
        stem.with_suffix(".json").read_text("utf-8")
    )


def test_folder_audit_reports_every_slide_and_fails_the_batch(shared_slides, tmp_path, capsys):
    stem = tmp_path / "report"
    code = main(["info", str(shared_slides / "openslide-python-fixtures"), "--out", str(stem)])
    assert code == BatchFailures.exit_code
    rows, records = read_report(stem)
    # the two .dcm files are one DICOM series: one row
    assert sorted(rows) == ["boxes", "boxes_0", "small", "unopenable"]
    assert [r["slide_id"] for r in records] == ["boxes", "boxes_0", "small", "unopenable"]

    small = rows["small"]
    assert (small["status"], small["format"], small["vendor"], small["backend"]) == (
        "warning",
        "aperio",
        "aperio",
        "tiffslide",
    )
    assert (small["width"], small["height"], small["levels"]) == ("16", "16", "1")
    assert (small["mpp_x"], small["mpp_source"]) == ("0.499", "metadata:tiffslide.mpp-x")
    assert "single-level" in small["problems"]

    dicom = rows["boxes_0"]
    assert (dicom["status"], dicom["backend"], dicom["format"]) == ("warning", "openslide", "dicom")
    assert dicom["associated_images"] == "thumbnail" and float(dicom["mpp_x"]) == pytest.approx(
        0.499
    )

    boxes = rows["boxes"]
    assert (
        boxes["status"] == "failed"
        and boxes["levels"] == "4"
        and boxes["downsamples"].startswith("1.0; 2.0")
    )
    assert "no µm/px: pass --mpp" in boxes["problems"] and "352.778" in boxes["problems"]

    unopenable = rows["unopenable"]
    assert unopenable["status"] == "failed" and unopenable["backend"] == ""
    assert (
        unopenable["problems"].startswith("could not open:") and "52479" in unopenable["problems"]
    )

    record = next(r for r in records if r["slide_id"] == "boxes")
    assert record["downsamples"][:2] == [1.0, 2.0] and record["mpp_x"] is None
    assert record["path"] == str(
        (shared_slides / "openslide-python-fixtures" / "boxes.tiff").absolute()
    )
    captured = capsys.readouterr()
    assert "boxes_0" in captured.out and "2 of 4 slides failed" in captured.err


def test_mpp_option_and_table_fix_missing_mpp(shared_slides, tmp_path):
    boxes = shared_slides / "openslide-python-fixtures" / "boxes.tiff"
    kidney = shared_slides / "histolab" / "kidney-48-5.tif"
    table = tmp_path / "mpp.csv"
    table.write_text("slide_id,mpp\nkidney-48-5.tif,0.5\nboxes,0.25\n")
    stem = tmp_path / "fixed.csv"  # a .csv or .json suffix is taken as the stem
    code = main(["info", str(boxes), str(kidney), "--mpp-table", str(table), "--out", str(stem)])
    assert code == 0
    rows, _ = read_report(tmp_path / "fixed")
    assert (rows["boxes"]["mpp_x"], rows["boxes"]["mpp_source"]) == ("0.25", "table")
    kidney_row = rows["kidney-48-5"]
    assert (kidney_row["format"], kidney_row["backend"], kidney_row["mpp_source"]) == (
        "tiff",
        "tiffslide",
        "table",
    )
    assert (
        main(["info", str(kidney), "--mpp", "0.3", "--backend", "tiffslide", "--out", str(stem)])
        == 0
    )
    rows, _ = read_report(tmp_path / "fixed")
    assert (rows["kidney-48-5"]["mpp_x"], rows["kidney-48-5"]["mpp_source"]) == ("0.3", "option")


def test_missing_path_is_a_failed_row_not_a_crash(tmp_path):
    stem = tmp_path / "report"
    assert main(["info", str(tmp_path / "nope.svs"), "--out", str(stem)]) == BatchFailures.exit_code
    rows, _ = read_report(stem)
    assert rows["nope"]["status"] == "failed" and "file not found" in rows["nope"]["problems"]


def test_folder_without_slides_and_bad_backend(tmp_path, capsys):
    assert main(["info", str(tmp_path), "--out", str(tmp_path / "r")]) == SlideError.exit_code
    assert "no slide files found" in capsys.readouterr().err
    assert main(["info", str(tmp_path), "--backend", "pillow"]) == 3
    assert "unknown --backend" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "a.svs"), "--mpp", "-0.5"]) == 3
    assert "positive" in capsys.readouterr().err
