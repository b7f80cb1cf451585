"""``fit --fusion`` on small real stores: fusion diagnostics in the run, and the paired ablation."""

from __future__ import annotations

import json

import pytest

from wsi_engine.cli import main

from .conftest import bag_cohort
from .test_mil_cli_fit_predict import CLASSES, fit_args


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion-cohort")
    _, stores, labels = bag_cohort(root, CLASSES, n_per_class=6, dim=16, size=(20, 30), seed=4)
    return root, stores, labels


def test_fusion_ablation_runs_modes_on_same_splits_and_prints_paired_differences(cohort, capsys):
    root, stores, labels = cohort
    out = root / "ablation"
    args = fit_args(stores, labels, out, "--fusion", "sot-instance,none", shots="2")
    args[args.index("--epochs") + 1] = "1"
    args += ["--seeds", "0,1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "fusion ablation" in printed and "fusion diagnostics" in printed
    ablation = json.loads((out / "ablation.json").read_text())
    assert ablation["reference"] == "sot-instance"
    rows = {(d["mode"], d["metric"]): d for d in ablation["differences"]}
    assert rows[("none", "balanced_accuracy")]["units"] == 3 * 2  # folds x seeds, paired
    splits = [json.loads((out / m / "splits.json").read_text()) for m in ("sot-instance", "none")]
    assert splits[0]["splits"] == splits[1]["splits"]
    fold_rows = json.loads((out / "sot-instance" / "results.json").read_text())["folds"]
    assert all(
        "fusion.ess" in r["fusion"] and "fusion.prob_change" in r["fusion"] for r in fold_rows
    )
    history = next((out / "sot-instance").rglob("history.json"))
    assert "fusion.kl_plan" in json.loads(history.read_text())[0]


def test_fusion_option_refuses_unknown_modes(cohort, capsys):
    root, stores, labels = cohort
    assert main(fit_args(stores, labels, root / "bad", "--fusion", "sot,magic")) == 3
    assert "--fusion" in capsys.readouterr().err


def test_default_contrast_fusion_records_its_prototypes_and_takes_nested_settings(cohort, capsys):
    """The default fit runs the contrast fusion; ``--set contrast.per_class=1`` reaches it, and the
    run records how many diagnostic prototypes it found (every fold, history and results)."""
    root, stores, labels = cohort
    out = root / "contrast"
    args = fit_args(stores, labels, out, "--set", "contrast.per_class=1", shots="2")
    args[args.index("--epochs") + 1] = "1"
    assert main(args) == 0
    assert "fusion diagnostics" in capsys.readouterr().out
    run = json.loads((out / "run.json").read_text())
    assert run["model_config"]["fusion"] == "contrast"
    assert run["model_config"]["contrast"]["per_class"] == 1
    for row in json.loads((out / "results.json").read_text())["folds"]:
        assert row["fusion"]["diagnostic_prototypes"] in (0, 1, 2)  # ≤ per_class × 2 classes
    history = json.loads(next(out.rglob("history.json")).read_text())
    assert "diagnostic_prototypes" in history[0]
    bad = fit_args(stores, labels, root / "bad-contrast", "--set", "contrast.per_clas=1")
    assert main(bad) == 3
    assert "per_clas" in capsys.readouterr().err
