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
