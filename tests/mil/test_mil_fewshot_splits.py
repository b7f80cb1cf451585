"""Few-shot split protocol, determinism, and split files (JSON, FOCUS/CLAM-style CSV)."""

from __future__ import annotations

import numpy as np
import pytest

from wsi_engine.errors import DataError
from wsi_engine.mil import fewshot

CLASSES = ("normal", "tumor")


def cohort(n_per_class: int = 30):
    ids = [f"s{i:03d}" for i in range(2 * n_per_class)]
    targets = np.array([i % 2 for i in range(2 * n_per_class)])
    labels = {s: CLASSES[t] for s, t in zip(ids, targets, strict=True)}
    return ids, targets, labels


def test_protocol_properties():
    ids, targets, labels = cohort()
    splits = fewshot.make_splits(ids, targets, CLASSES, [1, 4, 8], folds=5, seed=0)
    assert len(splits) == 15
    for shots in (1, 4, 8):
        chosen = [s for s in splits if s.shots == shots]
        tested = [x for s in chosen for x in s.test]
        assert len(tested) == len(set(tested))  # test sets of different folds are disjoint
        assert sorted(x for s in chosen for x in (*s.val, *s.test)) == sorted(
            ids
        )  # held-out parts cover the cohort
        for s in chosen:
            assert (
                not set(s.train) & set(s.val)
                and not set(s.train) & set(s.test)
                and not set(s.val) & set(s.test)
            )
            counts = [sum(labels[x] == c for x in s.train) for c in CLASSES]
            assert counts == [shots, shots]
            assert {labels[x] for x in s.val} == set(CLASSES) and {
                labels[x] for x in s.test
            } == set(CLASSES)
    for fold in range(5):
        one, four, eight = (
            next(s for s in splits if s.shots == m and s.fold == fold) for m in (1, 4, 8)
        )
        assert set(one.train) <= set(four.train) <= set(eight.train)  # nested draws
        assert one.val == eight.val and one.test == eight.test
    fewshot.check_splits(splits, labels, CLASSES)


def test_same_seed_same_splits_other_seed_other_splits():
    ids, targets, _ = cohort()
    a = fewshot.make_splits(ids, targets, CLASSES, [4], 5, seed=3)
    b = fewshot.make_splits(list(reversed(ids)), targets[::-1], CLASSES, [4], 5, seed=3)
    c = fewshot.make_splits(ids, targets, CLASSES, [4], 5, seed=4)
    assert a == b  # input order does not matter
    assert a != c


def test_too_few_slides_for_the_shots_is_a_clear_error():
    ids, targets, _ = cohort(10)
    with pytest.raises(
        DataError,
        match=r"class 'normal' has 10 slide\(s\); 16 shots with 5 folds needs at least 20",
    ):
        fewshot.make_splits(ids, targets, CLASSES, [1, 16], 5, seed=0)
    with pytest.raises(DataError, match="at least 2 folds"):
        fewshot.make_splits(ids, targets, CLASSES, [1], 1, seed=0)
    assert fewshot.min_slides_per_class(16, 5) == 20
    assert fewshot.min_slides_per_class(4, 3) == 6
    small_ids, small_targets, _ = cohort(6)
    fewshot.make_splits(small_ids, small_targets, CLASSES, [4], 3, seed=0)  # the minimum is enough


def test_json_round_trip(tmp_path):
    ids, targets, labels = cohort()
    splits = fewshot.make_splits(ids, targets, CLASSES, [1, 4], 3, seed=0)
    fewshot.save_splits(tmp_path / "splits.json", splits, seed=0, folds=3, source="generated")
    assert fewshot.load_splits([tmp_path / "splits.json"], labels) == splits


def test_focus_style_csv_folds(tmp_path):
    _, _, labels = cohort()
    for fold, (train, val, test) in enumerate(
        [
            (["s000", "s001", "s002", "s003"], ["s010", "s011"], ["s020", "s021", "s022"]),
            (["s004", "s005", "s006", "s007"], ["s012", "s013"], ["s024", "s025", "s026"]),
        ]
    ):
        rows = [",train,val,test"]
        for i in range(max(map(len, (train, val, test)))):
            cells = [col[i] if i < len(col) else "" for col in (train, val, test)]
            rows.append(f"{i}," + ",".join(cells))
        (tmp_path / f"splits_{fold}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    splits = fewshot.load_splits([tmp_path / "splits_0.csv", tmp_path / "splits_1.csv"], labels)
    assert [s.fold for s in splits] == [0, 1]
    assert splits[0].shots == 2 and splits[0].train == ("s000", "s001", "s002", "s003")
    assert splits[1].test == ("s024", "s025", "s026")
    fewshot.check_splits(splits, labels, CLASSES)


def test_split_checks_name_the_problem(tmp_path):
    _, _, labels = cohort()
    bad = [fewshot.Split(1, 0, ("s000", "s001"), ("s002",), ("ghost",))]
    with pytest.raises(DataError, match="not in the labels: ghost"):
        fewshot.check_splits(bad, labels, CLASSES)
    overlap = [fewshot.Split(1, 0, ("s000", "s001"), ("s001",), ("s003",))]
    with pytest.raises(DataError, match="both train and val"):
        fewshot.check_splits(overlap, labels, CLASSES)
    one_class = [fewshot.Split(1, 0, ("s000", "s002"), ("s001",), ("s003",))]
    with pytest.raises(DataError, match="no training slide of class"):
        fewshot.check_splits(one_class, labels, CLASSES)
    (tmp_path / "x.csv").write_text("train,validation\ns000,s001\n", encoding="utf-8")
    with pytest.raises(DataError, match="train, val and test columns"):
        fewshot.load_splits([tmp_path / "x.csv"], labels)
    (tmp_path / "x.json").write_text("{}", encoding="utf-8")
    with pytest.raises(DataError, match="not a wsi-engine splits file"):
        fewshot.load_splits([tmp_path / "x.json"], labels)
