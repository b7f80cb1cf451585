"""Benchmark of Libra-MIL's per-instance fusion (``sot-instance``): Numba autograd function vs torch twin.

For bags of N patches (default 1,000, 10,000, 50,000; D = 512, K_v = 10, K_t = 46, ε and the
iteration count (20) of the model's config), in one run and on the same inputs:

* **Training epoch**: ``--bags`` optimiser steps of a Libra-MIL head (``fusion=sot-instance``,
  float32) on bags of N random unit-norm features, with the transport on the Numba backend
  (:func:`wsi_kernels.transport_scores`, Numba forward and backward) and on the torch twin (unrolled
  autograd).  Time per epoch, and the share of a step spent in the transport (forward + backward
  of the transport alone on that step's inputs, over the whole step's time).
* **Transport part**: forward + backward of ``transport_scores`` alone, on the marginals,
  similarities and cost the model hands to it (captured from a forward pass), in float32 (the
  model's dtype) and, with ``--dtypes``, float64: time and peak memory.  Time: the fastest of
  ``--repeats`` calls, the backends alternating, with the fastest forward and backward apart;
  also the least process CPU time of a call (all threads; with one thread the figure least
  disturbed by other processes on a shared machine, with more it counts spinning threads too).
  Memory: peak resident-set growth (RSS, not an allocator count), measured in a fresh subprocess
  per (backend, N) after a small warm-up call: the peak resident set is reset to the current one
  (``/proc/self/clear_refs``) just before the call, and its growth (``VmHWM`` − ``VmRSS``) is
  reported; glibc is told to map every block of 64 KiB or more, so that memory freed earlier
  cannot hide new allocations.
* **Same gradients**: largest difference between the two backends' parameter gradients after
  one step from the same weights and bag, relative to the largest gradient entry (float32 model).
* **JIT compile**: seconds of the first Numba call (forward + backward, float32 and float64) in
  a fresh process, with a warm on-disk cache and, with ``--cold-compile``, an empty one.  Never
  part of the epoch or transport times (every timed call follows a warm-up call).

Threads: ``--threads`` for both torch and Numba (default 1).  The machine may be shared: the
figures to quote are the ratios (torch / numba), both sides measured in the same run; the load
average is printed before and after.

Usage: ``python tools/bench_fusion.py [--sizes 1000,10000,50000] [--bags 2] [--threads 1]
[--repeats 3] [--dtypes float32,float64] [--cold-compile] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
D, KV, KT, C = 512, 10, 46, 2
BACKENDS = ("numba", "torch")


def _threads(n: int) -> None:
    import numba
    import torch

    torch.set_num_threads(n)
    numba.set_num_threads(n)


def _model(backend: str):
    import torch

    from wsi_engine.mil.libra import LibraConfig, LibraMIL
    from wsi_engine.prompts import PROMPT_FIELDS, TaskEmbeddings

    rng = np.random.default_rng(0)

    def unit(n: int) -> np.ndarray:
        x = rng.normal(size=(n, D)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    text = TaskEmbeddings("bench", ("a", "b"), unit(KT), *(unit(C) for _ in PROMPT_FIELDS))
    torch.manual_seed(0)
    config = LibraConfig(fusion="sot-instance", kv=KV, ot_backend=backend)
    return LibraMIL(config, D, C, text)


def _bag(n: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, D, generator=g), dim=-1)


def _transport_inputs(model, x, dtype=None):
    """The arguments the fusion hands to ``transport_scores`` on bag ``x``, captured from a
    forward pass: ``([st, sv, nu, mu, cost^T] as leaf tensors, reg, num_iter)``."""
    import torch

    from wsi_engine.mil import libra

    captured = []
    real = libra.transport_scores

    def record(*args):
        captured.append(args)
        return real(*args)

    libra.transport_scores = record
    try:
        with torch.no_grad():
            model(x)
    finally:
        libra.transport_scores = real
    *tensors, reg, num_iter, _backend = captured[0]
    dtype = dtype or tensors[0].dtype
    leaves = [t.detach().to(dtype).clone().requires_grad_() for t in tensors]
    return leaves, float(reg), int(num_iter)


def _transport_step(backend: str, inputs) -> tuple[float, float, float]:
    """Wall seconds of one forward and one backward of the transport alone, and the process's
    CPU seconds for both (all its threads)."""
    from wsi_kernels import transport_scores

    tensors, reg, num_iter = inputs
    for t in tensors:
        t.grad = None
    cpu, start = time.process_time(), time.perf_counter()
    s = transport_scores(*tensors, reg, num_iter, backend=backend)
    middle = time.perf_counter()
    s.sum().backward()
    return middle - start, time.perf_counter() - middle, time.process_time() - cpu


def _train_step(model, optimiser, x, y) -> float:
    import torch

    start = time.perf_counter()
    out = model(x)
    loss = torch.nn.functional.cross_entropy(out.logits[None], y)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return time.perf_counter() - start


def timing(n: int, bags: int, repeats: int, dtypes: list[str]) -> dict:
    """Epoch times, transport shares and times, and the gradient agreement for bags of ``n``."""
    import torch

    models = {b: _model(b) for b in BACKENDS}
    optimisers = {b: torch.optim.AdamW(m.param_groups(1e-4), lr=1e-4) for b, m in models.items()}
    xs = [_bag(n, seed) for seed in range(bags)]
    labels = [torch.tensor([seed % C]) for seed in range(bags)]
    # same gradients: one backward of each backend from the same weights and bag
    grads = {}
    for backend, model in models.items():
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(xs[0]).logits[None], labels[0]).backward()
        grads[backend] = torch.cat(
            [p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]
        )
    scale = float(grads["torch"].abs().max())
    grad_diff = float((grads["numba"] - grads["torch"]).abs().max()) / scale
    out = {"n": n, "bags": bags, "grad_rel_diff": grad_diff}
    for backend, model in models.items():
        _train_step(model, optimisers[backend], xs[0][:256], labels[0])  # warm-up
        steps, transport = [], []
        for x, y in zip(xs, labels, strict=True):
            steps.append(_train_step(model, optimisers[backend], x, y))
            transport.append(sum(_transport_step(backend, _transport_inputs(model, x))[:2]))
        out[backend] = {
            "epoch_s": float(np.sum(steps)),
            "transport_share": float(np.sum(transport) / np.sum(steps)),
        }
    # transport alone, both backends alternately, fastest of `repeats` (robust to a busy machine)
    for dtype in dtypes:
        inputs = _transport_inputs(models["numba"], xs[0], getattr(torch, dtype))
        for backend in BACKENDS:  # warm-up: compiles this dtype's kernels
            _transport_step(backend, inputs)
        best = {b: [math.inf, math.inf, math.inf] for b in BACKENDS}
        for _ in range(repeats):
            for backend in BACKENDS:
                times = _transport_step(backend, inputs)
                best[backend] = [
                    min(old, new) for old, new in zip(best[backend], times, strict=True)
                ]
        for backend in BACKENDS:
            forward, backward, cpu = best[backend]
            out[backend][f"transport_{dtype}"] = {
                "forward_s": forward,
                "backward_s": backward,
                "cpu_s": cpu,
            }
    return out


def _status_bytes(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` (peak resident set) of this process, bytes."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(backend: str, n: int) -> dict:
    """Peak resident growth of one transport forward + backward (run in a fresh process)."""
    import gc

    model = _model(backend)
    _transport_step(backend, _transport_inputs(model, _bag(256, 1)))  # compile / warm up
    inputs = _transport_inputs(model, _bag(n, 0))
    gc.collect()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the peak resident set (VmHWM) to the current one
    before = _status_bytes("VmRSS")
    _transport_step(backend, inputs)
    peak = _status_bytes("VmHWM")
    return {"peak_growth_bytes": peak - before, "baseline_bytes": before}


def compile_child() -> dict:
    """Seconds of the first Numba transport call per dtype (forward + backward, 64 problems)."""
    import torch

    model = _model("numba")
    out = {}
    for dtype in ("float32", "float64"):
        inputs = _transport_inputs(model, _bag(64, 1), getattr(torch, dtype))
        out[dtype] = sum(_transport_step("numba", inputs)[:2])
    return out


def _child(args: list[str], threads: int, cache_dir: str | None = None) -> dict:
    """Run this script with ``args`` in a fresh process; its last stdout line (JSON)."""
    command = [sys.executable, __file__, *args, "--threads", str(threads)]
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        # glibc: blocks of 64 KiB and more are mapped and unmapped, never kept in the heap, so
        # the resident set follows what is live (freed heap memory would hide new allocations)
        "MALLOC_MMAP_THRESHOLD_": "65536",
        "MALLOC_TRIM_THRESHOLD_": "0",
    }
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _ratio(torch_value: float, numba_value: float) -> str:
    return f"x{torch_value / max(numba_value, 1e-12):.1f}"


def report(row: dict, threads: int) -> None:
    """Print one size's figures, each with the torch / numba ratio of this run."""
    nb, tt, n = row["numba"], row["torch"], row["n"]
    mib = 2.0**20
    lines = [
        f"N={n:,} patches, threads {threads}, float32 model, RSS-based memory",
        f"  epoch ({row['bags']} bags):             numba {nb['epoch_s']:8.3f} s   "
        f"torch {tt['epoch_s']:8.3f} s   {_ratio(tt['epoch_s'], nb['epoch_s'])}",
    ]
    for key in sorted(k for k in nb if k.startswith("transport_float")):
        dtype = key.removeprefix("transport_")
        a, b = nb[key], tt[key]
        total_a, total_b = a["forward_s"] + a["backward_s"], b["forward_s"] + b["backward_s"]
        lines.append(
            f"  transport fwd+bwd {dtype}:   numba {total_a:8.4f} s   torch {total_b:8.4f} s   "
            f"{_ratio(total_b, total_a)}  (fwd {a['forward_s']:.4f} / {b['forward_s']:.4f} s, "
            f"bwd {a['backward_s']:.4f} / {b['backward_s']:.4f} s; CPU {a['cpu_s']:.4f} / "
            f"{b['cpu_s']:.4f} s {_ratio(b['cpu_s'], a['cpu_s'])})"
        )
    pa, pb = nb["peak_growth_bytes"], tt["peak_growth_bytes"]
    lines += [
        f"  transport peak RSS growth:    numba {pa / mib:8.1f} MiB torch {pb / mib:8.1f} MiB "
        f"{_ratio(pb, pa)}",
        f"  transport share of a step:    numba {nb['transport_share']:8.0%}     "
        f"torch {tt['transport_share']:8.0%}",
        f"  parameter gradients differ by {row['grad_rel_diff']:.1e} of the largest entry",
    ]
    print("\n".join(lines), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--bags", type=int, default=2, help="bags (optimiser steps) per epoch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timings of the transport alone")
    parser.add_argument("--dtypes", default="float32", help="dtypes of the transport timing")
    parser.add_argument("--cold-compile", action="store_true", help="also time an empty cache")
    parser.add_argument("--memory-child", nargs=2, metavar=("BACKEND", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    _threads(args.threads)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child[0], int(args.memory_child[1]))))
        return 0
    if args.compile_child:
        print(json.dumps(compile_child()))
        return 0
    print(f"load average before: {os.getloadavg()}; threads {args.threads}", flush=True)
    compile_s = {"warm_cache": _child(["--compile-child"], args.threads)}
    if args.cold_compile:
        with tempfile.TemporaryDirectory() as empty:
            compile_s["cold_cache"] = _child(["--compile-child"], args.threads, empty)
    for cache, seconds in compile_s.items():
        per_dtype = ", ".join(f"{d} {t:.1f} s" for d, t in seconds.items())
        print(f"first Numba call in a fresh process ({cache.replace('_', ' ')}): {per_dtype}")
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        row = timing(n, args.bags, args.repeats, args.dtypes.split(","))
        for backend in BACKENDS:
            row[backend].update(_child(["--memory-child", backend, str(n)], args.threads))
        rows.append(row)
        report(row, args.threads)
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        figures = {"threads": args.threads, "compile_s": compile_s, "sizes": rows}
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
