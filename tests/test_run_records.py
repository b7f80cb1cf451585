"""Typed run records: run.json of fit / fit-patches runs and checkpoint meta, strict and versioned.

A record round-trips with the same JSON layout; a malformed, foreign or newer record is one
DataError line (exit 7) naming the file; records written before ``version`` existed still read.
"""

from __future__ import annotations

import json
from math import nan
from pathlib import Path

import pytest

from wsi_engine.cli import main
from wsi_engine.errors import DataError
from wsi_engine.training.records import (
    RUN_FILE,
    CheckpointEntry,
    FitRunRecord,
    MilCheckpointMeta,
    PrivilegedTextRecord,
    parse_record,
    read_run_record,
    run_header,
    write_record,
)

#: run.json as `wsi-engine fit` wrote it before records were typed (no version, no train config...).
OLD_FIT_RUN = {
    "format": "wsi-engine-run",
    "run_id": "old",
    "status": "complete",
    "task": "synthetic-demo",
    "class_names": ["normal", "tumour"],
    "encoder_id": "tiny-clip",
    "feature_dim": 16,
    "feature_output_kind": "joint",
    "model": "abmil",
    "model_config": {"dim": 16},
    "labels": "/data/labels.csv",
    "language_note": "model 'abmil' run without prompt embeddings",
    "checkpoints": [{"shots": 2, "fold": 0, "path": "folds/shots_2/fold_0/model.pt"}],
}


def _record() -> FitRunRecord:
    return FitRunRecord(
        **run_header("wsi-engine-run", "r1", "complete"),
        task="synthetic-demo",
        class_names=["normal", "tumour"],
        encoder_id="tiny-clip",
        feature_dim=16,
        model="libra",
        model_options={"dim": 16, "kv": 3},
        labels="/data/labels.csv",
        checkpoints=[CheckpointEntry(shots=1, fold=0, seed=0, path="folds/a/model.pt")],
    )


def _write(run_dir: Path, payload: dict) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_FILE).write_text(json.dumps(payload), encoding="utf-8")
    return run_dir


def test_a_record_round_trips_with_its_json_layout(tmp_path: Path) -> None:
    record = _record()
    record.privileged_text = PrivilegedTextRecord(
        corpus="/c", corpus_id="c1", paired="slides", pairing={"n_items": 3, "agreement": nan}
    )
    write_record(tmp_path / RUN_FILE, record)
    written = json.loads((tmp_path / RUN_FILE).read_text())
    assert written["model_config"] == {"dim": 16, "kv": 3}  # the key name of earlier versions
    assert "summary" not in written and "completed" not in written  # unset keys stay absent
    assert written["version"] == 1 and written["privileged_text"]["corpus_id"] == "c1"
    assert (
        written["privileged_text"]["pairing"]["agreement"]
        != written["privileged_text"]["pairing"]["agreement"]
    )  # NaN stays NaN, as json.dumps wrote it before records were typed
    back = read_run_record(tmp_path, FitRunRecord, "wsi-engine fit run", "fit")
    assert back.privileged_text is not None and back.privileged_text.pairing["n_items"] == 3
    back.privileged_text = record.privileged_text  # NaN != NaN: compare the rest
    assert back == record
    assert back.checkpoints[0].path == "folds/a/model.pt" and back.model_options["kv"] == 3


def test_a_record_written_before_versions_still_reads(tmp_path: Path) -> None:
    record = read_run_record(_write(tmp_path, OLD_FIT_RUN), FitRunRecord, "fit run", "fit")
    assert record.version == 1 and record.checkpoints[0].seed == 0
    assert record.to_json() == OLD_FIT_RUN  # nothing added to what was there


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"surprise": 1}, "unknown key 'surprise'"),
        ({"feature_dim": "wide"}, "key 'feature_dim'"),
        ({"version": 2}, "record version 2"),
        ({"format": "wsi-engine-patch-run"}, "format 'wsi-engine-patch-run'"),
        ({"status": "running"}, "did not finish"),
    ],
)
def test_a_malformed_or_foreign_run_is_one_data_error_line(
    tmp_path: Path, capsys, change: dict, message: str
) -> None:
    run = _write(tmp_path / "run", {**OLD_FIT_RUN, **change})
    store = tmp_path / "stores"
    store.mkdir()
    code = main(["predict", str(store), "--run", str(run), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 7, err
    assert message in err and str(run) in err and len(err.splitlines()) == 1, err


def test_a_run_json_that_is_not_an_object_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / RUN_FILE).write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DataError, match="format None"):
        read_run_record(tmp_path, FitRunRecord, "fit run", "fit")


def test_checkpoint_meta_is_strict(tmp_path: Path) -> None:
    meta = {"model": "abmil", "model_config": {}, "class_names": ["a", "b"], "task": "t",
            "encoder_id": "e", "feature_dim": 8}  # fmt: skip
    assert parse_record(MilCheckpointMeta, meta, tmp_path, "meta").feature_dim == 8
    with pytest.raises(DataError, match="unknown key 'extra'") as error:
        parse_record(MilCheckpointMeta, {**meta, "extra": 1}, tmp_path / "model.pt", "meta")
    assert error.value.path == str(tmp_path / "model.pt") and error.value.exit_code == 7


def test_a_foreign_manifest_is_one_data_error_line_and_an_old_one_reads(
    tmp_path: Path, capsys
) -> None:
    from wsi_engine.pipeline.manifest import Manifest

    slides = tmp_path / "slides"
    slides.mkdir()
    (slides / "a.svs").write_bytes(b"not read before the manifest")
    out = tmp_path / "out"
    out.mkdir()
    manifest = out / "manifest.json"
    manifest.write_text(json.dumps({"slides": {"a": {"tile": {"status": "ok"}}}}))
    assert main(["run", str(slides), "--out", str(out), "--dry-run"]) == 7
    err = capsys.readouterr().err.strip()
    assert str(manifest) in err and "key 'slides.a.tile.status'" in err, err
    assert len(err.splitlines()) == 1
    # a tile record as the first pipeline wrote it (with `empty`) still reads
    old = {"status": "done", "key": "k", "fingerprint": "sha256:x", "n_patches": 0, "empty": True}
    manifest.write_text(json.dumps({"slides": {"a": {"tile": old}}}))
    entry = Manifest(out).record("a", "tile")
    assert entry is not None and entry.empty and entry.n_patches == 0
    assert Manifest(out).is_done("a", "tile", "k") and not Manifest(out).is_done("a", "tile", "x")
