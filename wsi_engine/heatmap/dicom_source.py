"""The DICOM image that the heatmap's DICOM objects are derived from (docs/dicom-dsa.md).

highdicom builds a Segmentation or Bulk Annotations object from the header of
its source image: patient and study, frame of reference, specimen and
container, total pixel matrix and pixel spacing. :func:`slide_source` returns
that header for a store's slide:

* DICOM slide (store ``slide.format == "dicom"``): the header of the slide's
  level-0 instance, read from disk (the file tiled, or the largest VOLUME
  instance of the same series beside it), so the derived objects join the
  source's study and frame of reference and reference its SOP Instance UID.
* any other slide: a header that describes the slide's level 0 (total pixel
  matrix = level-0 width × height, pixel spacing = µm/px) in a new study
  whose UIDs are derived from the slide fingerprint by :func:`stable_uid`, so a
  re-run gives the same study, frame of reference and notional image UIDs; the
  container identifier is the slide id. No file is written for this header.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import VLWholeSlideMicroscopyImageStorage

from wsi_engine.errors import SlideError
from wsi_engine.store.patch_store import PatchStore

UID_NAMESPACE = "wsi-engine"
"""First element of the name of every UID this package derives (see :func:`stable_uid`)."""

_TILE = 256  # frame side of the notional image, px

_HEADER_TAGS = (
    "SOPClassUID",
    "SeriesInstanceUID",
    "ImageType",
    "TotalPixelMatrixColumns",
    "TotalPixelMatrixRows",
)


@dataclass(frozen=True)
class SlideSource:
    """Header of the source image (no pixel data) and where it came from.

    ``dataset`` describes level 0 of the slide; ``path`` is the DICOM file it
    was read from, or ``None`` when it was synthesised for a non-DICOM slide.
    """

    dataset: Dataset
    path: Path | None

    @property
    def is_dicom(self) -> bool:
        return self.path is not None


def stable_uid(*parts: str) -> str:
    """A UID that depends only on ``parts``: ``2.25.<integer of a name-based UUID>``.

    The UUID is :func:`uuid.uuid5` (SHA-1, RFC 4122 version 5) of the name
    ``json.dumps(["wsi-engine", *parts])`` in the ``NAMESPACE_OID`` namespace;
    ``2.25`` is the root for UUID-derived UIDs (ISO/IEC 9834-8, DICOM PS3.5 B.2).
    """
    name = json.dumps([UID_NAMESPACE, *parts])
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, name).int}"


def slide_source(store: PatchStore) -> SlideSource:
    """The source header for ``store``'s slide (see the module docstring)."""
    slide = store.attrs["slide"]
    if slide.get("format") == "dicom":
        return SlideSource(*_dicom_level0(Path(slide["path"]), store.slide_dimensions))
    return SlideSource(_synthetic_level0(store), None)


def _dicom_level0(path: Path, dimensions: tuple[int, int]) -> tuple[Dataset, Path]:
    """(header, file) of the level-0 VOLUME instance of the series ``path`` belongs to."""
    first = _read_header(path)
    if first is None or first.get("SOPClassUID") != VLWholeSlideMicroscopyImageStorage:
        raise SlideError(
            "the store's DICOM slide cannot be read as a VL Whole Slide Microscopy image",
            path=path,
            hint="the DICOM outputs reference the source slide: keep it at the path it was tiled from",
        )
    candidates = [(path, first)]
    for sibling in sorted(path.parent.iterdir()):
        if sibling != path and sibling.suffix.lower() == ".dcm":
            header = _read_header(sibling)
            if header is not None and header.get("SeriesInstanceUID") == first.SeriesInstanceUID:
                candidates.append((sibling, header))
    width, height = dimensions
    level0 = [
        (p, h)
        for p, h in candidates
        if "VOLUME" in list(h.get("ImageType", []))
        and (int(h.TotalPixelMatrixColumns), int(h.TotalPixelMatrixRows)) == (width, height)
    ]
    if not level0:
        raise SlideError(
            f"no VOLUME instance of {width} x {height} px (the slide's level 0) in this DICOM series",
            path=path.parent,
            hint="keep every instance of the series in the folder it was tiled from",
        )
    chosen = level0[0][0]
    return pydicom.dcmread(chosen, stop_before_pixels=True), chosen


def _read_header(path: Path) -> Dataset | None:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_HEADER_TAGS))
    except (InvalidDicomError, OSError, ValueError):
        return None


def _synthetic_level0(store: PatchStore) -> Dataset:
    """Header of a notional VL WSI level-0 image of the slide, UIDs from its fingerprint."""
    slide = store.attrs["slide"]
    fingerprint = str(slide.get("fingerprint") or slide["id"])
    mpp = slide.get("mpp")
    if not mpp:
        raise SlideError(
            "the store records no µm/px for this slide: DICOM objects need a pixel spacing",
            path=store.path,
            hint="re-tile the slide with --mpp",
        )
    width, height = store.slide_dimensions
    ds = Dataset()
    ds.SOPClassUID = VLWholeSlideMicroscopyImageStorage
    ds.SOPInstanceUID = stable_uid(fingerprint, "slide-image")
    ds.SeriesInstanceUID = stable_uid(fingerprint, "slide-series")
    ds.StudyInstanceUID = stable_uid(fingerprint, "study")
    ds.FrameOfReferenceUID = stable_uid(fingerprint, "frame-of-reference")
    ds.Modality = "SM"
    ds.ImageType = ["DERIVED", "PRIMARY", "VOLUME", "NONE"]
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        setattr(ds, keyword, "")
    for keyword in ("AccessionNumber", "StudyDate", "StudyTime", "ReferringPhysicianName"):
        setattr(ds, keyword, "")
    ds.StudyID = store.slide_id[:16]
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    ds.ContainerIdentifier = store.slide_id[:64]
    ds.IssuerOfTheContainerIdentifierSequence = Sequence([])
    ds.ContainerTypeCodeSequence = Sequence([_code("433466003", "SCT", "Microscope slide")])
    specimen = Dataset()
    specimen.SpecimenIdentifier = store.slide_id[:64]
    specimen.SpecimenUID = stable_uid(fingerprint, "specimen")
    specimen.IssuerOfTheSpecimenIdentifierSequence = Sequence([])
    specimen.SpecimenPreparationSequence = Sequence([])
    ds.SpecimenDescriptionSequence = Sequence([specimen])
    ds.TotalPixelMatrixColumns = int(width)
    ds.TotalPixelMatrixRows = int(height)
    ds.Rows = ds.Columns = _TILE
    ds.NumberOfFrames = math.ceil(width / _TILE) * math.ceil(height / _TILE)
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = 0
    origin.YOffsetInSlideCoordinateSystem = 0
    ds.TotalPixelMatrixOriginSequence = Sequence([origin])
    measures = Dataset()
    measures.PixelSpacing = [float(mpp[1]) / 1000.0, float(mpp[0]) / 1000.0]  # mm: row, column
    measures.SliceThickness = 0
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.DimensionOrganizationType = "TILED_FULL"
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item
