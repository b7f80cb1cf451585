"""``wsi-engine tile`` on a small job loads only what tiling needs (its start-up is the fixed
cost of every run): no torch, encoders, heatmaps, Dask or scipy.signal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "wsi_engine.encoders", "wsi_engine.heatmap", "distributed", "scipy.signal")


def test_a_small_tile_run_imports_no_heavy_module(synthetic_slide, tmp_path):
    code = (
        "import atexit, runpy, sys\n"
        f"heavy = {HEAVY!r}\n"
        "atexit.register(lambda: print('heavy:', [m for m in heavy if m in sys.modules]))\n"
        f"sys.argv = ['wsi-engine', 'tile', {str(synthetic_slide[0])!r}, '--out', {str(tmp_path)!r}]\n"
        "runpy.run_module('wsi_engine', run_name='__main__')\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "heavy: []" in done.stdout, done.stdout[-500:]
    assert (tmp_path / "tiling_report.csv").is_file()
