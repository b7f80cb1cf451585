"""The kernels' import name does not take a name that another distribution publishes.

Hugging Face's ``kernels`` (required by transformers >= 5.25, reached through peft on the LoRA
path) is imported as ``kernels``; a package of ours under that name, on ``sys.path`` from the
checkout or installed beside it, made ``import peft`` fail.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wsi_engine_installs_wsi_kernels_and_no_kernels_package():
    owners = importlib.metadata.packages_distributions()
    assert "wsi-engine" in owners.get("wsi_kernels", [])
    assert "wsi-engine" not in owners.get("kernels", [])


def test_the_name_kernels_does_not_resolve_into_the_checkout():
    """From the repository root (first on ``sys.path``), ``kernels`` is not our ``kernels/``."""
    code = (
        "import importlib.util, pathlib, sys; "
        "spec = importlib.util.find_spec('kernels'); "
        "origin = spec.origin if spec is not None else None; "
        "ours = pathlib.Path.cwd() / 'kernels'; "
        "inside = origin is not None and pathlib.Path(origin).resolve().is_relative_to(ours); "
        "sys.exit(f'kernels resolves to {origin}' if inside else 0)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
