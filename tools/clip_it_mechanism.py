"""CLIP-IT mechanism check in the synthetic joint image-text space (docs/clip-it.md).

For each training size (images per class) and each corpus (class-informative
reports, unrelated reports), runs :func:`wsi_engine.patch.privileged_ablation.ablate`
(with vs without privileged text, same splits and seeds, test images never
trained or selected on) and prints a markdown table of the mean paired
difference in balanced accuracy and AUC with 95 % t intervals over seeds,
plus the pairing's top-1 class agreement and its chance level; then the
negative control compared directly (informative minus unrelated CLIP-IT on
the same seeds and splits).

    PYTHONPATH=. python tools/clip_it_mechanism.py --seeds 8 --sizes 4,8,32
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from wsi_engine.patch.head import HeadConfig
from wsi_engine.patch.privileged_ablation import ablate, t_interval
from wsi_engine.patch.train import PatchTrainConfig
from wsi_engine.reports.settings import PrivilegedTextConfig
from wsi_engine.synthetic.joint_space import JointSpace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--sizes", default="4,8,32")
    parser.add_argument("--hidden", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--images-per-class", type=int, default=150)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = JointSpace()
    images = space.images(args.images_per_class, seed=1)
    train = PatchTrainConfig(epochs=args.epochs, loss="ce", resample=False, val_fraction=0.0)
    rows = []
    print(f"load average {os.getloadavg()[0]:.1f}; space {space}")
    print(
        "| images/class | corpus | top-1 class agreement (chance) | Δ bal. acc. [95 % CI] | Δ AUC [95 % CI] | seeds improved | baseline bal. acc. |"
    )
    print("|---|---|---|---|---|---|---|")
    for size in [int(s) for s in args.sizes.split(",")]:
        for informative in (True, False):
            corpus = space.corpus(40, informative, seed=2)
            tick = time.perf_counter()
            result = ablate(
                images,
                space.class_names,
                corpus,
                list(range(args.seeds)),
                head=HeadConfig(hidden=args.hidden),
                train=train,
                privileged=PrivilegedTextConfig(),
                train_per_class=size,
                n_boot=args.bootstrap,
            )
            agree = [o.class_agreement for o in result.seeds if o.class_agreement is not None]
            chance = [o.chance_agreement for o in result.seeds if o.chance_agreement is not None]
            d, ci = result.mean_difference, result.interval
            improved = sum(o.difference["balanced_accuracy"] > 0 for o in result.seeds)
            baseline = np.mean([o.without["balanced_accuracy"] for o in result.seeds])
            kind = "informative" if informative else "unrelated"
            agreement = (
                f"{np.mean(agree):.2f} ({np.mean(chance):.2f})" if agree else "n/a (no labels)"
            )
            print(
                f"| {size} | {kind} | {agreement} "
                f"| {d['balanced_accuracy']:+.3f} [{ci['balanced_accuracy'][0]:+.3f}, {ci['balanced_accuracy'][1]:+.3f}] "
                f"| {d['auc']:+.3f} [{ci['auc'][0]:+.3f}, {ci['auc'][1]:+.3f}] "
                f"| {improved}/{args.seeds} | {baseline:.3f} |",
                flush=True,
            )
            rows.append(
                {
                    "images_per_class": size,
                    "corpus": kind,
                    "seconds": round(time.perf_counter() - tick, 1),
                    "mean_difference": d,
                    "interval": ci,
                    "per_seed": [
                        {
                            "seed": o.seed,
                            "without": o.without,
                            "with": o.with_text,
                            "n_test": o.n_test,
                        }
                        for o in result.seeds
                    ],
                }
            )
    print("\nnegative control compared directly (informative minus unrelated CLIP-IT, same seeds):")
    print("| images/class | Δ bal. acc. [95 % CI] | Δ AUC [95 % CI] |")
    print("|---|---|---|")
    by = {(r["images_per_class"], r["corpus"]): r for r in rows}
    for size in sorted({r["images_per_class"] for r in rows}):
        cells = []
        for metric in ("balanced_accuracy", "auc"):
            diffs = [
                a["with"][metric] - b["with"][metric]
                for a, b in zip(
                    by[size, "informative"]["per_seed"],
                    by[size, "unrelated"]["per_seed"],
                    strict=True,
                )
            ]
            low, high = t_interval(diffs)
            cells.append(f"{np.mean(diffs):+.3f} [{low:+.3f}, {high:+.3f}]")
        print(f"| {size} | {cells[0]} | {cells[1]} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
