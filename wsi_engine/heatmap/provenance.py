"""What a reader of a heatmap must know about the model behind the scores.

``training_roles``: which slides a fold model of the fitted run saw while it
was trained (training set) or selected (validation set). Their probabilities
are averages over fold models of which some learned from them, so they are not
a held-out estimate. Read from ``splits.json`` of the fit run that ``predict``
recorded in the scores' attributes (``fit_run``, ``shots``, ``folds``).

``shown_classes``: the classes a page draws per slide: the positive class (the
second class of the task, e.g. ``tumor`` in ``normal, tumor``) for a binary
task, every class otherwise.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any


def training_roles(attrs: dict[str, Any]) -> dict[str, str]:
    """{slide_id: e.g. ``training slide of folds 0, 2``} for the fold models behind ``attrs``; {} if unknown."""
    fit_run, shots, folds = attrs.get("fit_run"), attrs.get("shots"), attrs.get("folds")
    if not fit_run or shots is None or not folds:
        return {}
    return dict(_roles(str(fit_run), int(shots), tuple(int(f) for f in folds)))


@functools.lru_cache(maxsize=8)
def _roles(fit_run: str, shots: int, folds: tuple[int, ...]) -> tuple[tuple[str, str], ...]:
    try:
        payload = json.loads((Path(fit_run) / "splits.json").read_text(encoding="utf-8"))
        splits = [s for s in payload["splits"] if s["shots"] == shots and s["fold"] in folds]
    except (OSError, ValueError, KeyError, TypeError):
        return ()
    seen: dict[str, dict[str, list[int]]] = {}
    for split in splits:
        for role in ("train", "val"):
            for slide_id in split.get(role, []):
                seen.setdefault(slide_id, {}).setdefault(role, []).append(int(split["fold"]))
    words = {"train": "training", "val": "validation"}
    return tuple(
        (
            slide_id,
            "; ".join(
                f"{words[role]} slide of fold{'s' if len(f) > 1 else ''} {', '.join(map(str, sorted(f)))}"
                for role, f in roles.items()
            ),
        )
        for slide_id, roles in sorted(seen.items())
    )


def shown_classes(class_names: list[str]) -> list[int]:
    """Indices of the classes to draw: the positive (second) class of a binary task, else all."""
    return [1] if len(class_names) == 2 else list(range(len(class_names)))
