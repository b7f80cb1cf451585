"""Labelled slides and their feature bags, read lazily from patch stores.

``labels.csv`` has a header with ``slide_id`` and ``label`` columns (other
columns are ignored). :func:`build_cohort` matches it against the stores and
the task and raises :class:`~wsi_engine.errors.DataError` for every
inconsistency before any training starts. :class:`BagReader` reads one bag at
a time (float16 on disk → float32 tensor), keeps recently used bags in a
byte-bounded LRU cache, and refuses NaN/inf features naming the store.
"""

from __future__ import annotations

import csv
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsi_engine.errors import DataError
from wsi_engine.store import PatchStore, find_stores, store_slide_id
from wsi_engine.training.stores import read_bag


@dataclass(frozen=True)
class Slide:
    """One labelled slide with features: ``target`` is the index of ``label`` in the class order."""

    slide_id: str
    label: str
    target: int
    store: Path
    n_patches: int


@dataclass(frozen=True)
class Cohort:
    """Labelled slides (sorted by id) whose stores hold features of ``encoder_id``."""

    slides: tuple[Slide, ...]
    class_names: tuple[str, ...]
    encoder_id: str
    feature_dim: int
    feature_attrs: dict[str, Any]

    def by_id(self) -> dict[str, Slide]:
        return {s.slide_id: s for s in self.slides}

    def targets(self, slide_ids: list[str]) -> np.ndarray:
        """(n,) class indices of ``slide_ids``."""
        index = self.by_id()
        return np.array([index[s].target for s in slide_ids], dtype=np.int64)


def _listing(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"{shown} and {len(items) - limit} more" if len(items) > limit else shown


def read_labels(path: str | Path) -> dict[str, str]:
    """{slide_id: label} from a CSV with ``slide_id`` and ``label`` columns."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            if "slide_id" not in columns or "label" not in columns:
                raise DataError(
                    f"labels need 'slide_id' and 'label' columns (found: {', '.join(columns) or 'none'})",
                    path=path,
                )
            labels: dict[str, str] = {}
            for line, row in enumerate(reader, start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                slide, label = row["slide_id"], row["label"]
                if not slide or not label:
                    raise DataError(f"line {line}: empty slide_id or label", path=path)
                if slide in labels and labels[slide] != label:
                    raise DataError(
                        f"line {line}: slide '{slide}' is labelled twice, differently", path=path
                    )
                labels[slide] = label
    except OSError as error:
        raise DataError(f"cannot read labels ({error.strerror})", path=path) from error
    if not labels:
        raise DataError("no labelled slides", path=path)
    return labels


def check_classes(
    labels: dict[str, str], class_names: list[str] | tuple[str, ...], task: str
) -> None:
    """Labels and the task must name the same classes, at least two."""
    used = sorted(set(labels.values()))
    if len(used) < 2:
        raise DataError(
            f"the labels hold a single class '{used[0]}'",
            hint="a classifier needs labelled slides of at least two classes",
        )
    unknown = [c for c in used if c not in class_names]
    if unknown:
        raise DataError(
            f"labels use classes that task '{task}' does not define: {_listing(unknown)}",
            hint=f"task classes: {', '.join(class_names)}; fix the labels or the task file",
        )
    missing = [c for c in class_names if c not in used]
    if missing:
        raise DataError(
            f"task '{task}' class(es) without any labelled slide: {_listing(missing)}",
            hint="label slides of every task class, or use a task file with only the labelled classes",
        )


def build_cohort(
    labels: dict[str, str],
    store_dirs: list[str | Path],
    encoder_id: str,
    class_names: list[str] | tuple[str, ...],
    task: str,
) -> Cohort:
    """Match labels to stores holding complete features of ``encoder_id``; validate everything."""
    check_classes(labels, class_names, task)
    stores = {store_slide_id(p): p for p in find_stores(list(store_dirs))}
    no_store = sorted(s for s in labels if s not in stores)
    if no_store:
        raise DataError(
            f"{len(no_store)} labelled slide(s) have no patch store in {', '.join(map(str, store_dirs))}: {_listing(no_store)}",
            hint="check --stores and the slide ids in the labels (store names are <slide_id>.zarr)",
        )
    slides, no_features, empty, dims = [], [], [], {}
    attrs: dict[str, Any] = {}
    for slide_id in sorted(labels):
        store = PatchStore.open(stores[slide_id])
        if not store.has_features(encoder_id):
            no_features.append(slide_id)
            continue
        if store.n_patches == 0:
            empty.append(slide_id)
            continue
        shape = store.feature_array(encoder_id).shape
        dims.setdefault(int(shape[1]), []).append(slide_id)
        attrs = attrs or store.feature_attrs(encoder_id)
        label = labels[slide_id]
        slides.append(
            Slide(slide_id, label, list(class_names).index(label), store.path, store.n_patches)
        )
    if no_features:
        raise DataError(
            f"{len(no_features)} labelled slide(s) have no complete features for encoder '{encoder_id}': {_listing(no_features)}",
            hint=f"run `wsi-engine embed --encoder {encoder_id}` on their stores",
        )
    if empty:
        raise DataError(
            f"{len(empty)} labelled slide(s) have no patches (no tissue found): {_listing(empty)}",
            hint="remove them from the labels",
        )
    if len(dims) > 1:
        detail = "; ".join(f"D={d}: {_listing(ids, 2)}" for d, ids in sorted(dims.items()))
        raise DataError(
            f"features of encoder '{encoder_id}' differ in width across stores ({detail})"
        )
    return Cohort(tuple(slides), tuple(class_names), encoder_id, next(iter(dims)), attrs)


class BagReader:
    """Bags of a cohort by slide id, with an LRU cache of at most ``cache_bytes`` of on-disk-typed arrays."""

    def __init__(self, stores: dict[str, Path], encoder_id: str, cache_bytes: int = 1 << 30):
        self.stores = stores
        self.encoder_id = encoder_id
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cached_bytes = 0

    @classmethod
    def for_cohort(cls, cohort: Cohort, cache_bytes: int = 1 << 30) -> BagReader:
        return cls({s.slide_id: s.store for s in cohort.slides}, cohort.encoder_id, cache_bytes)

    def get(self, slide_id: str) -> torch.Tensor:
        """(N, D) float32 features of ``slide_id``."""
        values = self._cache.get(slide_id)
        if values is None:
            values = read_bag(self.stores[slide_id], self.encoder_id)
            self._cache[slide_id] = values
            self._cached_bytes += values.nbytes
            while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
                _, evicted = self._cache.popitem(last=False)
                self._cached_bytes -= evicted.nbytes
        else:
            self._cache.move_to_end(slide_id)
        return torch.from_numpy(values.astype(np.float32))
