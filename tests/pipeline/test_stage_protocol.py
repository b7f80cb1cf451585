"""The orchestrator drives any Stage the same way: keys, skips, overwrites, failures, one result each.

The stage here is a real one in miniature: it writes one file per slide and
reports through the shared result type; the manifest is the real one on disk.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsi_engine.pipeline.manifest import Manifest
from wsi_engine.pipeline.run import STAGES, PipelineReport, run_stage
from wsi_engine.stage import (
    EmbedRecord,
    HeatmapRecord,
    PredictRecord,
    SlideJob,
    SlideStage,
    StageObserver,
    StagePayload,
    StageResult,
    TileRecord,
    stage_key,
)
from wsi_engine.training.records import StageRecord


class CopyStage(SlideStage):
    """Writes ``<slide_id>.txt`` holding ``text``; slides named ``bad-*`` fail."""

    name = "tile"
    record_type = TileRecord

    def __init__(self, out: Path, text: str):
        super().__init__()
        self.out, self.text = out, text
        self.ran: list[tuple[str, bool]] = []

    def key(self, job: SlideJob) -> str:
        return stage_key("copy", self.text, job.keys["fingerprint"])

    def complete(self, job: SlideJob, record: StagePayload) -> bool:
        return (self.out / f"{job.slide_id}.txt").is_file()

    def run(
        self, jobs: list[SlideJob], observer: StageObserver
    ) -> Iterator[StageResult[TileRecord]]:
        for job in jobs:
            self.ran.append((job.slide_id, job.overwrite))
            if job.slide_id.startswith("bad-"):
                yield StageResult.failure(self.name, job.slide_id, ValueError("unreadable"))
                continue
            (self.out / f"{job.slide_id}.txt").write_text(self.text)
            n = 0 if job.slide_id.startswith("blank-") else 3
            status = "done" if n else "empty"
            record = TileRecord(n_patches=n)
            yield StageResult(
                self.name, job.slide_id, status, counts={"processed": n}, record=record
            )


class Seen(StageObserver):
    def __init__(self):
        self.started: list[tuple[str, int]] = []
        self.results: list[StageResult] = []

    def stage_started(self, stage: str, n_slides: int) -> None:
        self.started.append((stage, n_slides))

    def slide_finished(self, result: StageResult) -> None:
        self.results.append(result)


def drive(out: Path, stage: CopyStage, ids: list[str]) -> tuple[list[str], PipelineReport, Seen]:
    report, manifest, seen = PipelineReport(out), Manifest(out), Seen()
    jobs = [
        SlideJob(s, out / f"{s}.svs", out / f"{s}.zarr", {"fingerprint": "f"}, order=i)
        for i, s in enumerate(ids)
    ]
    for job in jobs:
        report.status[job.slide_id] = dict.fromkeys(STAGES, "not-run")
    going = run_stage(stage, jobs, manifest, report, seen)
    return [j.slide_id for j in going], report, seen


@pytest.fixture
def ids() -> list[str]:
    return ["a", "bad-b", "blank-c", "d"]


def test_one_result_per_slide_failures_recorded_empty_slides_end(tmp_path, ids):
    stage = CopyStage(tmp_path, "v1")
    going, report, seen = drive(tmp_path, stage, ids)
    assert going == ["a", "d"]  # input order; the failed and the empty slide stop here
    assert seen.started == [("tile", 4)]
    assert sorted(r.slide_id for r in seen.results) == sorted(ids)
    assert report.status["bad-b"]["tile"] == "failed" and "unreadable" in report.errors["bad-b"]
    assert report.status["blank-c"] == {
        "tile": "empty",
        "embed": "empty",
        "predict": "empty",
        "heatmap": "empty",
    }
    record = Manifest(tmp_path).record("a", "tile")
    assert record is not None
    assert record.status == "done" and record.n_patches == 3 and record.key
    assert report.telemetry["tile"].patches == 6


def test_same_key_skips_a_new_key_overwrites(tmp_path, ids):
    drive(tmp_path, CopyStage(tmp_path, "v1"), ids)
    again = CopyStage(tmp_path, "v1")
    going, report, seen = drive(tmp_path, again, ids)
    assert [s for s, _ in again.ran] == ["bad-b"]  # only the failed slide is tried again
    assert report.status["a"]["tile"] == "skipped" and going == ["a", "d"]
    assert seen.started == [("tile", 1)]

    (tmp_path / "d.txt").unlink()  # recorded as done, output gone: run again, same key
    rerun = CopyStage(tmp_path, "v1")
    drive(tmp_path, rerun, ids)
    assert dict(rerun.ran) == {"bad-b": False, "d": False}

    changed = CopyStage(tmp_path, "v2")  # another key: the outputs recorded as done are replaced
    drive(tmp_path, changed, ids)
    assert dict(changed.ran) == {"a": True, "bad-b": False, "blank-c": True, "d": True}
    assert (tmp_path / "a.txt").read_text() == "v2"


def test_a_stage_that_forgets_a_slide_fails_it_loudly(tmp_path):
    class Forgetful(CopyStage):
        def run(self, jobs, observer):
            yield from super().run(jobs[:1], observer)

    going, report, seen = drive(tmp_path, Forgetful(tmp_path, "v1"), ["a", "d"])
    assert going == ["a"]
    assert report.status["d"]["tile"] == "failed"
    assert "no result" in report.errors["d"]
    assert [r.status for r in seen.results] == ["done", "failed"]


def test_stage_records_are_typed_and_keep_the_manifest_layout(tmp_path, ids):
    for model in (TileRecord, EmbedRecord, PredictRecord, HeatmapRecord):
        assert set(model.model_fields) <= set(StageRecord.model_fields), model
    drive(tmp_path, CopyStage(tmp_path, "v1"), ids)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())["slides"]["a"]["tile"]
    assert set(on_disk) == {"status", "key", "seconds", "n_patches"}  # no unset key written
    entry = Manifest(tmp_path).record("a", "tile")
    assert entry is not None and TileRecord.from_manifest(entry) == TileRecord(n_patches=3)
    job = SlideJob("a", tmp_path / "a.svs", tmp_path / "a.zarr", {"fingerprint": "f"})
    report = PipelineReport(tmp_path)
    report.status["a"] = dict.fromkeys(STAGES, "not-run")
    run_stage(CopyStage(tmp_path, "v1"), [job], Manifest(tmp_path), report, StageObserver())
    assert report.status["a"]["tile"] == "skipped"  # up to date: its record comes from the manifest
    assert job.recorded(TileRecord).n_patches == 3 and job.n_patches == 3
    with pytest.raises(KeyError):
        job.recorded(PredictRecord)
    with pytest.raises(ValueError):  # a stage record holds only its own stage's keys
        PredictRecord.model_validate({"score_id": "s", "n_patches": 3})
