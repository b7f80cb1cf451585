"""Benchmark of what a cohort costs end to end: slides per hour for ``tile`` + ``embed``.

Run: ``python tools/bench_throughput.py [--cohort 2] [--cohort-size 6144] [--device auto]``.

On a cohort of generated slides (:func:`bench_tiling.cohort_slides`, 20x scans
at 0.5 µm/px by default, tiled at the default 0.5 µm/px into JPEG stores):

1. **tile**: ``python -m wsi_engine tile`` in a subprocess, wall time from
   process start to exit (reading and decoding the source, tissue detection,
   writing the stores; source JPEG tiles that equal a patch are passed
   through, see docs/tiling.md);
2. **embed**: :func:`~wsi_engine.encoders.embed.embed_stores` in this process
   with a ViT-B/16 image tower at 224 px (the size class of CONCH, QuiltNet,
   BiomedCLIP; random weights, nothing downloaded), on ``--device``: loading
   the encoder, then reading + decoding the stored patches (decode workers,
   in parallel with the model), the model (copies, preprocessing, forward),
   the time the model waited for data, and writing the features.

Printed: slides/hour and patches/s of the two together (start-up and model
loading included), and the split of the wall time. Everything is measured in
this one run; the load average is printed because the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_embed import build_encoder, embed  # noqa: E402
from bench_tiling import cohort_slides, timed_command  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cohort", type=int, default=2, help="slides")
    parser.add_argument("--cohort-size", type=int, default=6144, help="their side, px")
    parser.add_argument("--cohort-mpp", type=float, default=0.5, help="their level-0 µm/px")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 256 GPU, 16 CPU")
    parser.add_argument("--workers", type=int, default=None, help="embed decode processes")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "wsi-engine-bench"
    )
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    from wsi_engine.encoders.embed import (
        device_name,
        resolve_device,
        resolve_precision,
    )

    slides = cohort_slides(args.cache, args.cohort, args.cohort_size, args.cohort_mpp)
    device = resolve_device(args.device)
    precision = resolve_precision("auto", device)
    batch = args.batch_size or (256 if device.type == "cuda" else 16)
    work = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    load_before = os.getloadavg()[0]
    try:
        stores = work / "stores"
        tile_wall, tile_cpu = timed_command(
            ["-m", "wsi_engine", "tile", *map(str, slides), "--out", str(stores)]
        )
        began = time.perf_counter()
        encoder = build_encoder("vit-b-16", work, device)
        load = time.perf_counter() - began
        report = embed([stores], encoder, device, batch, precision, args.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert not report.failed, [r.reason for r in report.failed]
    patches = report.embedded
    total = tile_wall + load + report.wall_seconds
    print(
        f"cohort: {len(slides)} generated slides of {args.cohort_size}² px at "
        f"{args.cohort_mpp:g} µm/px, {patches:,} patches of 256 px at 0.5 µm/px (JPEG stores)"
    )
    print(
        f"encoder: ViT-B/16 image tower, 224 px, random weights; {device_name(device)}; "
        f"{precision}; batch {batch}; {report.workers} decode workers"
    )
    print(
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
        f"on {os.cpu_count()} CPUs"
    )
    print(
        f"end to end (tile + embed, start-up and model loading included): {total:.1f} s = "
        f"{3600 * len(slides) / total:.0f} slides/hour, {patches / total:.1f} patches/s"
    )
    rows = [
        ("tile: whole command (read, decode, write)", tile_wall),
        ("embed: load the encoder", load),
        ("embed: model (copies, preprocess, forward)", report.model_seconds),
        ("embed: waiting for data (reading, if no workers)", report.wait_seconds),
        ("embed: writing features", report.write_seconds),
        (
            "embed: other (planning, hand-offs)",
            report.wall_seconds - report.model_seconds - report.wait_seconds - report.write_seconds,
        ),
    ]
    print(f"{'where the wall time went':46}{'s':>8}{'share':>8}")
    for name, seconds in rows:
        print(f"{name:46}{seconds:8.1f}{100 * seconds / total:7.0f}%")
    print(
        f"(in parallel with the model: {report.read_seconds:.1f} s of decode-worker time "
        f"reading and decoding stored patches; tile CPU time {tile_cpu:.1f} s)"
    )


if __name__ == "__main__":
    main()
