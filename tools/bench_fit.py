"""Benchmark of MIL training on CPU: seconds per epoch and peak memory against bag size.

Writes a few real Zarr stores of random float16 features (D = 512) per bag
size, then trains Libra-MIL (default configuration) and ABMIL for one epoch
with :func:`~wsi_engine.mil.train.train_fold`, whole bags read from the stores
through :class:`~wsi_engine.mil.data.BagReader` (its cache held to 64 MiB, so
every bag is read from disk again; validation on one 100-patch bag). Each
model runs in its own process, bag sizes ascending, so the peak resident
memory (``ru_maxrss``) reported at a size is that size's peak. For Libra-MIL
a row with four times as many slides of the middle size shows that memory
does not grow with the number of slides.

Usage: ``python tools/bench_fit.py [--sizes 1000,10000,50000] [--bags 2] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 512
ROOT = Path(__file__).resolve().parents[1]


def write_stores(folder: Path, n_patches: int, n_bags: int) -> list[Path]:
    """``n_bags`` coordinate-only stores with (n_patches, DIM) float16 features ``bench``."""
    sys.path.insert(0, str(ROOT / "tests" / "mil"))
    from conftest import write_store  # the MIL tests' store helper

    rng = np.random.default_rng(n_patches)
    paths = []
    for i in range(n_bags):
        features = rng.standard_normal((n_patches, DIM), dtype=np.float32)
        features /= np.linalg.norm(features, axis=1, keepdims=True)
        paths.append(write_store(folder, f"n{n_patches}-b{i}", features, encoder_id="bench"))
    return paths


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(
    model_name: str, plan: list[tuple[int, list[str]]], small: str, threads: int | None
) -> None:
    """Train one epoch per (bag size, stores) in ``plan``, validating on the ``small`` store; print JSON lines."""
    import torch

    from wsi_engine.mil.data import BagReader
    from wsi_engine.mil.registry import create_model, model_config
    from wsi_engine.mil.train import Part, TrainConfig, train_fold
    from wsi_engine.training.seeding import set_threads

    set_threads(threads)
    torch.manual_seed(0)
    baseline = peak_rss_mb()
    for n_patches, stores in plan:
        paths = {Path(p).name[: -len(".zarr")]: Path(p) for p in [*stores, small]}
        reader = BagReader(paths, "bench", cache_bytes=64 << 20)
        model = create_model(model_name, model_config(model_name), DIM, 2, None)
        ids = list(paths)[:-1]
        part = Part(ids, np.arange(len(ids)) % 2)
        check = Part(list(paths)[-1:], np.array([0]))
        train_fold(model, reader, check, check, check, 2, TrainConfig(epochs=1), seed=0)  # warm-up
        tick = time.perf_counter()
        train_fold(model, reader, part, check, check, 2, TrainConfig(epochs=1), seed=0)
        seconds = time.perf_counter() - tick
        print(
            json.dumps(
                {
                    "model": model_name,
                    "patches": n_patches,
                    "bags": len(ids),
                    "seconds_per_epoch": seconds,
                    "peak_rss_mb": peak_rss_mb(),
                    "baseline_rss_mb": baseline,
                }
            ),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--bags", type=int, default=2, help="bags per epoch")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: robust on a shared machine)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model_name, plan, small = json.loads(args.worker)
        worker(model_name, [(n, stores) for n, stores in plan], small, args.threads)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-fit-") as tmp:
        stores = {n: [str(p) for p in write_stores(Path(tmp), n, args.bags)] for n in sizes}
        middle = sizes[len(sizes) // 2]
        many = [str(p) for p in write_stores(Path(tmp) / "many", middle, 4 * args.bags)]
        small = str(write_stores(Path(tmp) / "small", 100, 1)[0])
        for model_name in ("libra", "abmil"):
            plan = []
            for n in sizes:
                plan.append((n, stores[n]))
                if model_name == "libra" and n == middle:
                    plan.append((n, many))
            command = [
                sys.executable,
                __file__,
                "--worker",
                json.dumps([model_name, plan, small]),
                "--threads",
                str(args.threads),
            ]
            out = subprocess.run(
                command, check=True, capture_output=True, text=True, cwd=ROOT
            ).stdout
            rows += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    print(
        f"{'model':6} {'patches':>8} {'bags':>5} {'s/epoch':>8} {'ms/1k patches':>14} {'peak RSS MB':>12} {'over base MB':>13}"
    )
    for row in rows:
        per_k = 1000 * row["seconds_per_epoch"] / (row["bags"] * row["patches"] / 1000)
        print(
            f"{row['model']:6} {row['patches']:>8} {row['bags']:>5} {row['seconds_per_epoch']:>8.2f} {per_k:>14.1f} "
            f"{row['peak_rss_mb']:>12.0f} {row['peak_rss_mb'] - row['baseline_rss_mb']:>13.0f}"
        )
    for model_name in ("libra", "abmil"):
        same = [r for r in rows if r["model"] == model_name and r["bags"] == args.bags]
        for first, last in zip(same, same[1:], strict=False):
            ratio = (last["seconds_per_epoch"] / last["patches"]) / (
                first["seconds_per_epoch"] / first["patches"]
            )
            print(
                f"{model_name}: time per patch at {last['patches']} vs {first['patches']} patches: x{ratio:.2f} "
                "(1.0 = linear; < 1 while fixed per-bag costs dominate)"
            )


if __name__ == "__main__":
    main()
