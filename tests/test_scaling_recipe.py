"""The SLURM recipe of docs/scaling.md renders a job script with one GPU and the GPU resource."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"


def test_the_documented_slurm_cluster_asks_for_a_gpu_and_declares_it():
    pytest.importorskip("dask_jobqueue")
    recipe = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    construction = recipe[: recipe.index("gpu.adapt")]  # up to the cluster; no jobs submitted
    namespace: dict = {}
    exec(compile(construction, str(DOC), "exec"), namespace)  # the documented code, as written
    cluster = namespace["gpu"]
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --gres=gpu:1" in script
    assert "--resources GPU=1" in script
    assert "unset MALLOC_TRIM_THRESHOLD_" in script
    assert "#SBATCH -p gpu" in script and "#SBATCH -A my-lab" in script
