"""Few-shot split protocol, and split files (our JSON; FOCUS/CLAM-style CSV) for exact comparisons.

Protocol (``make_splits``; the Libra-MIL protocol, method reference §3), for
``folds`` = k ≥ 2 and a seed:

1. Slides are sorted by id and cut into k label-stratified parts
   P_0..P_{k-1} (scikit-learn ``StratifiedKFold(k, shuffle=True,
   random_state=seed)``).
2. Fold f holds out P_f and splits it per class into validation (early
   stopping, model selection) and test halves: the class's slides of P_f are
   shuffled with ``numpy.random.default_rng([seed, f])``, the first ⌊n/2⌋
   validate and the other ⌈n/2⌉ test. The other k − 1 parts are the fold's
   training pool. Test sets of different folds are disjoint.
3. Per class, the fold's pool is shuffled with the same generator and the
   first M slides are the M-shot training set. The draws are nested: the
   1-shot set is inside the 4-shot set, which is inside the 16-shot set, and
   validation and test sets are the same for every M, so shot settings differ
   only in the training slides.

The same seed and cohort always give the same splits; they are saved as
``splits.json`` and can be loaded again with ``--splits``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from wsi_engine.errors import DataError

SPLITS_FORMAT = "wsi-engine-splits"
SPLITS_VERSION = 1


@dataclass(frozen=True)
class Split:
    """One training run: ``shots`` per class (for imported splits: the smallest per-class count), fold ``fold``."""

    shots: int
    fold: int
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


def min_slides_per_class(shots: int, folds: int) -> int:
    """Smallest class size n that leaves ``shots`` training slides after holding out a part of ⌈n/k⌉,
    with at least two slides (one validation, one test) in every part."""
    n = max(2 * folds, shots + 2)
    while n - math.ceil(n / folds) < shots:
        n += 1
    return n


def make_splits(
    slide_ids: list[str],
    targets: np.ndarray,
    class_names: list[str] | tuple[str, ...],
    shots: list[int],
    folds: int,
    seed: int,
) -> list[Split]:
    """Splits for every (shots, fold) following the module protocol; DataError when the cohort is too small."""
    if folds < 2:
        raise DataError(f"--folds {folds} is too small", hint="the protocol needs at least 2 folds")
    if not shots or min(shots) < 1:
        raise DataError("--shots must list positive numbers of slides per class, e.g. 1,4,16")
    order = np.argsort(slide_ids, kind="stable")
    ids = np.asarray(slide_ids)[order]
    y = np.asarray(targets)[order]
    counts = np.bincount(y, minlength=len(class_names))
    most = max(shots)
    needed = min_slides_per_class(most, folds)
    for c, name in enumerate(class_names):
        if counts[c] < needed:
            raise DataError(
                f"class '{name}' has {counts[c]} slide(s); {most} shots with {folds} folds needs at least {needed} "
                f"({most} to train on plus, in every fold, a held-out part with a validation and a test slide)",
                hint="use fewer --shots or --folds, or label more slides",
            )
    parts = [
        held for _, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(ids, y)
    ]
    splits = []
    for fold in range(folds):
        held = parts[fold]
        pool = np.setdiff1d(np.arange(len(ids)), held)
        rng = np.random.default_rng([seed, fold])
        val, test, drawn = [], [], {}
        for c in range(len(class_names)):
            held_c = rng.permutation(held[y[held] == c])
            val.extend(held_c[: len(held_c) // 2])
            test.extend(held_c[len(held_c) // 2 :])
            drawn[c] = rng.permutation(pool[y[pool] == c])
            if len(drawn[c]) < most or len(held_c) < 2:
                raise DataError(
                    f"fold {fold}: class '{class_names[c]}' has {len(drawn[c])} training and {len(held_c)} held-out "
                    f"slide(s); {most} shots need {most} and 2",
                    hint="use fewer --shots or --folds, or label more slides",
                )
        for m in sorted(shots):
            train = np.sort(np.concatenate([drawn[c][:m] for c in range(len(class_names))]))
            splits.append(
                Split(
                    m,
                    fold,
                    tuple(ids[train].tolist()),
                    tuple(ids[np.sort(val)].tolist()),
                    tuple(ids[np.sort(test)].tolist()),
                )
            )
    return splits


def save_splits(
    path: str | Path, splits: list[Split], *, seed: int | None, folds: int, source: str
) -> None:
    """Write splits as JSON (``format``, ``version``, ``seed``, ``folds``, ``source``, ``splits``)."""
    payload = {
        "format": SPLITS_FORMAT,
        "version": SPLITS_VERSION,
        "seed": seed,
        "folds": folds,
        "source": source,
        "splits": [
            {**asdict(s), "train": list(s.train), "val": list(s.val), "test": list(s.test)}
            for s in splits
        ],
    }
    Path(path).write_text(json.dumps(payload, indent=1), encoding="utf-8")


def load_splits_json(path: str | Path) -> list[Split]:
    """Splits saved by :func:`save_splits`."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if payload.get("format") != SPLITS_FORMAT:
            raise DataError(
                f"not a wsi-engine splits file (format {payload.get('format')!r})", path=path
            )
        return [
            Split(
                int(s["shots"]),
                int(s["fold"]),
                tuple(s["train"]),
                tuple(s["val"]),
                tuple(s["test"]),
            )
            for s in payload["splits"]
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DataError(
            f"cannot read splits ({type(error).__name__}: {error})", path=path
        ) from error


def load_split_csv(path: str | Path, fold: int, labels: dict[str, str]) -> Split:
    """One fold from a FOCUS/CLAM-style CSV: columns ``train``, ``val``, ``test`` of slide ids (blank-padded)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise DataError(f"cannot read split file ({error.strerror})", path=path) from error
    columns = {k.strip() for k in (rows[0].keys() if rows else []) if k}
    if not {"train", "val", "test"} <= columns:
        raise DataError(
            f"a split CSV needs train, val and test columns (found: {', '.join(sorted(columns)) or 'none'})",
            path=path,
        )

    def column(name: str) -> tuple[str, ...]:
        values = [(row.get(name) or "").strip() for row in rows]
        return tuple(sorted(v for v in values if v and v.lower() != "nan"))

    train = column("train")
    per_class = [
        sum(labels.get(s) == c for s in train) for c in sorted({labels.get(s) for s in train})
    ]
    return Split(min(per_class) if per_class else 0, fold, train, column("val"), column("test"))


def load_splits(paths: list[str | Path], labels: dict[str, str]) -> list[Split]:
    """Splits from one JSON file, or from CSV files taken as folds 0, 1, ... in the given order."""
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and paths[0].suffix.lower() == ".json":
        return load_splits_json(paths[0])
    if any(p.suffix.lower() != ".csv" for p in paths):
        raise DataError("--splits takes one .json file or one or more .csv files (one per fold)")
    return [load_split_csv(p, fold, labels) for fold, p in enumerate(paths)]


def check_splits(
    splits: list[Split], labels: dict[str, str], class_names: list[str] | tuple[str, ...]
) -> None:
    """Every split names labelled slides only, has disjoint parts and trains on every class."""
    if not splits:
        raise DataError("the splits file holds no splits")
    for split in splits:
        where = f"split (shots {split.shots}, fold {split.fold})"
        unknown = sorted({s for s in (*split.train, *split.val, *split.test) if s not in labels})
        if unknown:
            shown = ", ".join(unknown[:5]) + (
                f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            )
            raise DataError(f"{where} names slides that are not in the labels: {shown}")
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            both = set(getattr(split, a)) & set(getattr(split, b))
            if both:
                raise DataError(
                    f"{where}: {len(both)} slide(s) are in both {a} and {b}, e.g. {sorted(both)[0]}"
                )
        if not split.val or not split.test:
            raise DataError(f"{where} has an empty validation or test set")
        missing = [c for c in class_names if not any(labels[s] == c for s in split.train)]
        if missing:
            raise DataError(f"{where} has no training slide of class(es) {', '.join(missing)}")
