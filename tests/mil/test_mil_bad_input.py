"""Bad input to fitting: each case fails before training with one clear message."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_engine.errors import DataError
from wsi_engine.mil.data import BagReader, build_cohort, read_labels

from .conftest import bag_cohort, write_store

CLASSES = ("normal", "tumor")


@pytest.fixture
def small_cohort(tmp_path):
    bags, stores, labels = bag_cohort(
        tmp_path, list(CLASSES), n_per_class=3, dim=8, size=(5, 10), seed=1
    )
    return stores, labels, bags


def test_good_cohort_builds_and_reads_float32(small_cohort):
    stores, labels, bags = small_cohort
    cohort = build_cohort(read_labels(labels), [stores], "test-enc", CLASSES, "demo")
    assert [s.slide_id for s in cohort.slides] == sorted(b.slide_id for b in bags)
    assert cohort.feature_dim == 8 and cohort.feature_attrs["output_kind"] == "image_only"
    reader = BagReader.for_cohort(cohort, cache_bytes=1)
    x = reader.get(bags[0].slide_id)
    assert x.dtype.is_floating_point and x.dtype.itemsize == 4
    np.testing.assert_allclose(x.numpy(), bags[0].features, atol=2e-3)  # float16 on disk
    reader.get(bags[1].slide_id)
    assert len(reader._cache) == 1  # byte-bounded LRU keeps at least the current bag


def test_labels_naming_slides_without_store(small_cohort):
    stores, labels, _ = small_cohort
    with open(labels, "a", encoding="utf-8") as handle:
        handle.write("ghost-1,tumor\nghost-2,normal\n")
    with pytest.raises(
        DataError, match=r"2 labelled slide\(s\) have no patch store .*ghost-1, ghost-2"
    ):
        build_cohort(read_labels(labels), [stores], "test-enc", CLASSES, "demo")


def test_labels_naming_slides_without_features_for_the_encoder(small_cohort):
    stores, labels, _ = small_cohort
    write_store(stores, "bare", None)
    with open(labels, "a", encoding="utf-8") as handle:
        handle.write("bare,tumor\n")
    with pytest.raises(
        DataError, match="no complete features for encoder 'test-enc': bare.*wsi-engine embed"
    ):
        build_cohort(read_labels(labels), [stores], "test-enc", CLASSES, "demo")
    with pytest.raises(DataError, match="no complete features for encoder 'other-enc'"):
        build_cohort(read_labels(labels), [stores], "other-enc", CLASSES, "demo")


def test_class_not_in_task_and_task_class_not_in_labels(small_cohort):
    stores, labels, _ = small_cohort
    known = read_labels(labels)
    with pytest.raises(
        DataError, match="labels use classes that task 'demo' does not define: tumor"
    ):
        build_cohort(known, [stores], "test-enc", ("normal", "cancer"), "demo")
    with pytest.raises(
        DataError, match="task 'demo' class\\(es\\) without any labelled slide: other"
    ):
        build_cohort(known, [stores], "test-enc", ("normal", "tumor", "other"), "demo")


def test_single_class(small_cohort):
    stores, labels, _ = small_cohort
    single = {k: "tumor" for k in read_labels(labels)}
    with pytest.raises(DataError, match="single class 'tumor'"):
        build_cohort(single, [stores], "test-enc", CLASSES, "demo")


def test_nan_or_inf_features_name_the_store(tmp_path):
    features = np.ones((6, 4), dtype=np.float32)
    features[2, 1] = np.nan
    nan_store = write_store(tmp_path, "has-nan", features)
    features[2, 1] = np.inf
    write_store(tmp_path, "has-inf", features)
    reader = BagReader({"has-nan": nan_store, "has-inf": tmp_path / "has-inf.zarr"}, "test-enc")
    for slide in ("has-nan", "has-inf"):
        with pytest.raises(
            DataError,
            match=rf"{slide}.zarr: features of encoder 'test-enc' contain NaN or infinite values in 1 of 6 patches",
        ):
            reader.get(slide)


def test_bad_labels_files(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("slide,class\na,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="need 'slide_id' and 'label' columns"):
        read_labels(path)
    path.write_text("slide_id,label\na,x\na,y\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3: slide 'a' is labelled twice"):
        read_labels(path)
    with pytest.raises(DataError, match="cannot read labels"):
        read_labels(tmp_path / "missing.csv")
