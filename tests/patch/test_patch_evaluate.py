"""Patch-level AUC of bag attention and patch probabilities against ground truth."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wsi_engine.errors import DataError
from wsi_engine.patch.evaluate import (
    SlidePatchScores,
    attention_evidence,
    compare_patch_auc,
    patch_auc,
    slide_scores_from_store,
)
from wsi_engine.store import PatchStore


def test_patch_auc_thresholds_the_truth_fraction():
    truth = np.array([0.0, 0.2, 0.6, 1.0])
    assert patch_auc(truth, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert patch_auc(truth, np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert patch_auc(truth, np.array([0.1, 0.2, 0.3, 0.4]), threshold=0.1) == 1.0
    assert math.isnan(patch_auc(np.zeros(3), np.arange(3.0)))


def test_attention_is_scaled_by_bag_size_before_pooling():
    # two slides: a small one whose raw attention is large everywhere, a large one with a clear lesion
    small = SlidePatchScores(
        "small", np.zeros(2), np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([[0.9, 0.1], [0.8, 0.2]])
    )
    big_attention = np.full((10, 2), 0.05)
    big_attention[:2, 1] = 0.3  # lesion patches: 3x the bag average
    big_attention[2:, 1] = 0.4 / 8
    big = SlidePatchScores(
        "big", np.array([1.0, 1.0] + [0.0] * 8), big_attention, np.tile([0.5, 0.5], (10, 1))
    )
    np.testing.assert_allclose(attention_evidence(big_attention, 1)[:2], 3.0)
    report = compare_patch_auc([small, big], class_index=1)
    assert (
        report.bag_attention == 1.0
    )  # raw attention (0.5 on the small slide) would rank normal patches first
    assert report.n_slides == 2 and report.n_patches == 12 and report.n_positive == 2
    assert report.bag_attention_per_slide == 1.0  # only the big slide has both kinds of patch
    assert report.patch_classifier == pytest.approx(
        patch_auc(np.r_[small.truth, big.truth], np.r_[[0.1, 0.2], [0.5] * 10])
    )
    assert report.not_worse is False


def test_scores_and_truth_read_from_a_store(tmp_path, feature_store):
    path = feature_store(
        tmp_path, "s1", np.zeros((4, 8), dtype=np.float32), patch_level0=100.0
    )  # 2x2 grid
    geojson = tmp_path / "s1.lesions.geojson"
    square = [[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]  # exactly the first patch
    geojson.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {"type": "Polygon", "coordinates": [square]},
                    }
                ],
            }
        )
    )
    store = PatchStore.open(path, mode="r+")
    names = {"class_names": ["normal", "tumor"]}
    store.write_scores(
        "bag", {"attention": np.tile([0.25, 0.25], (4, 1))}, {"kind": "bag", **names}
    )
    store.write_scores(
        "patch",
        {"probs": np.array([[0.1, 0.9], [0.8, 0.2], [0.7, 0.3], [0.9, 0.1]])},
        {"kind": "patch", **names},
    )
    scores = slide_scores_from_store(path, "bag", "patch", geojson)
    np.testing.assert_allclose(scores.truth, [1.0, 0.0, 0.0, 0.0])
    assert compare_patch_auc([scores], 1).patch_classifier == 1.0
    with pytest.raises(DataError, match="need 'attention'"):
        slide_scores_from_store(path, "patch", "patch", geojson)
