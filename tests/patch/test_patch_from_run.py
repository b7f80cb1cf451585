"""fit-patches --from-run and predict-patches end to end, multi-scale views, and bad inputs."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from wsi_engine.cli import main
from wsi_engine.patch.multiscale import match_locations
from wsi_engine.prompts import PROMPT_FIELDS, TaskEmbeddings
from wsi_engine.store import PatchStore

CLASSES, ENCODER = (
    ["normal", "tumor"],
    "test-enc",
)  # as in conftest.py (the cohort fixture's task and encoder)


def random_text(dim: int) -> TaskEmbeddings:
    rng = np.random.default_rng(0)

    def unit(n: int) -> np.ndarray:
        x = rng.normal(size=(n, dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return TaskEmbeddings(ENCODER, tuple(CLASSES), unit(3), *(unit(2) for _ in PROMPT_FIELDS))


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def fit_patches(bag, stores, out, *extra: str) -> int:
    """Exit code of ``wsi-engine fit-patches --from-run BAG --stores STORES --out OUT EXTRA...``."""
    return main(
        ["fit-patches", "--from-run", str(bag), "--stores", str(stores), "--out", str(out), *extra]
    )


def predict_patches(run, stores, *extra: str) -> int:
    """Exit code of ``wsi-engine predict-patches --run RUN --stores STORES EXTRA...``."""
    return main(["predict-patches", "--run", str(run), "--stores", str(stores), *extra])


def test_fit_and_predict_patches_from_a_bag_run(tmp_path, cohort, bag_run_writer):
    stores, labels, slides = cohort
    bag = bag_run_writer(tmp_path / "bag", labels, 16, text=random_text(16))
    out = tmp_path / "patch-run"
    assert fit_patches(bag, stores, out, "--epochs", "2") == 0
    run = json.loads((out / "run.json").read_text())
    assert (
        run["format"] == "wsi-engine-patch-run"
        and run["language_priors"] is True
        and run["bag_run_id"] == "bag"
    )
    assert run["hard_targets"]["normal"] > 0 and run["hard_targets"]["tumor"] > 0
    assert [r["stage"] for r in read_csv(out / "metrics.csv")] == ["zero-shot", "trained"]
    assert len(read_csv(out / "targets.csv")) == len(slides)
    for name in (
        "confusion.png",
        "metrics.json",
        "history.json",
        "config.yaml",
        "text_embeddings.npz",
        "skipped.csv",
    ):
        assert (out / name).is_file(), name
    assert (
        torch.load(out / "model.pt", weights_only=True)["format"] == "wsi-engine-patch-checkpoint"
    )

    assert predict_patches(out, stores, "--out", str(tmp_path / "p.csv")) == 0
    arrays, attrs = PatchStore.open(stores / f"{slides[0].slide_id}.zarr").read_scores("patch-run")
    assert arrays["probs"].shape == (len(slides[0].features), 2)
    np.testing.assert_allclose(arrays["probs"].sum(1), 1.0, rtol=1e-5)
    assert (
        attrs["kind"] == "patch"
        and attrs["class_names"] == CLASSES
        and attrs["encoder_id"] == ENCODER
    )
    assert len(read_csv(tmp_path / "p.csv")) == len(slides)


def test_unusable_stores_are_skipped_and_reported(tmp_path, cohort, bag_run_writer, feature_store):
    stores, labels, slides = cohort
    shutil.rmtree(stores / f"{slides[0].slide_id}.zarr")  # a labelled slide without a store
    feature_store(
        stores, slides[1].slide_id, slides[1].features, encoder_id="other-enc"
    )  # no run features
    bag = bag_run_writer(tmp_path / "bag", labels, 16)
    out = tmp_path / "run"
    assert fit_patches(bag, stores, out, "--epochs", "1") == 0
    skipped = read_csv(out / "skipped.csv")
    assert (
        len(skipped) == 2
        and "without a store" in skipped[0]["reason"]
        and "other-enc" in skipped[1]["reason"]
    )
    assert (
        json.loads((out / "run.json").read_text())["language_priors"] is False
    )  # the run has no prompt embeddings
    # predicting: the store without features is reported, the others are written
    assert predict_patches(out, stores) == 1
    assert PatchStore.open(stores / f"{slides[2].slide_id}.zarr").has_scores("run")


def test_runs_and_stores_that_do_not_match(tmp_path, cohort, bag_run_writer, capsys):
    stores, labels, _ = cohort
    other_encoder = bag_run_writer(tmp_path / "bag-other", labels, 16, encoder_id="other-enc")
    assert fit_patches(other_encoder, stores, tmp_path / "a") == 7
    assert "encoder 'other-enc'" in capsys.readouterr().err
    bag = bag_run_writer(tmp_path / "bag", labels, 16)
    assert fit_patches(bag, stores, tmp_path / "b", "--task", "camelyon16") == 7
    assert "fitted for task 'synthetic-demo'" in capsys.readouterr().err
    other_labels = tmp_path / "other.csv"
    other_labels.write_text(labels.read_text().replace("tumor", "LUAD"))
    assert fit_patches(bag, stores, tmp_path / "c", "--labels", str(other_labels)) == 7
    assert "does not define" in capsys.readouterr().err
    assert predict_patches(bag, stores) == 7
    assert "not a wsi-engine patch run" in capsys.readouterr().err
    assert fit_patches(bag, stores, tmp_path / "d", "--metric", "triplet") == 3


def test_second_resolution_views_feed_the_metric_loss(
    tmp_path, cohort, bag_run_writer, feature_store
):
    stores, labels, slides = cohort
    coarse = tmp_path / "coarse"
    for slide in slides[1:]:  # the first slide has no second view: reported, still trained on
        fine = PatchStore.open(stores / f"{slide.slide_id}.zarr")
        coords = np.unique(fine.coords() // 448 * 448, axis=0)
        feature_store(
            coarse,
            slide.slide_id,
            np.random.default_rng(0).normal(size=(len(coords), 16)).astype(np.float32),
            coords=coords,
            mpp=1.0,
            patch_level0=448.0,
        )
    bag = bag_run_writer(tmp_path / "bag", labels, 16)
    out = tmp_path / "run"
    extra = ["--stores-2", str(coarse), "--metric", "triplet", "--hidden", "8", "--epochs", "1"]
    assert fit_patches(bag, stores, out, *extra) == 0
    run = json.loads((out / "run.json").read_text())
    assert [s["item"] for s in run["skipped"]] == [f"{slides[0].slide_id} (second view)"]
    assert "train_metric" in json.loads((out / "history.json").read_text())[0]


@pytest.mark.parametrize(
    ("model", "options", "extra", "used"),
    [
        ("libra", {"dim": 16, "heads": 2, "kv": 3, "fusion": "sot"}, [], "instance_score"),
        ("libra", {"dim": 16, "heads": 2, "fusion": "none"}, [], "attention"),
        ("libra", None, ["--evidence", "attention"], "attention"),
        ("abmil", None, [], "attention"),
        ("abmil", None, ["--evidence", "instance_score"], "instance_score"),
    ],
)
def test_default_evidence_follows_the_bag_run_and_is_recorded(
    tmp_path, cohort, bag_run_writer, model, options, extra, used
):
    stores, labels, _ = cohort
    bag = bag_run_writer(tmp_path / "bag", labels, 16, model=model, options=options)
    out = tmp_path / "run"
    assert fit_patches(bag, stores, out, "--epochs", "1", *extra) == 0
    assert json.loads((out / "run.json").read_text())["evidence"] == used
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["fit_patches"]["targets"]["evidence"] == used


def test_location_matching_across_resolutions():
    fine = np.array([[0, 0], [224, 0], [448, 448], [2000, 2000]])
    coarse = np.array([[0, 0], [448, 448]])
    assert match_locations(fine, 224, coarse, 448).tolist() == [0, 0, 1, -1]


def test_targets_come_only_from_the_training_slides_of_the_bag_fold(tmp_path, cohort, capsys):
    """A real fit run (2 folds): the head trains on fold 1's training slides only, selects on its
    validation slides and reports metrics on its test slides."""
    stores, labels, slides = cohort
    bag = tmp_path / "bag"
    fit = ["fit", "--stores", str(stores), "--labels", str(labels), "--task", "synthetic-demo"]
    fit += ["--encoder", ENCODER, "--out", str(bag), "--model", "abmil", "--shots", "1"]
    fit += ["--folds", "2", "--epochs", "2", "--set", "dim=8", "--set", "attention_dim=4"]
    assert main(fit) == 0
    out = tmp_path / "patch-run"
    assert fit_patches(bag, stores, out, "--fold", "1", "--epochs", "2") == 0
    split = next(
        s for s in json.loads((bag / "splits.json").read_text())["splits"] if s["fold"] == 1
    )
    rows = read_csv(out / "targets.csv")
    roles = {r["slide_id"]: r["role"] for r in rows}
    assert {s for s, r in roles.items() if r == "train"} == set(split["train"])
    assert {s for s, r in roles.items() if r == "val"} == set(split["val"])
    assert {s for s, r in roles.items() if r == "test"} == set(split["test"])
    run = json.loads((out / "run.json").read_text())
    train_patches = sum(int(r["n_used"]) for r in rows if r["role"] == "train")
    test_patches = sum(int(r["n_used"]) for r in rows if r["role"] == "test")
    assert run["n_train_patches"] == train_patches  # no patch of a val/test slide is trained on
    assert run["n_test_patches"] == test_patches
    assert run["bag_folds"] == [1] and run["bag_fold_roles"] is True
    assert all(r["evaluated_on"] == "test slides of the bag fold" for r in run["metrics"])
    assert run["slides_outside_fold"] == len(slides) - len(rows)

    capsys.readouterr()
    assert fit_patches(bag, stores, tmp_path / "all", "--fold", "all") == 7
    assert "validated or tested on" in capsys.readouterr().err
