"""What the client checks about a cluster's workers before sending them work.

Workers run on other machines or in other folders: every path sent to them is
absolute (:func:`absolute`), and :func:`check_paths` asks each worker whether it
can read the inputs and write the outputs, so a worker that cannot see a
path is reported as such before any work, instead of as a batch of
"file not found". :func:`warn_small_trim_threshold` warns when workers run with
Dask's ``MALLOC_TRIM_THRESHOLD_=65536`` (``dask worker`` sets it; tiling then
runs about 2x slower, docs/tiling.md). GPU workers are those started with the
Dask resource ``GPU`` (``dask worker ... --resources GPU=1``); embedding tasks
ask for one when the cluster has any (:func:`gpu_resources`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from wsi_engine.errors import OutputError

log = logging.getLogger(__name__)

GPU_RESOURCE = "GPU"
"""Name of the Dask worker resource that marks one GPU (``--resources GPU=1``)."""

SMALL_TRIM_THRESHOLD = 64 * 2**20
"""A ``MALLOC_TRIM_THRESHOLD_`` below this (bytes) is warned about."""

_SHOWN = 5


def absolute(path: str | Path) -> Path:
    """``path`` made absolute against this process's folder (symbolic links kept)."""
    return Path(path).expanduser().absolute()


def _unreachable(reads: Sequence[str], writes: Sequence[str]) -> list[str]:
    """On a worker: the paths of ``reads`` it cannot read and of ``writes`` it cannot write."""
    missing = [f"cannot read {path}" for path in reads if not os.access(path, os.R_OK)]
    missing += [f"cannot write {path}" for path in writes if not os.access(path, os.W_OK)]
    return missing


def check_paths(
    client: Any, reads: Iterable[str | Path], writes: Iterable[str | Path] = ()
) -> None:
    """Raise :class:`OutputError` if a worker cannot read ``reads`` or write ``writes``.

    The message names the first worker and path ("worker tcp://10.0.0.2:40123
    cannot read /data/x.svs"); paths must be absolute.
    """
    reads, writes = [str(p) for p in reads], [str(p) for p in writes]
    if not reads and not writes:
        return
    problems = {
        worker: found for worker, found in client.run(_unreachable, reads, writes).items() if found
    }
    if not problems:
        return
    worker, found = next(iter(sorted(problems.items())))
    more = sum(map(len, problems.values())) - 1
    raise OutputError(
        f"worker {worker} {found[0]}"
        + (f" (and {more} more problems on {len(problems)} workers)" if more else ""),
        hint="workers must see the slides, stores and output folder at the same absolute paths "
        "as this computer (a shared file system mounted at the same place)",
    )


def _trim_threshold() -> str | None:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def warn_small_trim_threshold(client: Any) -> list[str]:
    """Log a warning naming the workers whose ``MALLOC_TRIM_THRESHOLD_`` is small; returns them."""
    small = []
    for worker, value in sorted(client.run(_trim_threshold).items()):
        try:
            if value is not None and int(value) < SMALL_TRIM_THRESHOLD:
                small.append(f"{worker} ({value})")
        except ValueError:
            continue
    if small:
        log.warning(
            "%d worker(s) run with a small MALLOC_TRIM_THRESHOLD_ (%s%s): every large buffer "
            "becomes a fresh mmap and tiling runs about 2x slower; start them with "
            "MALLOC_TRIM_THRESHOLD_ unset or large (docs/scaling.md)",
            len(small),
            ", ".join(small[:_SHOWN]),
            ", ..." if len(small) > _SHOWN else "",
        )
    return small


def gpu_resources(client: Any) -> int:
    """Number of GPUs the cluster's workers declare with the Dask resource :data:`GPU_RESOURCE`."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return int(sum(w.get("resources", {}).get(GPU_RESOURCE, 0) for w in workers))


def prepare_cluster(client: Any, reads: Iterable[str | Path], writes: Iterable[str | Path]) -> None:
    """The checks before work goes to an existing cluster: paths, then the trim threshold."""
    check_paths(client, reads, writes)
    warn_small_trim_threshold(client)
