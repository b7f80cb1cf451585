"""Pairing by CLIP similarity: top-k order, slides into stores, patches beside the folder, quality report, encoder checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsi_engine.cli import main
from wsi_engine.mil.fewshot import Split, save_splits
from wsi_engine.reports.corpus import ReportCorpus
from wsi_engine.reports.pairing import pair
from wsi_engine.reports.quality import pairing_quality
from wsi_engine.store import PatchStore
from wsi_engine.synthetic.joint_space import JointSpace

from ..cli_args import cli_args
from .conftest import imported_corpus, saved_corpus, slide_cohort


def test_top_k_is_sorted_by_cosine_and_matches_brute_force():
    space = JointSpace()
    corpus = space.corpus(10, True, seed=1)
    images = space.images(5, seed=2)
    pairs = pair(
        images.features * 3.0, corpus, [str(i) for i in range(len(images))], k=4
    )  # scale-free
    similarity = images.features @ corpus.embeddings.T
    assert np.array_equal(pairs.indices, np.argsort(-similarity, axis=1)[:, :4])
    assert np.allclose(pairs.scores, np.take_along_axis(similarity, pairs.indices, 1), atol=1e-5)
    assert (np.diff(pairs.scores, axis=1) <= 0).all()


def test_reports_carrying_class_information_are_retrieved_above_chance():
    space = JointSpace()
    images = space.images(40, seed=4)
    labels = [space.class_names[t] for t in images.hard]
    ids = [str(i) for i in range(len(images))]
    informative = space.corpus(20, True, seed=5)
    quality = pairing_quality(pair(images.features, informative, ids), informative, labels)
    assert quality.chance_agreement == pytest.approx(1 / 3)
    assert quality.class_agreement > 0.55  # measured 0.69 (seeds 4/5; images are noisy)
    assert 1 < quality.distinct_top1 <= 60 and quality.n_items == 120
    unrelated = space.corpus(20, False, seed=5)
    q = pairing_quality(pair(images.features, unrelated, ids), unrelated, labels)
    assert q.class_agreement is None  # unrelated reports carry no class
    assert q.score_stats["mean"] < quality.score_stats["mean"]
    assert sum(quality.histogram[1]) == 120
    assert quality.most_similar[0].score >= quality.least_similar[0].score


def test_slides_are_paired_into_their_stores(tmp_path, capsys):
    space = JointSpace(n_classes=2)
    stores, _ = slide_cohort(tmp_path, space, 3)
    corpus_dir = saved_corpus(tmp_path / "corpus", space, True)
    corpus = ReportCorpus.load(corpus_dir)
    assert main(cli_args(("reports", "pair"), corpus=corpus_dir, stores=stores, top_k=2)) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal width
    assert (
        "most similar pairs" in out
        and "least similar pairs" in out
        and "distinct reports used" in out
    )
    hits = 0
    for path in sorted(stores.iterdir()):
        store = PatchStore.open(path)
        assert store.report_pairs() == [corpus.corpus_id]
        arrays, attrs = store.read_report_pairs(corpus.corpus_id)
        assert arrays["indices"].dtype == np.int64 and arrays["indices"].shape == (2,)
        assert arrays["scores"][0] >= arrays["scores"][1]
        assert attrs["k"] == 2 and attrs["selection"] == "all slides"
        assert attrs["report_ids"] == [corpus.reports[int(i)].report_id for i in arrays["indices"]]
        hits += corpus.reports[int(arrays["indices"][0])].label == path.name.split("-")[0]
    assert hits >= 5  # pooled slides find reports of their class
    quality = json.loads((corpus_dir / "pairs-slides" / "pairing_quality.json").read_text())
    assert quality["n_items"] == 6 and quality["k"] == 2

    labels = tmp_path / "labels.csv"
    assert (
        main(
            [
                "reports",
                "quality",
                "--corpus",
                str(corpus_dir),
                "--stores",
                str(stores),
                "--labels",
                str(labels),
            ]
        )
        == 0
    )
    out = " ".join(capsys.readouterr().out.split())
    assert "6 item(s) paired with top-2 of 12 reports" in out
    assert f"top-1 report of the item's class: {hits / 6:.1%} (chance 50.0%)" in out


def test_train_only_pairs_only_training_slides(tmp_path):
    space = JointSpace(n_classes=2)
    stores, _ = slide_cohort(tmp_path, space, 3)
    corpus_dir = saved_corpus(tmp_path / "corpus", space, True)
    splits = tmp_path / "splits.json"
    save_splits(
        splits,
        [
            Split(
                1,
                0,
                ("normal-00", "tumor-00"),
                ("normal-01", "tumor-01"),
                ("normal-02", "tumor-02"),
            )
        ],
        seed=0,
        folds=1,
        source="test",
    )
    args = cli_args(
        ("reports", "pair"), corpus=corpus_dir, stores=stores, train_only=True, splits=splits
    )
    assert main(args) == 0
    paired = sorted(p.name for p in stores.iterdir() if PatchStore.open(p).report_pairs())
    assert paired == ["normal-00.zarr", "tumor-00.zarr"]


def test_stores_of_another_encoder_are_refused(tmp_path, capsys):
    space = JointSpace(n_classes=2)
    stores, _ = slide_cohort(tmp_path, space, 2, encoder_id="other-encoder")
    corpus_dir = saved_corpus(tmp_path / "corpus", space, True)
    assert main(["reports", "pair", "--corpus", str(corpus_dir), "--stores", str(stores)]) == 6
    err = " ".join(capsys.readouterr().err.split())
    assert "reports were embedded with encoder 'test-joint', features are of 'other-encoder'" in err
    assert "Traceback" not in err


def test_image_only_features_are_refused_naming_the_text_tower(tmp_path, capsys):
    space = JointSpace(n_classes=2)
    stores, _ = slide_cohort(tmp_path, space, 2, output_kind="image_only")
    corpus_dir = saved_corpus(tmp_path / "corpus", space, True)
    assert main(["reports", "pair", "--corpus", str(corpus_dir), "--stores", str(stores)]) == 6
    assert "needs an encoder with a text tower" in " ".join(capsys.readouterr().err.split())


def test_patch_folder_is_paired_beside_the_folder(tmp_path, image_folder, tiny_clip_args):
    corpus_dir = imported_corpus(
        tmp_path, ["pink normal tissue", "purple tumour cells", "stroma"], tiny_clip_args
    )
    corpus = ReportCorpus.load(corpus_dir)
    checkpoint = tiny_clip_args[tiny_clip_args.index("--checkpoint") + 1]
    args = [
        "reports",
        "pair",
        "--corpus",
        str(corpus_dir),
        "--images",
        str(image_folder),
        "--checkpoint",
        checkpoint,
        "--top-k",
        "3",
    ]
    assert main([*args, "--train-only"]) == 0
    beside = image_folder.parent / f"images.reports-{corpus.corpus_id}"
    with np.load(beside / "pairs.npz") as data:
        assert data["indices"].shape == (10, 3)  # 16 images less 2 test and 1 validation per class
        assert set(data["indices"][0]) == {0, 1, 2}
    assert main(args) == 0
    with np.load(beside / "pairs.npz") as data:
        assert data["indices"].shape == (16, 3)
    assert (beside / "pairs.csv").read_text().count("\n") == 16 * 3 + 1
