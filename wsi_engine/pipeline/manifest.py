"""The batch manifest: per slide and stage, what ran, on which inputs, with which parameters.

``OUT/manifest.json`` maps ``slide_id -> stage -> record``
(:class:`~wsi_engine.training.records.StageRecord`) where a record has
``status`` (``done`` | ``failed``), ``key`` (a hash of the stage's parameters
and its inputs' fingerprints), ``seconds``, what the stage reports for the later
ones (patch counts, patches/s, the score id and probabilities...) and ``error``. A stage is skipped when
its record is ``done`` with the same key and its output still exists; any
change of a parameter changes the key of that stage and of every later one.
The file is rewritten atomically after every update.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wsi_engine.atomic import write_json
from wsi_engine.training.records import ManifestRecord, StageRecord, parse_record

MANIFEST_NAME = "manifest.json"


class Manifest:
    """Read-modify-write access to ``OUT/manifest.json`` (one writer: the lock holder).

    An unparsable file is recomputed from scratch; one that parses but is not a manifest
    (unknown keys, wrong types, a newer version) is a DataError naming it.
    """

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / MANIFEST_NAME
        self.slides: dict[str, dict[str, StageRecord]] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except ValueError:  # unreadable: everything is recomputed
                return
            what = "wsi-engine run manifest"
            hint = "delete it to run every stage again"
            self.slides = parse_record(ManifestRecord, data, self.path, what, hint=hint).slides

    def record(self, slide_id: str, stage: str) -> StageRecord | None:
        return self.slides.get(slide_id, {}).get(stage)

    def is_done(self, slide_id: str, stage: str, key: str) -> bool:
        entry = self.record(slide_id, stage)
        return entry is not None and entry.status == "done" and entry.key == key

    def failed_slides(self) -> list[str]:
        return sorted(
            slide
            for slide, stages in self.slides.items()
            if any(entry.status == "failed" for entry in stages.values())
        )

    def update(self, slide_id: str, stage: str, **record: Any) -> StageRecord:
        """Record ``stage`` of ``slide_id`` (checked against :class:`StageRecord`) and save."""
        entry = StageRecord(**record)
        self.slides.setdefault(slide_id, {})[stage] = entry
        self.save()
        return entry

    def forget_from(self, slide_id: str, stages: list[str]) -> None:
        """Drop the records of ``stages`` for ``slide_id`` (their outputs are recomputed)."""
        for stage in stages:
            self.slides.get(slide_id, {}).pop(stage, None)
        self.save()

    def save(self) -> None:
        write_json(self.path, ManifestRecord(slides=self.slides).to_json(), sort_keys=True)
