"""`wsi-engine run`: fault isolation, resume, parameter changes, the lock, the manifest."""

from __future__ import annotations

import json
import shutil

from wsi_engine.cli import main
from wsi_engine.errors import BatchFailures, OutputError
from wsi_engine.locks import RunLock
from wsi_engine.pipeline.manifest import Manifest
from wsi_engine.pipeline.run import run_pipeline
from wsi_engine.store import PatchStore, find_stores


def test_bad_slides_are_reported_and_the_good_ones_complete(slide_dir, run_args, tmp_path, capsys):
    good = sorted(p.name for p in slide_dir.iterdir())
    (slide_dir / "corrupt.svs").write_bytes(b"II*\x00" + b"\x00" * 64)
    (slide_dir / "notes.tiff").write_text("this is not an image")
    out = tmp_path / "out"
    code = main(run_args(slide_dir, out))
    assert code == BatchFailures.exit_code
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == ["corrupt", "notes"]
    assert all("tile:" in summary["errors"][s] for s in ("corrupt", "notes"))
    complete = {p.name.removesuffix(".zarr") for p in find_stores([out / "stores"])}
    assert complete == {name.split(".")[0] for name in good}
    assert "2 of 6 slide(s) failed" in capsys.readouterr().err

    # A plain rerun does not retry them; --retry-failed retries only them.
    assert main(run_args(slide_dir, out)) == BatchFailures.exit_code
    summary = json.loads((out / "summary.json").read_text())
    assert "earlier run" in summary["errors"]["corrupt"]
    assert all(summary["status"][s]["tile"] == "skipped" for s in complete)
    (slide_dir / "corrupt.svs").unlink()
    (slide_dir / "notes.tiff").unlink()
    assert main([*run_args(slide_dir, out), "--retry-failed"]) == 0


def test_rerun_skips_done_stages_and_a_parameter_change_reruns_only_affected(
    small_cohort, pipeline_config, reference_run, tmp_path
):
    out = tmp_path / "out"
    shutil.copytree(reference_run, out)
    again = run_pipeline([small_cohort / "slides"], out, pipeline_config)
    assert {s["tile"] for s in again.status.values()} == {"skipped"}
    assert {s["embed"] for s in again.status.values()} == {"skipped"}

    # Another batch size does not change features: nothing reruns. Another JPEG quality re-tiles and re-embeds.
    same = pipeline_config.model_copy(
        update={"embed": pipeline_config.embed.model_copy(update={"batch_size": 7})}
    )
    assert {
        s["embed"] for s in run_pipeline([small_cohort / "slides"], out, same).status.values()
    } == {"skipped"}
    changed = pipeline_config.model_copy(
        update={"tiling": pipeline_config.tiling.model_copy(update={"jpeg_quality": 70})}
    )
    report = run_pipeline([small_cohort / "slides"], out, changed)
    assert {s["tile"] for s in report.status.values()} == {"done"}
    assert {s["embed"] for s in report.status.values()} == {"done"}
    store = PatchStore.open(find_stores([out / "stores"])[0])
    assert store.attrs["tiling"]["jpeg_quality"] == 70
    manifest = Manifest(out)
    assert all(manifest.record(s, "embed").status == "done" for s in report.status)
    assert report.telemetry["embed"].details["model_seconds"] > 0
    assert report.telemetry["tile"].patches > 0


def test_a_second_run_on_the_same_output_is_refused(
    small_cohort, pipeline_config, tmp_path, capsys
):
    out = tmp_path / "out"
    with RunLock(out):
        try:
            run_pipeline([small_cohort / "slides"], out, pipeline_config)
        except OutputError as error:
            assert "another wsi-engine run" in str(error)
        else:
            raise AssertionError("the second run was not refused")


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    lock = tmp_path / ".wsi-engine.lock"
    import socket

    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 12345}))
    with RunLock(tmp_path) as held:
        assert held.path.exists()
    assert not lock.exists()
