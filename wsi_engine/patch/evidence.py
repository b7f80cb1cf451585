"""Training patches from a fitted bag run: evidence per labelled slide → targets → a PatchSet.

The bag run's fold models (``--shots``, ``--fold``; all folds of the largest
shot setting by default) are applied to every labelled store exactly as
``wsi-engine predict`` does (:func:`wsi_engine.mil.predict.predict_bag`:
fold-averaged attention, instance score and slide probabilities); the rules of
:mod:`wsi_engine.patch.targets` turn that into hard and soft targets, from the
evidence the options name or, by default, the one the bag models prefer
(:func:`resolve_evidence`). Slides are *skipped with a reason* (not an error)
when their store is missing, empty, lacks complete features of the run's
encoder, has features of another width, or holds NaN features; the run fails
only when fewer than two classes remain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsi_engine.errors import DataError, StoreError
from wsi_engine.mil.base import MILModel
from wsi_engine.mil.data import check_classes
from wsi_engine.mil.predict import predict_bag, select_checkpoints
from wsi_engine.mil.rundir import load_checkpoint, read_run
from wsi_engine.patch.dataset import PatchSet
from wsi_engine.patch.multiscale import second_views, view_mismatch
from wsi_engine.patch.targets import SlideEvidence, TargetConfig, resolve_background, slide_targets
from wsi_engine.store import PatchStore, find_stores, store_slide_id
from wsi_engine.training.records import FitRunRecord
from wsi_engine.training.stores import usable_features


@dataclass(frozen=True)
class Skipped:
    """An input left out of training (a store, a second-view store, an image) and why."""

    item: str
    reason: str


@dataclass
class BagRun:
    """A finished ``wsi-engine fit`` run and the fold models chosen from it."""

    run_dir: Path
    run: FitRunRecord
    models: list[MILModel]
    shots: int
    folds: list[int]

    @property
    def class_names(self) -> list[str]:
        return list(self.run.class_names)

    @property
    def encoder_id(self) -> str:
        return self.run.encoder_id

    @property
    def task(self) -> str:
        return self.run.task

    @property
    def preferred_evidence(self) -> str:
        """``instance_score`` when every fold model prefers it (Libra-MIL with a fusion), else ``attention``."""
        preferred = {m.preferred_evidence for m in self.models}
        return "instance_score" if preferred == {"instance_score"} else "attention"


def resolve_evidence(config: TargetConfig, bag: BagRun) -> TargetConfig:
    """``config`` with ``evidence: auto`` replaced by the bag run's preferred evidence."""
    if config.evidence != "auto":
        return config
    return config.model_copy(update={"evidence": bag.preferred_evidence})


def load_bag_run(
    run_dir: str | Path, shots: int | None = None, fold: str = "all", task: str | None = None
) -> BagRun:
    """The fold models of ``run_dir``; with ``task``, refuse a run fitted for another task."""
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    if task is not None and task != run.task:
        raise DataError(
            f"the bag run was fitted for task '{run.task}', not '{task}'",
            path=run_dir,
            hint="give the fit run of this task, or drop --task",
        )
    shots, entries = select_checkpoints(run, shots, fold)
    models = [load_checkpoint(run_dir / e.path)[0] for e in entries]
    return BagRun(run_dir, run, models, shots, [e.fold for e in entries])


@dataclass
class EvidenceSet:
    """The patches of the usable labelled slides, and what was skipped."""

    patches: PatchSet
    skipped: list[Skipped] = field(default_factory=list)
    slide_rows: list[dict[str, Any]] = field(default_factory=list)
    roles: list[str] | None = None
    outside_fold: int = 0


def _views(
    store: PatchStore, second: Path | None, encoder_id: str, feature_dim: int
) -> tuple[np.ndarray | None, str | None]:
    """(second-view features (N, D) or None, why there are none)."""
    if second is None:
        return None, "no store of this slide in --stores-2"
    try:
        other, features = usable_features(second, encoder_id, feature_dim)
    except (StoreError, DataError) as error:
        return None, error.message
    reason = view_mismatch(store, other)
    return (None, reason) if reason else (second_views(store, other, features), None)


def fold_roles(bag: BagRun) -> dict[str, str] | None:
    """{slide_id: "train" | "val" | "test"} of the bag run's single used fold (from its ``splits.json``),
    or None when the run has no splits file or several fold models are used."""
    path = bag.run_dir / "splits.json"
    if len(set(bag.folds)) != 1 or not path.is_file():
        return None
    from wsi_engine.mil.fewshot import load_splits_json

    split = next(
        (s for s in load_splits_json(path) if s.shots == bag.shots and s.fold == bag.folds[0]),
        None,
    )
    if split is None:
        return None
    return {
        **{s: "train" for s in split.train},
        **{s: "val" for s in split.val},
        **{s: "test" for s in split.test},
    }


def collect_evidence(
    bag: BagRun,
    labels: dict[str, str],
    store_dirs: list[str | Path],
    config: TargetConfig,
    *,
    max_patches_per_slide: int,
    seed: int,
    second_store_dirs: list[str | Path] | None = None,
    roles: dict[str, str] | None = None,
) -> EvidenceSet:
    """Targets of every usable labelled slide (module docstring); ``second_store_dirs`` adds second views.

    With ``roles`` (:func:`fold_roles`) only the fold's training, validation and test slides are
    used, and each slide's role is kept (``EvidenceSet.roles``); the others are counted in
    ``EvidenceSet.outside_fold``.
    """
    class_names = bag.class_names
    check_classes(labels, class_names, bag.task)
    background = resolve_background(class_names, config.background_class)
    encoder_id, feature_dim = bag.encoder_id, bag.run.feature_dim
    stores = {store_slide_id(p): p for p in find_stores(list(store_dirs))}
    seconds = {store_slide_id(p): p for p in find_stores(list(second_store_dirs or []))}
    rng = np.random.default_rng(seed)
    skipped = [
        Skipped(s, "labelled slide without a store in --stores")
        for s in sorted(labels)
        if s not in stores
    ]
    parts: list[dict[str, np.ndarray]] = []
    names, group_labels, rows, group_roles = [], [], [], []
    outside = 0
    for slide_id in sorted(s for s in labels if s in stores):
        if roles is not None and slide_id not in roles:
            outside += 1
            continue
        try:
            store, features = usable_features(stores[slide_id], encoder_id, feature_dim)
        except (StoreError, DataError) as error:
            skipped.append(Skipped(str(stores[slide_id]), error.message))
            continue
        label = class_names.index(labels[slide_id])
        out = predict_bag(bag.models, torch.from_numpy(features))
        evidence = SlideEvidence(out["attention"], out.get("instance_score"), out["probs"])
        targets = slide_targets(evidence, label, background, config)
        views = None
        if second_store_dirs:
            views, why = _views(store, seconds.get(slide_id), encoder_id, feature_dim)
            if why:
                skipped.append(Skipped(f"{slide_id} (second view)", why))
        keep = np.sort(
            rng.choice(len(features), size=min(len(features), max_patches_per_slide), replace=False)
        )
        group = len(names)
        parts.append(
            {
                "features": features[keep],
                "hard": targets.hard[keep],
                "soft": targets.soft[keep],
                "group": np.full(len(keep), group, dtype=np.int64),
                "views": views[keep]
                if views is not None
                else np.full((len(keep), feature_dim), np.nan, dtype=np.float32),
            }
        )
        names.append(slide_id)
        group_labels.append(label)
        if roles is not None:
            group_roles.append(roles[slide_id])
        counts = np.bincount(targets.hard + 1, minlength=len(class_names) + 1)
        rows.append(
            {
                "slide_id": slide_id,
                "label": labels[slide_id],
                **({"role": roles[slide_id]} if roles is not None else {}),
                "n_patches": len(features),
                "n_used": len(keep),
                "slide_prob_label": float(evidence.slide_probs[label]),
                "unlabelled": int(counts[0]),
                **{f"n_{c}": int(n) for c, n in zip(class_names, counts[1:], strict=True)},
            }
        )
    used = sorted({class_names[g] for g in group_labels})
    if len(used) < 2:
        first = f"; first skipped: {skipped[0].item}: {skipped[0].reason}" if skipped else ""
        raise DataError(
            f"usable labelled slides cover {len(used)} class(es) ({', '.join(used) or 'none'}) of {len(stores)} store(s) given; "
            f"training needs two{first}",
            hint=f"the bag run uses encoder '{encoder_id}': embed the stores with it, or give the fit run of these stores",
        )
    stack = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    patches = PatchSet(
        stack["features"],
        stack["hard"],
        stack["soft"],
        stack["group"],
        names,
        np.array(group_labels, dtype=np.int64),
        stack["views"] if second_store_dirs else None,
    )
    return EvidenceSet(patches, skipped, rows, group_roles if roles is not None else None, outside)
