"""One prediction call over many stores: a bad store is reported by slide id, the others are scored."""

from __future__ import annotations

import shutil

import pytest

from wsi_engine.cli import main
from wsi_engine.mil.fit import FitConfig, fit
from wsi_engine.mil.predict import predict
from wsi_engine.mil.train import TrainConfig
from wsi_engine.stage import StageObserver
from wsi_engine.store import PatchStore

from .conftest import bag_cohort, write_store

CLASSES = ["normal", "tumor"]
BAD = ["corrupt", "no-features"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """(run dir, bags): a one-epoch ABMIL run on 6 slides per class."""
    root = tmp_path_factory.mktemp("fitted")
    bags, stores, labels = bag_cohort(root, CLASSES, n_per_class=6, dim=8, size=(10, 20), seed=2)
    config = FitConfig(
        task="synthetic-demo",
        encoder="test-enc",
        model="abmil",
        model_options={"dim": 8, "attention_dim": 4},
        shots=[2],
        folds=3,
        train=TrainConfig(epochs=1),
    )
    return fit(config, labels, [stores], root / "run").run_dir, bags


@pytest.fixture
def mixed_stores(tmp_path, fitted):
    """A folder of three good stores, one whose zarr.json is garbage and one with another encoder's features."""
    run, bags = fitted
    stores = tmp_path / "stores"
    good = [bags[0], bags[1], bags[-1]]
    for bag in good:
        write_store(stores, bag.slide_id, bag.features)
    write_store(stores, "corrupt", bags[2].features)
    (stores / "corrupt.zarr" / "zarr.json").write_text("{not json")
    write_store(stores, "no-features", bags[3].features, encoder_id="other-enc")
    return run, stores, [b.slide_id for b in good]


def test_bad_stores_are_returned_by_slide_id_and_the_others_scored(mixed_stores, monkeypatch):
    import wsi_engine.mil.rundir as rundir

    run, stores, good = mixed_stores
    loads = []
    load_checkpoint = rundir.load_checkpoint
    monkeypatch.setattr(
        "wsi_engine.mil.predict.load_checkpoint", lambda p: loads.append(p) or load_checkpoint(p)
    )
    advanced = []

    class Seen(StageObserver):
        def slide_finished(self, result):
            advanced.append(result.slide_id)

    result = predict(run, [stores], stores.parent / "p.csv", observer=Seen())
    assert sorted(result.failures) == BAD
    assert "not a readable Zarr" in result.failures["corrupt"]
    assert "no features for encoder 'test-enc'" in result.failures["no-features"]
    assert sorted(r["slide_id"] for r in result.rows) == sorted(good)
    assert all(PatchStore.open(stores / f"{s}.zarr").has_scores(result.score_id) for s in good)
    assert sorted(advanced) == sorted(good + BAD)
    assert len(loads) == 3  # each fold model loaded once for all stores


def test_predict_command_exits_1_naming_a_bad_store(mixed_stores, capsys):
    run, stores, good = mixed_stores
    out = stores.parent / "p.csv"
    assert main(["predict", "--run", str(run), "--stores", str(stores), "--out", str(out)]) == 1
    assert "2 of 5 store(s) could not be predicted" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 1 + len(good)


def run_predict_stage(out, slide_ids, run, stage=None):
    """(ready slide ids, report, manifest) of the pipeline's predict stage on the stores in ``out/stores``."""
    from wsi_engine.mil.stage import PredictStage
    from wsi_engine.pipeline.manifest import Manifest
    from wsi_engine.pipeline.run import STAGES, PipelineReport, run_stage
    from wsi_engine.stage import SlideJob

    report, manifest = PipelineReport(out), Manifest(out)
    jobs = [
        SlideJob(s, out / f"{s}.tif", out / "stores" / f"{s}.zarr", {"embed": "key"}, n_patches=1)
        for s in sorted(slide_ids)
    ]
    for job in jobs:
        report.status[job.slide_id] = dict.fromkeys(STAGES, "not-run")
    ready = run_stage(stage or PredictStage(run), jobs, manifest, report, StageObserver())
    return sorted(j.slide_id for j in ready), report, manifest


def test_pipeline_predict_stage_fails_only_the_bad_slides_loading_the_models_once(
    mixed_stores, monkeypatch
):
    import wsi_engine.mil.rundir as rundir

    run, stores, good = mixed_stores
    loads = []
    load_checkpoint = rundir.load_checkpoint
    monkeypatch.setattr(
        "wsi_engine.mil.predict.load_checkpoint", lambda p: loads.append(p) or load_checkpoint(p)
    )
    ready, report, manifest = run_predict_stage(stores.parent, good + BAD, run)
    assert len(loads) == 3  # each fold model loaded once for all stores
    assert report.failed == BAD and ready == sorted(good)
    assert manifest.failed_slides() == BAD
    score_ids = {manifest.record(s, "predict").score_id for s in good}
    assert len(score_ids) == 1
    for slide_id in good:  # the record holds what predictions.csv is written from
        record = manifest.record(slide_id, "predict")
        assert record.predicted in record.class_names
        assert abs(sum(record.probs) - 1) < 1e-5
    assert sorted(p.name for p in stores.parent.iterdir() if p.suffix == ".csv") == []


def test_an_unusable_run_fails_every_slide(mixed_stores, tmp_path):
    run, stores, good = mixed_stores
    broken = shutil.copytree(run, tmp_path / "broken-run")
    shutil.rmtree(broken / "folds")
    ready, report, _ = run_predict_stage(stores.parent, good, broken)
    assert ready == [] and report.failed == sorted(good)
    assert "cannot read the checkpoint" in report.errors[good[0]]


def test_cluster_predict_writes_and_scores_as_a_local_run(mixed_stores):
    from distributed import Client, LocalCluster

    from wsi_engine.cluster.predict import predict_on_cluster

    run, stores, good = mixed_stores
    labels = {s: CLASSES[0] if s.startswith("c0") else CLASSES[1] for s in good}
    local = predict(run, [stores], stores.parent / "local.csv", labels=labels, write_scores=False)
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as cluster,
        Client(cluster) as client,
    ):
        remote = predict_on_cluster(
            client, run, [stores], stores.parent / "cluster.csv", labels=labels, write_scores=False
        )
    assert sorted(remote.failures) == BAD and remote.rows == local.rows
    assert (remote.metrics, remote.metrics_in_sample) == (local.metrics, local.metrics_in_sample)
    assert (remote.n_in_sample, remote.n_out_of_sample) == (
        local.n_in_sample,
        local.n_out_of_sample,
    )
    csv = (stores.parent / "cluster.csv").read_text()
    assert csv == (stores.parent / "local.csv").read_text() and "in_sample" in csv


def test_the_cluster_predict_stage_records_what_the_local_one_does(mixed_stores):
    from distributed import LocalCluster

    from wsi_engine.cluster.stages import ClusterPredictStage
    from wsi_engine.mil.stage import PredictStage

    run, stores, good = mixed_stores
    local = run_predict_stage(stores.parent, good + BAD, run)[2]
    (stores.parent / "manifest.json").unlink()  # the cluster stage runs every slide again
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        stage = ClusterPredictStage(run, cluster.scheduler_address)
        ready, report, manifest = run_predict_stage(stores.parent, good + BAD, run, stage)
    assert report.failed == BAD and ready == sorted(good)
    for slide_id in good:  # same typed record, written to the manifest the same way
        on_cluster, here = manifest.record(slide_id, "predict"), local.record(slide_id, "predict")
        assert on_cluster.model_dump(exclude={"seconds"}) == here.model_dump(exclude={"seconds"})
        assert PredictStage.record_type.from_manifest(on_cluster).probs == here.probs
