"""Checks shared by the DICOM heatmap tests: dciodvfy, geometry and read-back helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest


def assert_dciodvfy_clean(path: Path) -> None:
    """dciodvfy (Debian's dicom3tools) reports no error for ``path``.

    Skipped only outside CI when dciodvfy is not installed; in CI (``CI`` set)
    a missing dciodvfy fails the test, since .ci/run installs it.
    """
    tool = shutil.which("dciodvfy")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("dciodvfy is not installed in CI (.ci/run installs dicom3tools)")
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools)")
    run = subprocess.run(
        [tool, str(path)], capture_output=True, text=True, errors="replace", timeout=120
    )
    errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
    assert not errors, f"{path.name}: {errors}"


def spacing_mm(ds: pydicom.Dataset) -> tuple[float, float]:
    """(row, column) pixel spacing in mm of a tiled image or segmentation."""
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    return float(measures.PixelSpacing[0]), float(measures.PixelSpacing[1])


def extent_mm(ds: pydicom.Dataset) -> tuple[float, float]:
    """(height, width) in mm: total pixel matrix × pixel spacing."""
    rows, cols = spacing_mm(ds)
    return int(ds.TotalPixelMatrixRows) * rows, int(ds.TotalPixelMatrixColumns) * cols


def read_segmentation(path: Path) -> tuple[hd.seg.Segmentation, pydicom.Dataset]:
    """The file read by highdicom and by plain pydicom."""
    return hd.seg.segread(path), pydicom.dcmread(path)


def referenced_instances(ds: pydicom.Dataset) -> set[str]:
    """SOP Instance UIDs in the Referenced Series Sequence (Common Instance Reference)."""
    return {
        item.ReferencedSOPInstanceUID
        for series in ds.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }


def annotation_polygons_level0(
    annotations: hd.ann.MicroscopyBulkSimpleAnnotations, group_label: str, source: pydicom.Dataset
) -> np.ndarray:
    """(n, 4, 2) level-0 image coordinates of a group's polygons, mapped back from slide coordinates."""
    (group,) = annotations.get_annotation_groups(label=group_label)
    to_image = hd.spatial.ReferenceToImageTransformer.for_image(source, for_total_pixel_matrix=True)
    points = np.stack([to_image(p) for p in group.get_graphic_data("3D")])
    np.testing.assert_allclose(points[..., 2], 0, atol=1e-9)  # on the image plane
    return points[..., :2]


def quantised(fractions: np.ndarray) -> np.ndarray:
    """What a FRACTIONAL segmentation with maximum value 255 stores, read back as a fraction."""
    clipped = np.clip(np.nan_to_num(fractions, nan=0.0), 0, 1)
    return np.rint(clipped * 255) / 255
