"""The batch manifest: per slide and stage, what ran, on which inputs, with which parameters.

``OUT/manifest.json`` maps ``slide_id -> stage -> record`` where a record has
``status`` (``done`` | ``failed``), ``key`` (a hash of the stage's parameters
and its inputs' fingerprints), ``seconds``, ``throughput`` (patches/s),
``telemetry`` (stage-specific timings) and ``error``. A stage is skipped when
its record is ``done`` with the same key and its output still exists; any
change of a parameter changes the key of that stage and of every later one.
The file is rewritten atomically after every update.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wsi_engine.atomic import write_json

MANIFEST_NAME = "manifest.json"


class Manifest:
    """Read-modify-write access to ``OUT/manifest.json`` (one writer: the lock holder)."""

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / MANIFEST_NAME
        self.data: dict[str, Any] = {"slides": {}}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except ValueError:  # unreadable: everything is recomputed
                self.data = {"slides": {}}

    def record(self, slide_id: str, stage: str) -> dict[str, Any] | None:
        return self.data["slides"].get(slide_id, {}).get(stage)

    def is_done(self, slide_id: str, stage: str, key: str) -> bool:
        entry = self.record(slide_id, stage)
        return bool(entry and entry.get("status") == "done" and entry.get("key") == key)

    def failed_slides(self) -> list[str]:
        return sorted(
            slide
            for slide, stages in self.data["slides"].items()
            if any(rec.get("status") == "failed" for rec in stages.values())
        )

    def update(self, slide_id: str, stage: str, **record: Any) -> None:
        self.data["slides"].setdefault(slide_id, {})[stage] = record
        self.save()

    def forget_from(self, slide_id: str, stages: list[str]) -> None:
        """Drop the records of ``stages`` for ``slide_id`` (their outputs are recomputed)."""
        for stage in stages:
            self.data["slides"].get(slide_id, {}).pop(stage, None)
        self.save()

    def save(self) -> None:
        write_json(self.path, self.data, sort_keys=True)
