"""Tissue detection on a generated pyramidal slide with pen marks and black edges, read back with tiffslide."""

from __future__ import annotations

import numpy as np
import pytest
import tiffslide

from wsi_engine.synthetic import generate_slide
from wsi_engine.tissue import TissueConfig, detect_tissue, segmentation_size


@pytest.mark.slow
def test_detection_matches_generator_ground_truth(tmp_path, mask_iou):
    size, mpp = (2048, 1536), 2.0  # 4 × 3 mm; pyramid level 1 is at 8 µm/px
    truth = generate_slide(
        tmp_path / "slide.tiff",
        width=size[0],
        height=size[1],
        mpp=mpp,
        artefacts=("pen", "black_edge"),
    )
    assert set(truth.artefacts.names) == {"pen", "black_edge"}
    config = TissueConfig()
    with tiffslide.TiffSlide(truth.path) as slide:
        assert slide.level_downsamples[1] * mpp == config.seg_mpp
        assert segmentation_size(slide.dimensions, mpp, config.seg_mpp) == slide.level_dimensions[1]
        image = slide.read_region((0, 0), 1, slide.level_dimensions[1], as_array=True)
    found = detect_tissue(image, config.seg_mpp, config, size)
    k = round(truth.mask_downsample / found.downsample[0])  # detection px per truth px
    h, w = found.mask.shape
    expected = np.repeat(np.repeat(truth.tissue_mask, k, axis=0), k, axis=1)[:h, :w]
    assert mask_iou(found.mask, expected) >= 0.9
