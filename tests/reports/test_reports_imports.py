"""Import order: the patch trainer, the bag trainer and the CLIP-IT modules import each other; none may cycle."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["wsi_engine.patch.privileged", "wsi_engine.reports.slide_fit", "wsi_engine.mil.fit"],
)
def test_module_imports_first_in_a_fresh_interpreter(module):
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
