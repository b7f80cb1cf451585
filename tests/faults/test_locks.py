"""Attacks 2 and 3: a lock whose PID was reused is stale; a second writer of a store is refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from wsi_engine.cli import main
from wsi_engine.errors import OutputError
from wsi_engine.locks import LOCK_NAME, RunLock
from wsi_engine.store import PatchStore

from .conftest import ENCODER


def test_a_lock_naming_this_very_process_but_not_held_is_stale(tmp_path):
    """After a kill -9 in a container the new run may get the dead run's PID (PID 1 again)."""
    lock = tmp_path / LOCK_NAME
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    with RunLock(tmp_path) as held:
        assert json.loads(held.path.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_a_lock_held_by_a_live_process_is_refused_and_freed_when_it_is_killed(tmp_path):
    code = (
        "import sys, time; from wsi_engine.locks import RunLock\n"
        "lock = RunLock(sys.argv[1]); lock.acquire(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match=f"another wsi-engine run \\(pid {holder.pid} on"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(tmp_path):  # the kernel dropped the dead owner's lock: taken over
        pass


def test_a_second_embed_on_a_store_being_embedded_is_refused(store_copy, tiny_clip_args, capsys):
    from wsi_engine.locks import StoreLock

    PatchStore.open(store_copy, mode="r+").delete_features(ENCODER)
    with StoreLock(store_copy):  # another run is writing this store
        assert main(["embed", str(store_copy), *tiny_clip_args, "--workers", "0"]) == 8
    err = capsys.readouterr().err
    assert "another wsi-engine run" in err and "is writing this store" in err
    assert "internal error" not in err
    assert not PatchStore.open(store_copy).has_features(ENCODER)
    assert main(["embed", str(store_copy), *tiny_clip_args, "--workers", "0"]) == 0
    assert PatchStore.open(store_copy).has_features(ENCODER)
    assert not store_copy.with_name(store_copy.name + ".lock").exists()


def test_predict_into_a_store_another_run_is_writing_is_refused(
    world, store_copy, tmp_path, capsys
):
    from wsi_engine.locks import StoreLock

    args = ["predict", "--run", str(world.run), "--stores", str(store_copy)]
    with StoreLock(store_copy):
        assert main([*args, "--out", str(tmp_path / "p.csv"), "--score-id", "locked"]) == 8
    assert "is writing this store" in capsys.readouterr().err
    assert not PatchStore.open(store_copy).has_scores("locked")
