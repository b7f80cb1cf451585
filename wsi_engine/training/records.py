"""Typed run records: ``run.json`` of ``fit`` and ``fit-patches`` runs, their checkpoints' ``meta``
and the pipeline's ``manifest.json``.

One strict, versioned model per record, written and read only here (the JSON layout is the one
earlier versions wrote: keys absent from a record stay absent, :meth:`Record.to_json`). Reading
checks, in order: the file parses, its ``format`` is the expected kind, its ``version`` is one
this engine reads (:data:`RECORD_VERSION`), the run finished, and every key is known with a
value of the right type; each failure is one :class:`~wsi_engine.errors.DataError` (exit 7)
naming the file. Records written before ``version`` existed read as version 1.

Writers: :mod:`wsi_engine.mil.fit` (:class:`FitRunRecord`, :class:`MilCheckpointMeta`),
:mod:`wsi_engine.patch.fit` (:class:`PatchRunRecord`, :class:`PatchCheckpointMeta`),
:mod:`wsi_engine.pipeline.manifest` (:class:`ManifestRecord` of ``wsi-engine run``). Readers:
``predict``, ``fit-patches --from-run``, ``predict-patches``, the pipeline's predict stage and
its preflight.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wsi_engine import __version__, atomic
from wsi_engine.errors import DataError
from wsi_engine.store import utc_now

RUN_FILE = "run.json"
RECORD_VERSION = 1
"""Version of the run records this engine writes and reads."""

FIT_RUN_FORMAT: Final = "wsi-engine-run"
PATCH_RUN_FORMAT: Final = "wsi-engine-patch-run"


class Record(BaseModel):
    """Base of the run records: unknown keys are errors; values are checked on assignment."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, populate_by_name=True, protected_namespaces=()
    )

    def to_json(self) -> dict[str, Any]:
        """The record as written: original key names, unset optional keys left out, NaN kept
        (the fields are JSON values already; pydantic's JSON mode would turn NaN into null)."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class CheckpointEntry(Record):
    """One fold model of a fit run: shots, fold, training seed and its path inside the run."""

    shots: int
    fold: int
    seed: int = 0
    path: str


class PrivilegedTextRecord(Record):
    """The report corpus a run distilled from (CLIP-IT), and how its items were paired."""

    corpus: str
    corpus_id: str
    paired: str
    pairing: dict[str, Any]
    lora_targets: list[str] | None = None
    text_classifier_losses: list[Any] | None = None


class RunHeader(Record):
    """The first keys of every ``run.json``: kind, version, run id, status, when, which engine."""

    format: str
    version: int = RECORD_VERSION
    run_id: str
    status: Literal["running", "complete"]
    created: str | None = None
    engine_version: str | None = None


class FitRunRecord(RunHeader):
    """``run.json`` of ``wsi-engine fit`` (:mod:`wsi_engine.mil.rundir`)."""

    format: Literal["wsi-engine-run"] = FIT_RUN_FORMAT
    task: str
    class_names: list[str]
    encoder_id: str
    encoder_preset: str | None = None
    feature_dim: int
    feature_output_kind: str | None = None
    model: str
    model_options: dict[str, Any] = Field(alias="model_config")
    train_config: dict[str, Any] = Field(default_factory=dict)
    language_priors: Literal["text-embeddings", "text-free"] = "text-free"
    language_note: str = "text-free run"
    long_prompts: list[str] = Field(default_factory=list)
    labels: str
    stores: list[str] = Field(default_factory=list)
    splits_source: str | None = None
    seed: int = 0
    training_seeds: list[int] = Field(default_factory=lambda: [0])
    checkpoints: list[CheckpointEntry] = Field(default_factory=list)
    privileged_text: PrivilegedTextRecord | None = None
    completed: str | None = None
    summary: dict[str, Any] | None = None


class MilCheckpointMeta(Record):
    """``meta`` of a fit run's fold checkpoint ``model.pt``: all ``predict`` needs besides the weights."""

    version: int = RECORD_VERSION
    run_id: str | None = None
    model: str
    model_options: dict[str, Any] = Field(alias="model_config")
    class_names: list[str]
    task: str
    encoder_id: str
    feature_dim: int
    language_priors: bool = False
    shots: int | None = None
    fold: int | None = None
    seed: int | None = None
    best_epoch: int | None = None


class PromptRecord(Record):
    """Which prompt embeddings a MIL checkpoint was built from (its ``text`` entry's ``meta``)."""

    encoder_id: str
    class_names: list[str]


class LateFusionRecord(Record):
    """A CLIP-IT patch head's text branch: text embedding width and the corpus it came from."""

    text_dim: int
    corpus: str | None = None


class PatchCheckpointMeta(Record):
    """``meta`` of a ``fit-patches`` checkpoint: what rebuilds the head (feature width, classes,
    head config and levels, the CLIP-IT text branch) and, from ``fit-patches``, its provenance."""

    version: int = RECORD_VERSION
    run_id: str | None = None
    model: str | None = None
    class_names: list[str]
    task: str | None = None
    encoder_id: str | None = None
    feature_dim: int
    language_priors: bool = False
    best_epoch: int | None = None
    late_fusion: LateFusionRecord | None = None
    head_config: dict[str, Any] = Field(default_factory=dict)
    level_names: list[str] = Field(default_factory=list)


class PatchRunRecord(RunHeader):
    """``run.json`` of ``wsi-engine fit-patches`` (:mod:`wsi_engine.patch.rundir`): the checkpoint's
    meta, the source (a bag run or an image folder), counts and metrics."""

    format: Literal["wsi-engine-patch-run"] = PATCH_RUN_FORMAT
    model: str
    class_names: list[str]
    task: str | None
    encoder_id: str
    feature_dim: int
    language_priors: bool
    best_epoch: int
    late_fusion: LateFusionRecord | None = None
    head: str
    language_note: str
    source: Literal["bag-run", "images"]
    # source bag-run
    bag_run: str | None = None
    bag_run_id: str | None = None
    bag_model: str | None = None
    bag_shots: int | None = None
    bag_folds: list[int] | None = None
    evidence: str | None = None
    labels: str | None = None
    stores: list[str] | None = None
    stores_2: list[str] | None = None
    bag_fold_roles: bool | None = None
    slides_outside_fold: int | None = None
    metrics_note: str | None = None
    # source images
    images: str | None = None
    encoder_checkpoint_sha256: str | None = None
    n_groups: int
    n_patches: int
    hard_targets: dict[str, int]
    n_train_patches: int
    n_val_patches: int
    n_test_patches: int
    seconds: float
    skipped: list[dict[str, str]] = Field(default_factory=list)
    metrics: list[dict[str, Any]] = Field(default_factory=list)
    confusion: list[list[int]] = Field(default_factory=list)
    checkpoint: str = "model.pt"
    privileged_text: PrivilegedTextRecord | None = None


class StageRecord(Record):
    """What one stage of ``wsi-engine run`` recorded for one slide in ``OUT/manifest.json``.

    ``status`` and ``key`` (the stage key it ran with), ``seconds``, ``error`` and ``path`` (a failed
    slide), then what each stage reports for the later ones: tiling (``n_patches``,
    ``new_patches``, ``patches_per_s``, ``fingerprint``, ``path``), embedding (``encoder_id``,
    ``device``, ``precision``), prediction (``score_id``, ``class_names``, ``probs``,
    ``predicted``) and heatmaps (``files``).
    """

    status: Literal["done", "failed"]
    key: str | None = None
    seconds: float | None = None
    error: str | None = None
    path: str | None = None
    n_patches: int | None = None
    new_patches: int | None = None
    patches_per_s: float | None = None
    fingerprint: str | None = None
    encoder_id: str | None = None
    device: str | None = None
    precision: str | None = None
    score_id: str | None = None
    class_names: list[str] | None = None
    probs: list[float] | None = None
    predicted: str | None = None
    files: list[str] | None = None
    empty: bool | None = None
    """tiling, in manifests written before the stage protocol (an empty slide)"""


class ManifestRecord(Record):
    """``OUT/manifest.json`` of ``wsi-engine run``: slide id → stage → :class:`StageRecord`."""

    version: int = RECORD_VERSION
    slides: dict[str, dict[str, StageRecord]] = Field(default_factory=dict)


R = TypeVar("R", bound=Record)


def run_header(kind: str, run_id: str, status: str) -> dict[str, Any]:
    """The first keys of a new ``run.json``: format ``kind``, version, run id, status, creation time, engine."""
    return {
        "format": kind,
        "version": RECORD_VERSION,
        "run_id": run_id,
        "status": status,
        "created": utc_now(),
        "engine_version": __version__,
    }


def write_record(path: Path, record: Record) -> None:
    """Write ``record`` as JSON, atomically."""
    atomic.write_json(path, record.to_json())


def parse_record(model: type[R], data: Any, path: Path, what: str, *, hint: str | None = None) -> R:
    """``data`` (a record read from ``path``) as ``model``; one DataError naming ``path`` otherwise."""
    if not isinstance(data, dict):
        raise DataError(f"not a {what} (expected a JSON object)", path=path, hint=hint)
    version = data.get("version", RECORD_VERSION)
    if version != RECORD_VERSION:
        readable = f"this wsi-engine {__version__} reads version {RECORD_VERSION}"
        hint = "use the wsi-engine version that wrote it, or refit the run"
        raise DataError(f"{what} record version {version!r}; {readable}", path=path, hint=hint)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        from wsi_engine.config.loader import describe_validation_error

        raise DataError(
            f"not a valid {what} ({describe_validation_error(error)})",
            path=path,
            hint=hint or "the file is damaged or was edited; refit the run",
        ) from None


def read_run_record(
    run_dir: Path, model: type[R], what: str, command: str, hint: str | None = None
) -> R:
    """``run.json`` of a finished run of ``model``'s format; a DataError naming ``what`` it should be otherwise.

    ``command`` is the command that writes such runs (for the hint to rerun it); ``hint`` is added
    when the file is of another format.
    """
    path = Path(run_dir) / RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"not a {what} (no readable run.json)", path=run_dir) from error
    kind = model.model_fields["format"].default
    found = data.get("format") if isinstance(data, dict) else None
    if found != kind:
        raise DataError(f"not a {what} (format {found!r})", path=path, hint=hint)
    if data.get("status") != "complete":
        raise DataError(
            f"this {command} run did not finish",
            path=run_dir,
            hint=f"rerun `wsi-engine {command} ... --overwrite`",
        )
    return parse_record(model, data, path, what)
