"""``wsi-engine fit`` and ``predict`` end to end on small real stores."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from wsi_engine.cli import main
from wsi_engine.store import PatchStore

from ..cli_args import cli_args
from .conftest import bag_cohort, synthetic_bags, write_cohort

CLASSES = ["normal", "tumor"]
SMALL = {
    "libra": ["--set", "dim=16", "--set", "heads=2", "--kv", "3"],
    "abmil": ["--set", "dim=16", "--set", "attention_dim=8"],
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    bags, stores, labels = bag_cohort(root, CLASSES, n_per_class=12, dim=16, size=(20, 40), seed=3)
    return root, stores, labels, bags


def fit_args(stores, labels, out, *extra, model="libra", shots="2,4", encoder="test-enc"):
    """``wsi-engine fit`` of a small ``model``: 3 folds, 2 epochs, seed 1."""
    common = {"task": "synthetic-demo", "folds": 3, "seed": 1, "epochs": 2, "patience": 2}
    options = {"encoder": encoder, "model": model, "shots": shots, "lr": "1e-3", **common}
    return [
        *cli_args("fit", stores=stores, labels=labels, out=out, **options),
        *SMALL[model],
        *extra,
    ]


def predict_args(run, stores, out, *extra):
    """``wsi-engine predict --run RUN --stores STORES --out OUT EXTRA...``."""
    return ["predict", "--run", str(run), "--stores", str(stores), "--out", str(out), *extra]


def fold_metrics(run_dir):
    rows = json.loads((run_dir / "results.json").read_text())["folds"]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_fit_writes_a_complete_run_and_same_seed_gives_same_results(cohort, capsys):
    root, stores, labels, _ = cohort
    run_a, run_b = root / "run-a", root / "run-b"
    assert main(fit_args(stores, labels, run_a)) == 0
    out = capsys.readouterr().out
    assert "test metrics over folds" in out and "text-free form" in out
    run = json.loads((run_a / "run.json").read_text())
    assert run["status"] == "complete" and run["language_priors"] == "text-free"
    assert (
        run["class_names"] == CLASSES
        and run["encoder_id"] == "test-enc"
        and run["run_id"] == "run-a"
    )
    assert len(run["checkpoints"]) == 6
    for name in (
        "config.yaml",
        "task.yaml",
        "splits.json",
        "results.csv",
        "results.json",
        "roc.png",
        "curves.png",
    ):
        assert (run_a / name).is_file(), name
    fold = run_a / "folds" / "shots_4" / "fold_2"
    assert {p.name for p in fold.iterdir()} == {"model.pt", "history.json", "test_predictions.csv"}
    assert not (run_a / "text_embeddings.npz").exists()
    summary = list(csv.DictReader(open(run_a / "results.csv")))
    assert [r["fold"] for r in summary if r["shots"] == "4"] == [
        "0",
        "1",
        "2",
        "mean",
        "std",
        "n",
        "undefined",
        "ci_low",
        "ci_high",
    ]
    assert "test_balanced_accuracy" in summary[0] and "balanced_accuracy" not in summary[0]
    results = json.loads((run_a / "results.json").read_text())
    assert "test slides only" in results["evaluated_on"]
    assert results["summary"]["4"]["test_auc"]["undefined"] == 0

    assert main(fit_args(stores, labels, run_b)) == 0
    assert (run_a / "splits.json").read_text() == (run_b / "splits.json").read_text()
    assert fold_metrics(run_a) == fold_metrics(run_b)


def test_occupied_run_dir_is_refused_unless_overwrite(cohort, capsys):
    root, stores, labels, _ = cohort
    out = root / "run-c"
    assert main(fit_args(stores, labels, out, shots="2")) == 0
    capsys.readouterr()
    assert main(fit_args(stores, labels, out, shots="2", model="abmil")) == 8
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--overwrite" in err
    assert json.loads((out / "run.json").read_text())["model"] == "libra"
    assert main(fit_args(stores, labels, out, "--overwrite", shots="2", model="abmil")) == 0
    assert json.loads((out / "run.json").read_text())["model"] == "abmil"
    (root / "foreign").mkdir()
    (root / "foreign" / "notes.txt").write_text("mine")
    assert main(fit_args(stores, labels, root / "foreign", "--overwrite", shots="2")) == 8
    assert "holds no wsi-engine run" in capsys.readouterr().err


def test_splits_file_reproduces_the_split_and_predict_writes_scores(cohort, capsys):
    root, stores, labels, bags = cohort
    first, again = root / "run-d", root / "run-e"
    assert main(fit_args(stores, labels, first, shots="2", model="abmil")) == 0
    assert (
        main(fit_args(stores, labels, again, "--splits", str(first / "splits.json"), model="abmil"))
        == 0
    )
    assert (
        json.loads((first / "splits.json").read_text())["splits"]
        == json.loads((again / "splits.json").read_text())["splits"]
    )

    preds = root / "preds.csv"
    assert main(predict_args(first, stores, preds, "--labels", str(labels))) == 0
    splits = json.loads((first / "splits.json").read_text())["splits"]
    seen = {s for split in splits for s in split["train"] + split["val"]}
    out = capsys.readouterr().out
    assert f"metrics on {len(bags) - len(seen)} out-of-sample labelled slide(s)" in out
    assert f"in-sample: {len(seen)} labelled slide(s)" in out
    rows = list(csv.DictReader(open(preds)))
    assert {r["slide_id"] for r in rows if r["in_sample"] == "True"} == seen
    assert sorted(r["slide_id"] for r in rows) == sorted(b.slide_id for b in bags)
    assert all(abs(float(r["prob_normal"]) + float(r["prob_tumor"]) - 1) < 1e-5 for r in rows)
    store = PatchStore.open(stores / f"{bags[0].slide_id}.zarr")
    arrays, attrs = store.read_scores("run-d-2shot-all")
    n = store.n_patches
    assert arrays["attention"].shape == (n, 2) and arrays["instance_score"].shape == (n,)
    np.testing.assert_allclose(arrays["attention"].sum(0), 1.0, atol=1e-4)
    assert (
        attrs["kind"] == "bag"
        and attrs["class_names"] == CLASSES
        and attrs["encoder_id"] == "test-enc"
    )
    assert (
        attrs["model"] == "abmil"
        and attrs["task"] == "synthetic-demo"
        and len(attrs["slide_probs"]) == 2
    )
    assert attrs["predicted_class"] in CLASSES and attrs["run_id"] == "run-d-2shot-all"

    one = root / "preds-fold0.csv"
    args = predict_args(first, stores, one, "--labels", str(labels), "--fold", "0", "--no-scores")
    assert main(args) == 0
    split = next(s for s in splits if s["fold"] == 0)
    marked = {r["slide_id"]: r["in_sample"] == "True" for r in csv.DictReader(open(one))}
    assert {s for s, inside in marked.items() if inside} == set(split["train"] + split["val"])
    assert set(split["test"]) <= {s for s, inside in marked.items() if not inside}
    out = capsys.readouterr().out
    assert f"metrics on {len(bags) - len(split['train'] + split['val'])} out-of-sample" in out


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (lambda labels: labels + "ghost,tumor\n", 7, "have no patch store"),
        (
            lambda labels: labels + labels.splitlines()[1].split(",")[0] + "x,cancer\n",
            7,
            "does not define: cancer",
        ),
    ],
)
def test_bad_labels_fail_with_one_line(cohort, tmp_path, capsys, change, code, message):
    _, stores, labels, _ = cohort
    bad = tmp_path / "labels.csv"
    bad.write_text(change(labels.read_text()), encoding="utf-8")
    assert main(fit_args(stores, bad, tmp_path / "run")) == code
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_too_few_slides_for_shots_and_bad_options(cohort, tmp_path, capsys):
    _, stores, labels, _ = cohort
    assert main(fit_args(stores, labels, tmp_path / "run", shots="16")) == 7
    assert "16 shots with 3 folds needs at least" in capsys.readouterr().err
    assert main(fit_args(stores, labels, tmp_path / "run", "--fusion", "none", model="abmil")) == 3
    assert "apply to --model libra only" in capsys.readouterr().err
    assert main(fit_args(stores, labels, tmp_path / "run", "--loss", "hinge")) == 3


def test_language_priors_with_tiny_clip_and_text_free_fallback(
    tmp_path, monkeypatch, tiny_checkpoint
):
    from wsi_engine.prompts import TaskEmbeddings

    monkeypatch.setenv("WSI_ENGINE_CACHE", str(tmp_path / "cache"))
    bags = synthetic_bags(n_per_class=9, dim=32, size=(20, 30), seed=5)
    stores, labels = write_cohort(
        tmp_path, bags, CLASSES, encoder_id="tiny-clip", text_aligned=True, output_kind="joint"
    )
    run = tmp_path / "lang"
    language = ["--checkpoint", str(tiny_checkpoint), "--proto-init", "kmeans", "--fusion", "sot"]
    losses = ["--loss", "reinforced-focal", "--resample"]
    assert (
        main(fit_args(stores, labels, run, *language, *losses, shots="2", encoder="tiny-clip")) == 0
    )
    meta = json.loads((run / "run.json").read_text())
    assert meta["language_priors"] == "text-embeddings" and "tiny-clip" in meta["language_note"]
    text = TaskEmbeddings.load(run / "text_embeddings.npz")
    assert text.entities.shape == (8, 32) and text.class_names == tuple(CLASSES)
    history = json.loads((run / "folds" / "shots_2" / "fold_0" / "history.json").read_text())
    assert {"query_weight.label", "query_weight.bag_high", "tau_f"} <= history[-1].keys()
    assert main(predict_args(run, stores, tmp_path / "p.csv", "--fold", "1")) == 0
    arrays, attrs = PatchStore.open(stores / f"{bags[0].slide_id}.zarr").read_scores(
        "lang-2shot-fold1"
    )
    assert attrs["folds"] == [1] and "instance_score" in arrays

    free = tmp_path / "free"
    assert main(fit_args(stores, labels, free, "--text-free", shots="2", encoder="tiny-clip")) == 0
    meta = json.loads((free / "run.json").read_text())
    assert meta["language_priors"] == "text-free" and "--text-free" in meta["language_note"]
    assert not (free / "text_embeddings.npz").exists()


def test_language_priors_decision_for_image_only_and_baseline_models():
    from types import SimpleNamespace

    from wsi_engine.encoders import load_encoder_config
    from wsi_engine.mil.fit import FitConfig, language_priors, resolve_encoder
    from wsi_engine.prompts import load_task

    task = load_task("synthetic-demo")
    cohort = SimpleNamespace(feature_attrs={"output_kind": "image_only"})
    image_only = load_encoder_config("efficientnet-lite0")
    config = FitConfig(task="synthetic-demo", encoder="efficientnet-lite0")
    decision = language_priors(config, task, image_only, cohort, None)
    assert not decision.used and "image-only" in decision.note
    abmil = FitConfig(task="synthetic-demo", encoder="tiny-clip", model="abmil")
    assert (
        "uses no language priors"
        in language_priors(abmil, task, load_encoder_config("tiny-clip"), cohort, None).note
    )
    assert resolve_encoder("uni-imported") == ("uni-imported", None)
    assert resolve_encoder("tiny-clip")[0] == "tiny-clip"


def _predictions(run_dir):
    return {
        str(p.relative_to(run_dir)): p.read_text()
        for p in sorted(run_dir.glob("folds/**/test_predictions.csv"))
    }


def test_same_seeds_give_same_numbers_and_seeds_differ(cohort, capsys):
    root, stores, labels, _ = cohort
    args = ("--seeds", "0,3", "--set", "dim=16", "--set", "heads=2", "--kv", "3")
    run_a, run_b = root / "a", root / "b"
    assert main(fit_args(stores, labels, run_a, *args, shots="2")) == 0
    assert "over 2 seeds" in capsys.readouterr().out
    assert main(fit_args(stores, labels, run_b, *args, shots="2")) == 0
    results_a = json.loads((run_a / "results.json").read_text())
    results_b = json.loads((run_b / "results.json").read_text())
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(results_a["folds"]) == strip(results_b["folds"])
    assert results_a["summary"] == results_b["summary"]
    assert _predictions(run_a) == _predictions(run_b)

    assert {r["seed"] for r in results_a["folds"]} == {0, 3}
    assert "over training seeds" in results_a["spread"]
    summary = results_a["summary"]["2"]["test_balanced_accuracy"]
    assert summary["seeds"] == 2 and summary["ci_low"] <= summary["ci_high"]
    per_seed = [
        np.mean([r["test_balanced_accuracy"] for r in results_a["folds"] if r["seed"] == s])
        for s in (0, 3)
    ]
    assert summary["mean"] == pytest.approx(np.mean(per_seed))
    assert summary["std"] == pytest.approx(np.std(per_seed, ddof=1))

    # same splits, different initialisation: the seeds' predictions differ
    fold = run_a / "folds" / "shots_2" / "fold_0"
    seed0 = (fold / "seed_0" / "test_predictions.csv").read_text()
    seed3 = (fold / "seed_3" / "test_predictions.csv").read_text()
    assert seed0.splitlines()[1].split(",")[0] == seed3.splitlines()[1].split(",")[0]
    assert seed0 != seed3
    rows = list(csv.DictReader(open(run_a / "results.csv")))
    assert {r["fold"] for r in rows} >= {"mean", "std", "ci_low", "ci_high", "seeds"}


def test_bad_seeds_are_a_usage_error(cohort, tmp_path, capsys):
    _, stores, labels, _ = cohort
    assert main(fit_args(stores, labels, tmp_path / "r", "--seeds", "1,1", shots="2")) == 3
    assert "--seeds" in capsys.readouterr().err
