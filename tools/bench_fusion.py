"""Benchmark of Libra-MIL's per-instance fusion (``sot-instance``): Numba autograd function vs torch twin.

For bags of N patches (default 1,000, 10,000, 50,000; D = 512, K_v = 10, K_t = 46, ε = 0.05,
20 Sinkhorn iterations), in one run and on the same inputs:

* **Training epoch**: ``--bags`` optimiser steps of a Libra-MIL head (``fusion=sot-instance``) on
  bags of N random unit-norm features, with the transport on the Numba backend
  (:func:`kernels.transport_scores`, Numba forward and backward) and on the torch twin (unrolled
  autograd).  Time per epoch, and the share of a step spent in the transport (forward + backward
  of the transport alone on that step's marginals and cost, over the whole step's time).
* **Transport part**: forward + backward of ``transport_scores`` alone: time and peak memory.
  Time: the fastest of ``--repeats`` calls, the backends alternating.
  Memory is measured in a fresh subprocess per (backend, N), after a small warm-up call: the
  peak resident set is reset to the current one (``/proc/self/clear_refs``) just before the call,
  and its growth (``VmHWM`` − ``VmRSS``) is reported; glibc is told to map every block of 64 KiB
  or more, so that memory freed earlier cannot hide new allocations.
* **Same gradients**: largest difference between the two backends' parameter gradients after
  one step, relative to the largest gradient entry (float32 model).

Threads: ``--threads`` for both torch and Numba (default 1).  The machine may be shared: the
figures to quote are the ratios, both sides measured in the same run; the load average is printed.

Usage: ``python tools/bench_fusion.py [--sizes 1000,10000,50000] [--bags 2] [--threads 1] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
D, KV, KT, C = 512, 10, 46, 2
EPS, ITERS = 0.05, 20


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


def _transport_inputs(model, x):
    """The marginals, similarities and cost the fusion hands to the transport, as leaf tensors."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        xp = F.normalize(model.phi_v(x), dim=-1)
        pv = F.normalize(model.phi_v(model.visual_prototypes), dim=-1)
        pt = F.normalize(model.phi_t(model.text_prototypes), dim=-1)
        sv, st = xp @ pv.T, xp @ pt.T
        mu = torch.softmax(sv / model.tau_v.exp(), -1)
        nu = torch.softmax(st / model.tau_t.exp(), -1)
        cost = (1.0 - pv @ pt.T).clamp_min(0.0).T.contiguous()
    return [t.clone().requires_grad_() for t in (st, sv, nu, mu, cost)]


def _transport_step(backend: str, inputs) -> float:
    """Seconds of one forward + backward of the transport alone."""
    from kernels import transport_scores

    start = time.perf_counter()
    s = transport_scores(*inputs, EPS, ITERS, backend=backend)
    s.sum().backward()
    return time.perf_counter() - start


def _train_step(model, optimiser, x, y) -> float:
    import torch

    start = time.perf_counter()
    out = model(x)
    loss = torch.nn.functional.cross_entropy(out.logits[None], y)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return time.perf_counter() - start


def timing(n: int, bags: int, repeats: int) -> dict:
    """Epoch times, transport shares and the gradient agreement for bags of ``n`` patches."""
    import torch

    models = {b: _model(b) for b in ("numba", "torch")}
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
    _transport_step("numba", _transport_inputs(models["numba"], xs[0][:64]))  # warm-up
    for backend, model in models.items():
        steps, transport = [], []
        for x, y in zip(xs, labels, strict=True):
            steps.append(_train_step(model, optimisers[backend], x, y))
            transport.append(_transport_step(backend, _transport_inputs(model, x)))
        out[backend] = {
            "epoch_s": float(np.sum(steps)),
            "transport_share": float(np.sum(transport) / np.sum(steps)),
        }
    # transport alone, both backends alternately, fastest of `repeats` (robust to a busy machine)
    inputs = {b: _transport_inputs(models["numba"], xs[0]) for b in models}
    best = {b: math.inf for b in models}
    for _ in range(repeats):
        for backend in models:
            for t in inputs[backend]:
                t.grad = None
            best[backend] = min(best[backend], _transport_step(backend, inputs[backend]))
    for backend in models:
        out[backend]["transport_s"] = best[backend]
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


def memory(backend: str, n: int, threads: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        backend,
        str(n),
        "--threads",
        str(threads),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        # glibc: blocks of 64 KiB and more are mapped and unmapped, never kept in the heap, so
        # the resident set follows what is live (freed heap memory would hide new allocations)
        "MALLOC_MMAP_THRESHOLD_": "65536",
        "MALLOC_TRIM_THRESHOLD_": "0",
    }
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--bags", type=int, default=2, help="bags (optimiser steps) per epoch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timings of the transport alone")
    parser.add_argument("--memory-child", nargs=2, metavar=("BACKEND", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    _threads(args.threads)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child[0], int(args.memory_child[1]))))
        return 0
    print(f"load average before: {os.getloadavg()}; threads {args.threads}")
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        row = timing(n, args.bags, args.repeats)
        for backend in ("numba", "torch"):
            row[backend].update(memory(backend, n, args.threads))
        rows.append(row)
        nb, tt = row["numba"], row["torch"]
        print(
            f"N={n:>6}: epoch ({args.bags} bags) numba {nb['epoch_s']:.2f} s, torch {tt['epoch_s']:.2f} s "
            f"(x{tt['epoch_s'] / nb['epoch_s']:.2f}); transport fwd+bwd numba {nb['transport_s']:.3f} s, "
            f"torch {tt['transport_s']:.3f} s (x{tt['transport_s'] / nb['transport_s']:.1f}); "
            f"transport share of a step numba {nb['transport_share']:.0%}, torch {tt['transport_share']:.0%}; "
            f"transport peak memory numba {nb['peak_growth_bytes'] / 2**20:.1f} MiB, torch "
            f"{tt['peak_growth_bytes'] / 2**20:.1f} MiB (x{tt['peak_growth_bytes'] / max(nb['peak_growth_bytes'], 1):.1f}); "
            f"gradients differ by {row['grad_rel_diff']:.1e} (relative to the largest)",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
