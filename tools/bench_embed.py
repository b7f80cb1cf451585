"""Benchmark ``embed``: end-to-end throughput versus the model's forward pass alone.

Both are measured in one run, on the same device, batch size and precision,
with random weights (nothing is downloaded):

* forward only: ``encoder.image`` (on-device preprocessing + forward) on one
  batch of uint8 patches already on the device, repeated;
* end to end: :func:`~wsi_engine.encoders.embed.embed_stores` on a fresh
  JPEG patch store (reading, decoding, batching, copies, forward, writing),
  timed without loading the encoder.

The overhead ratio is end-to-end / forward-only patches/s (1.0 = data
handling costs nothing; the target on a GPU is at least 0.9). Forward-only
is measured just before and just after each end-to-end run and averaged, so
a machine whose load drifts does not bias the ratio. Patches are
cut from a synthetic H&E-like slide so JPEG decoding costs what it does on
real tissue.

Examples::

    python tools/bench_embed.py --model tiny --device cpu
    python tools/bench_embed.py --model vit-b-16 --device cuda --batch-size 256 --sizes 2048,16384
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from wsi_engine.encoders import create_random_checkpoint, load_encoder, load_encoder_config
from wsi_engine.encoders.embed import (
    autocast,
    default_workers,
    device_name,
    embed_stores,
    resolve_device,
    resolve_precision,
)
from wsi_engine.store.attrs import SlideSection, TilingSection
from wsi_engine.store.writer import StoreWriter

MODELS = {
    "tiny": ("tiny-clip", {}),
    # ViT-B/16 at 224 px with its text tower: the size class of CONCH's trunk, QuiltNet, BiomedCLIP
    "vit-b-16": ("openai-vit-b-16", {"name": "bench-vit-b-16"}),
}


def build_encoder(model: str, folder: Path, device: torch.device):
    preset, changes = MODELS[model]
    config = load_encoder_config(preset).model_copy(update=changes)
    checkpoint = create_random_checkpoint(config, folder / f"{model}.safetensors")
    return load_encoder(config, checkpoint=checkpoint, device=device)


def texture_patches(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8 crops of a synthetic H&E-like slide (random positions and flips)."""
    from wsi_engine.slide import open_slide
    from wsi_engine.synthetic import generate_slide

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "texture.tif"
        generate_slide(path, width=2048, height=2048, mpp=0.5, seed=seed)
        image = open_slide(path).read_region((0, 0), 0, (2048, 2048))
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        x, y = rng.integers(0, 2048 - size, 2)
        crop = image[y : y + size, x : x + size]
        out[i] = crop[::-1] if i % 2 else crop
    return out


def make_store(folder: Path, slide_id: str, patches: np.ndarray, shard: int) -> Path:
    """A JPEG (quality 90) store holding ``patches``, like tiling's default."""
    n, size = len(patches), patches.shape[1]
    slide = SlideSection(id=slide_id, dimensions=(n * size, size), mpp=(0.5, 0.5))
    tiling = TilingSection(
        patch_size=size,
        target_mpp=0.5,
        patch_size_level0=size,
        read_window=size,
        pixel_mode="jpeg",
        jpeg_quality=90,
        shard_patches=shard,
    )
    attrs = {
        "slide": slide.model_dump(mode="json"),
        "tiling": tiling.model_dump(mode="json"),
        "tissue": {"source": "bench"},
    }
    coords = np.stack([np.arange(n) * size, np.zeros(n, dtype=np.int64)], axis=1)
    writer = StoreWriter.open_or_create(folder, slide_id, attrs, coords, np.ones(n))
    array = writer.create_patches(size, "jpeg", 90, shard)
    for start in range(0, n, shard):
        array[start : start + shard] = patches[start : start + shard]
    return writer.finalize()


def forward_only(
    encoder, patches: np.ndarray, device: torch.device, precision: str, seconds: float
) -> float:
    """Patches/s of ``encoder.image`` on one device-resident batch, repeated for about ``seconds``."""
    x = torch.from_numpy(patches).to(device)

    def step() -> None:
        with torch.inference_mode(), autocast(device, precision):
            encoder.image(x).cpu()  # features come back to the host, as in embed

    step()  # warm-up (kernels, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    began, runs = time.perf_counter(), 0
    while runs < 2 or time.perf_counter() - began < seconds:
        step()
        runs += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return runs * len(patches) / (time.perf_counter() - began)


def embed(stores: list[Path], encoder, device: torch.device, batch: int, precision: str, workers):
    """:func:`embed_stores` with the benchmarks' settings (also used by bench_throughput)."""
    return embed_stores(
        stores,
        encoder,
        device=str(device),
        batch_size=batch,
        precision=precision,
        workers=workers,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: 256 on GPU, 32 (tiny) / 8 on CPU"
    )
    parser.add_argument("--precision", default="auto")
    parser.add_argument(
        "--workers", type=int, default=None, help=f"decode processes (default {default_workers()})"
    )
    parser.add_argument(
        "--sizes", default=None, help="patches per store, comma-separated (two sizes)"
    )
    parser.add_argument(
        "--patch-size", type=int, default=None, help="stored patch side (default: the model input)"
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="duration of the forward-only measurement"
    )
    args = parser.parse_args()

    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    gpu = device.type == "cuda"
    batch = args.batch_size or (256 if gpu else 32 if args.model == "tiny" else 8)
    sizes = [
        int(s)
        for s in (
            args.sizes or ("2048,16384" if gpu else "512,4096" if args.model == "tiny" else "32,96")
        ).split(",")
    ]
    workers = default_workers() if args.workers is None else args.workers
    work = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    try:
        encoder = build_encoder(args.model, work, device)
        size = args.patch_size or encoder.config.preprocess.image_size
        print(
            f"device: {device_name(device)}; model: {args.model} ({encoder.config.architecture}, "
            f"{sum(p.numel() for p in encoder.model.parameters()) / 1e6:.1f} M parameters, input "
            f"{encoder.config.preprocess.image_size} px); precision {precision}; batch {batch}; "
            f"{workers} decode workers; patches {size} px JPEG q90"
        )
        pool = texture_patches(max(sizes), size)
        print(
            f"{'patches':>8} {'forward-only/s':>15} {'end-to-end/s':>13} {'ratio':>6} "
            f"{'model s':>8} {'wait s':>7} {'read s':>7} {'write s':>8} {'wall s':>7}"
        )
        for n in sizes:
            store = make_store(work / f"s{n}", f"bench{n}", pool[:n], shard=128)
            before = forward_only(encoder, pool[:batch], device, precision, args.seconds)
            report = embed([store], encoder, device, batch, precision, workers)
            reference = (
                before + forward_only(encoder, pool[:batch], device, precision, args.seconds)
            ) / 2
            rate = report.patches_per_second
            print(
                f"{n:>8} {reference:>15.1f} {rate:>13.1f} {rate / reference:>6.2f} {report.model_seconds:>8.2f} "
                f"{report.wait_seconds:>7.2f} {report.read_seconds:>7.2f} {report.write_seconds:>8.2f} "
                f"{report.wall_seconds:>7.2f}"
            )
            shutil.rmtree(store.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
