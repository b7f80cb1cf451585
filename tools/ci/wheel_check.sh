#!/usr/bin/env bash
# Build the wheel, install it into a fresh virtual environment outside the checkout and run a small
# `wsi-engine demo` there: the packaged presets (encoders, tiling, tasks, pipeline) must be found
# without the source tree.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python="${PYTHON:-python3}"
pip_quiet() { "$@" >>"$work/pip.log" 2>&1 || { cat "$work/pip.log"; return 1; }; }
pip_quiet "$python" -m pip wheel --no-deps --wheel-dir "$work/dist" "$repo"
"$python" -m venv "$work/venv"
pip_quiet "$work/venv/bin/python" -m pip install --upgrade pip
pip_quiet "$work/venv/bin/python" -m pip install "$work"/dist/wsi_engine-*.whl
cd "$work"   # outside the checkout: nothing can come from the source tree
"$work/venv/bin/python" - <<'PY'
from wsi_engine.config import configs_dir, list_presets
where = configs_dir()
assert "site-packages" in str(where), f"presets not from the installed package: {where}"
for kind, expected in {"encoders": "tiny-clip", "tiling": "default", "tasks": "synthetic-demo"}.items():
    names = list_presets(kind)
    assert expected in names, f"{kind} presets missing from the wheel: {names}"
assert (where / "pipeline.yaml").is_file(), "pipeline.yaml missing from the wheel"
print(f"presets found in the installed wheel: {where}")
import importlib.metadata
top = {f.parts[0] for f in importlib.metadata.files("wsi-engine") if f.parts[0] != ".." and not f.parts[0].endswith(".dist-info")}
assert top >= {"wsi_engine", "wsi_kernels"}, f"packages missing from the wheel: {sorted(top)}"
assert "kernels" not in top, "the wheel installs a top-level `kernels` (a name of another distribution)"
import wsi_kernels
print(f"top-level packages in the wheel: {sorted(p for p in top if not p.endswith('.py'))}")
PY
"$work/venv/bin/wsi-engine" demo --out "$work/demo" --n-slides 8 --size 1024 --shots 1 --folds 2 --epochs 3
test -f "$work/demo/pipeline/heatmaps/report.html"
echo "wheel check passed"
