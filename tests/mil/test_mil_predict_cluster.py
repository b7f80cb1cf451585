"""``wsi-engine predict --scheduler``: one task per store on the workers, the same CSV and scores."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from wsi_engine.cli import main
from wsi_engine.store import PatchStore

from .conftest import bag_cohort
from .test_mil_cli_fit_predict import CLASSES, fit_args, predict_args


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    _, stores, labels = bag_cohort(root, CLASSES, n_per_class=6, dim=16, size=(20, 40), seed=4)
    run = root / "run"
    assert main(fit_args(stores, labels, run, shots="2", model="abmil")) == 0
    return root, stores, labels, run


@pytest.mark.slow
def test_predict_on_two_workers_equals_local(fitted, dask_cluster, capsys):
    from distributed import Client, get_task_stream

    root, stores, labels, run = fitted
    local, remote = root / "local.csv", root / "remote.csv"
    assert main(predict_args(run, stores, local, "--labels", str(labels))) == 0
    local_scores = {
        p.name: PatchStore.open(p).read_scores("run-2shot-all")[0]["attention"]
        for p in sorted(stores.glob("*.zarr"))
    }
    capsys.readouterr()
    with Client(dask_cluster) as client, get_task_stream(client) as stream:
        command = predict_args(run, stores, remote, "--labels", str(labels))
        assert main([*command, "--scheduler", dask_cluster]) == 0
    assert "out-of-sample labelled slide(s)" in capsys.readouterr().out
    workers = {t["worker"] for t in stream.data if t["key"].startswith("predict-")}
    assert len(workers) == 2
    a, b = list(csv.DictReader(open(local))), list(csv.DictReader(open(remote)))
    assert [r["slide_id"] for r in a] == [r["slide_id"] for r in b] and len(a) == 12
    for left, right in zip(a, b, strict=True):
        assert left.keys() == right.keys()
        assert left["predicted"] == right["predicted"]
        assert abs(float(left["prob_tumor"]) - float(right["prob_tumor"])) < 1e-5
    for name, attention in local_scores.items():
        scores = PatchStore.open(stores / name).read_scores("run-2shot-all")[0]["attention"]
        np.testing.assert_allclose(scores, attention, atol=1e-5)
