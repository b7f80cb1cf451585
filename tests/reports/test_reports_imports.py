"""Import order: the patch trainer, the bag trainer and the CLIP-IT modules import each other; none may cycle."""

from __future__ import annotations

import subprocess
import sys

MODULES = ["wsi_engine.patch.privileged", "wsi_engine.reports.slide_fit", "wsi_engine.mil.fit"]

FIRST_IMPORTS = """
import importlib, sys
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "wsi_engine" or m.startswith("wsi_engine.")]:
        del sys.modules[loaded]  # the engine's modules start afresh, third-party ones stay loaded
    print("importing", name, flush=True)
    importlib.import_module(name)
"""


def test_each_module_imports_first_in_one_fresh_interpreter():
    done = subprocess.run(
        [sys.executable, "-c", FIRST_IMPORTS, *MODULES], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-500:] + done.stderr[-2000:]
    assert done.stdout.split("\n")[:-1] == [f"importing {m}" for m in MODULES]
