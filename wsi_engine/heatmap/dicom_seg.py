"""DICOM Segmentation pyramids of a slide's score maps and tissue mask, written by highdicom.

Two series per slide, each a multi-resolution pyramid made by
:func:`highdicom.seg.create_segmentation_pyramid` (one instance per level):

* ``seg_scores_L<k>.dcm``: FRACTIONAL, one segment per class. A pixel holds
  the class's displayed value mapped onto [0, 1] by the heatmap's colour
  scale, stored as round(fraction × 255) (Maximum Fractional Value 255); the
  exact mapping is written into each segment's Segment Description.
* ``seg_tissue_L<k>.dcm``: BINARY, segment 1 = tissue mask, segment 2 = area
  covered by scored patches (where a score of 0 is a real 0).

They are two objects because DICOM gives a Segmentation instance a single
Segmentation Type (FRACTIONAL or BINARY) for all its segments.

Geometry: level 0 of each pyramid is the score canvas (``downsample``
level-0 px per pixel, the pyramidal TIFF's grid); its pixel spacing is the
slide's width and height (level-0 px × µm/px) divided by its columns and
rows, so every level spans exactly the slide (pixel spacing × total pixel
matrix = the slide's physical extent) in the slide's frame of reference, with
the slide's origin and orientation. Level k halves level k-1 (rounded up).
"""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from wsi_engine import __version__
from wsi_engine.heatmap.dicom_source import SlideSource, stable_uid
from wsi_engine.heatmap.files import atomic_output

MAX_FRACTIONAL = 255
TILE = 256
SCORES_SERIES_NUMBER, TISSUE_SERIES_NUMBER = 9101, 9102
NOMINAL_SLICE_THICKNESS_MM = 0.001
"""Slice Thickness when the source gives none (or 0, which dciodvfy rejects): 1 µm, a placeholder."""
_ASCII = {"×": "x", "µ": "u", "≤": "<=", "≥": ">=", "\\": "/"}
LOCAL_SCHEME = "99WSIENG"
"""Private coding scheme (the ``99`` prefix marks a local scheme in DICOM) for class and patch concepts."""


@dataclass(frozen=True)
class SegLevel:
    """One pyramid level: (rows, cols, C) float fractions in [0, 1], tissue and scored-area masks."""

    fractions: np.ndarray
    tissue: np.ndarray
    scored: np.ndarray


@dataclass(frozen=True)
class ScoreSegment:
    """A class's segment: its name and the text that says how the fraction was computed."""

    class_name: str
    description: str


def ascii_text(text: str, limit: int) -> str:
    """``text`` in the default DICOM character set, cut to ``limit`` characters.

    No Specific Character Set is declared, so text must be ASCII: ``×`` becomes
    ``x``, ``µ`` ``u``, accents are dropped, a backslash (the DICOM value
    separator) becomes ``/`` and any other character ``?``.
    """
    text = "".join(_ASCII.get(c, c) for c in text)
    chars = (c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return "".join(c if c.isascii() else "?" for c in chars)[:limit]


def quantise(fractions: np.ndarray) -> np.ndarray:
    """Fractions clipped to [0, 1] and rounded to multiples of 1/255 (what the file stores), NaN → 0."""
    clipped = np.clip(np.nan_to_num(np.asarray(fractions, dtype=np.float64), nan=0.0), 0.0, 1.0)
    return (np.rint(clipped * MAX_FRACTIONAL) / MAX_FRACTIONAL).astype(np.float32)


def class_code(class_name: str) -> hd.sr.CodedConcept:
    """The class as a concept of the local scheme (value: the name cut to 16 characters)."""
    return hd.sr.CodedConcept(
        ascii_text(class_name, 16) or "class", LOCAL_SCHEME, ascii_text(class_name, 64)
    )


def algorithm() -> hd.AlgorithmIdentificationSequence:
    return hd.AlgorithmIdentificationSequence(
        name="wsi-engine", family=codes.cid7162.ArtificialIntelligence, version=__version__
    )


def write_segmentations(
    out_dir: Path,
    source: SlideSource,
    levels: Sequence[SegLevel],
    segments: Sequence[ScoreSegment],
    *,
    uid_seed: Sequence[str],
    label: str,
    tissue_note: str,
) -> list[Path]:
    """Write the scores and tissue pyramids into ``out_dir``; returns the files written.

    ``levels`` go from finest to coarsest; ``uid_seed`` makes every series,
    instance and pyramid UID a function of the slide, run and options
    (:func:`~wsi_engine.heatmap.dicom_source.stable_uid`); ``tissue_note`` describes
    the tissue segment.
    """
    level0 = _level0_header(source.dataset, levels[0].tissue.shape)
    fractional = [quantise(level.fractions)[None] for level in levels]
    binary = [np.stack([level.tissue, level.scored], axis=-1)[None] for level in levels]
    score_segments = [_score_segment(i + 1, s) for i, s in enumerate(segments)]
    tissue_segments = [
        _segment(1, "tissue", codes.SCT.Tissue, codes.SCT.Tissue, tissue_note),
        _segment(
            2, "scored area", codes.SCT.Tissue,
            hd.sr.CodedConcept("scored-area", LOCAL_SCHEME, "Area covered by scored patches"),
            "pixels whose centre lies in at least one scored patch",
        ),
    ]  # fmt: skip
    written = []
    for name, arrays, seg_type, descriptions, number in (
        ("scores", fractional, "FRACTIONAL", score_segments, SCORES_SERIES_NUMBER),
        ("tissue", binary, "BINARY", tissue_segments, TISSUE_SERIES_NUMBER),
    ):
        seed = (*uid_seed, f"seg-{name}")
        extra = (
            {"fractional_type": "PROBABILITY", "max_fractional_value": MAX_FRACTIONAL}
            if seg_type == "FRACTIONAL"
            else {}
        )
        pyramid = hd.seg.create_segmentation_pyramid(
            source_images=[level0],
            pixel_arrays=arrays,
            segmentation_type=seg_type,
            segment_descriptions=descriptions,
            series_instance_uid=stable_uid(*seed, "series"),
            series_number=number,
            manufacturer="wsi-engine",
            manufacturer_model_name="wsi-engine heatmap",
            software_versions=__version__,
            device_serial_number="none",
            sop_instance_uids=[stable_uid(*seed, f"level-{k}") for k in range(len(arrays))],
            pyramid_uid=stable_uid(*seed, "pyramid"),
            pyramid_label=ascii_text(f"{label} {name}", 64),
            series_description=ascii_text(f"{label} {name}", 64),
            content_label=name.upper(),
            content_description=f"wsi-engine {name} heatmap",
            tile_size=(TILE, TILE),
            omit_empty_frames=False,
            **extra,
        )
        for k, instance in enumerate(pyramid):
            instance.PatientOrientation = ""  # General Image, Type 2C: highdicom leaves it out
            path = out_dir / f"seg_{name}_L{k}.dcm"
            with atomic_output(path) as tmp:
                instance.save_as(tmp)
            written.append(path)
    return written


def _level0_header(source: Dataset, shape: tuple[int, int]) -> Dataset:
    """The source header re-gridded to the canvas: same UIDs, origin and extent, ``shape`` pixels."""
    rows, cols = shape
    header = copy.deepcopy(source)
    measures = header.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    row_spacing, col_spacing = (float(v) for v in measures.PixelSpacing)
    height_mm = row_spacing * int(source.TotalPixelMatrixRows)
    width_mm = col_spacing * int(source.TotalPixelMatrixColumns)
    measures.PixelSpacing = [height_mm / rows, width_mm / cols]
    if float(measures.get("SliceThickness") or 0) <= 0:
        measures.SliceThickness = NOMINAL_SLICE_THICKNESS_MM
    header.TotalPixelMatrixRows, header.TotalPixelMatrixColumns = rows, cols
    return header


def _score_segment(number: int, segment: ScoreSegment) -> hd.seg.SegmentDescription:
    return _segment(
        number, segment.class_name, codes.SCT.Tissue, class_code(segment.class_name),
        segment.description,
    )  # fmt: skip


def _segment(
    number: int,
    label: str,
    category: hd.sr.CodedConcept,
    kind: hd.sr.CodedConcept,
    description: str,
) -> hd.seg.SegmentDescription:
    item = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=ascii_text(label, 64),
        segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type="AUTOMATIC",
        algorithm_identification=algorithm(),
        tracking_uid=None,
    )
    item.SegmentDescription = ascii_text(description, 1024)  # (0062,0006), ST: free text
    return item
