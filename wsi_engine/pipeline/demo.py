"""``wsi-engine demo``: the whole engine on a generated cohort, with a tiny random-weight encoder.

Steps: generate a synthetic cohort (normal vs tumour slides with planted
lesions and ground truth) → save a tiny open_clip encoder with random weights
(loaded back through the normal checkpoint path) → ``run`` (tile + embed) →
``fit`` a few-shot Libra-MIL model → ``run`` again with the fitted run
(tiling and embedding are skipped, prediction and heatmaps added) → score the
per-patch evidence against the planted lesions. Real use needs real encoder
weights (see the README): the tiny encoder only shows that everything runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wsi_engine.pipeline import load_pipeline_config
from wsi_engine.pipeline.run import STORES_DIR, PipelineReport, StageTelemetry, run_pipeline
from wsi_engine.stage import StageObserver
from wsi_engine.store import PatchStore, store_path

DEMO_ENCODER = "tiny-clip"
DEMO_TASK = "synthetic-demo"
LESION_CLASS = "tumor"


@dataclass(frozen=True)
class DemoSize:
    """Cohort size: ``n_slides`` slides of ``size``² level-0 px at 0.5 µm/px; ``shots`` per class; ``folds``."""

    n_slides: int = 16
    size: int = 3072
    shots: int = 4
    folds: int = 3
    epochs: int = 30


@dataclass
class DemoResult:
    """Where everything is, and the figures the demo prints."""

    out_dir: Path
    cohort_dir: Path
    checkpoint: Path
    pipeline_dir: Path
    fit_dir: Path
    report: PipelineReport
    fit_summary: dict
    lesion_auc: float
    lesion_auc_per_slide: list[float] = field(default_factory=list)


def run_demo(
    out_dir: str | Path,
    size: DemoSize = DemoSize(),
    *,
    seed: int = 0,
    say: Callable[[str], None] = print,
    observer: StageObserver | None = None,
) -> DemoResult:
    """Run the demo into ``out_dir``; rerunning reuses what is already there."""
    from wsi_engine.encoders import create_random_checkpoint
    from wsi_engine.mil.fit import FitConfig, fit
    from wsi_engine.mil.train import TrainConfig

    began = time.perf_counter()
    out_dir = Path(out_dir)
    cohort_dir, pipeline_dir, fit_dir = out_dir / "cohort", out_dir / "pipeline", out_dir / "fit"
    say(
        f"1/5 synthetic cohort: {size.n_slides} slides ({size.size}² px at 0.5 µm/px) in {cohort_dir}"
    )
    labels_csv = _cohort(cohort_dir, size, seed)
    cohort_seconds = time.perf_counter() - began
    checkpoint = out_dir / "weights" / f"{DEMO_ENCODER}.safetensors"
    if not checkpoint.is_file():
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        create_random_checkpoint(DEMO_ENCODER, checkpoint, seed=seed)
    say(f"2/5 tiny random-weight encoder: {checkpoint.relative_to(out_dir)}")
    config = load_pipeline_config(
        None,
        {
            "embed.encoder": DEMO_ENCODER,
            "embed.checkpoint": str(checkpoint),
            "embed.batch_size": 32,
        },
    )
    slides = cohort_dir / "slides"
    say("3/5 tiling and embedding every slide")
    first = run_pipeline([slides], pipeline_dir, config, observer=observer)
    fit_began = time.perf_counter()
    say(f"4/5 fitting Libra-MIL, {size.shots} shots per class, {size.folds} folds")
    fitted = fit(
        FitConfig(
            task=DEMO_TASK,
            encoder=DEMO_ENCODER,
            model="libra",
            # the demo's random-weight encoder and synthetic slides: with the default contrast
            # fusion the fold models separate their training slides but predict one class for
            # the validation slides (balanced accuracy 0.67, docs/mil.md); no fusion does not
            model_options={"fusion": "none"},
            shots=[size.shots],
            folds=size.folds,
            seed=seed,
            train=TrainConfig(epochs=size.epochs, patience=10, lr=5e-4),
        ),
        labels_csv,
        [pipeline_dir / STORES_DIR],
        fit_dir,
        checkpoint=checkpoint,
        overwrite=True,
    )
    fit_seconds = time.perf_counter() - fit_began
    say("5/5 predicting every slide and drawing heatmaps")
    report = run_pipeline([slides], pipeline_dir, config, fitted_run=fit_dir, observer=observer)
    _whole_demo(report, first, {"cohort": cohort_seconds, "fit": fit_seconds})
    report.seconds = time.perf_counter() - began
    pooled, per_slide = lesion_auc(pipeline_dir / STORES_DIR, cohort_dir / "truth", report.score_id)
    return DemoResult(
        out_dir,
        cohort_dir,
        checkpoint,
        pipeline_dir,
        fit_dir,
        report,
        fitted.summary,
        pooled,
        per_slide,
    )


def _whole_demo(report: PipelineReport, first: PipelineReport, extra: dict[str, float]) -> None:
    """Fold the first run (tile, embed) and the steps between runs into ``report``, in demo order."""
    for slide_id, stages in report.status.items():
        for stage, status in first.status.get(slide_id, {}).items():
            if stages.get(stage) == "skipped" and status == "done":
                stages[stage] = "done"
    merged = {"cohort": StageTelemetry(extra["cohort"])}
    for stage, telemetry in first.telemetry.items():
        merged[stage] = telemetry
    merged["fit"] = StageTelemetry(extra["fit"])
    for stage, telemetry in report.telemetry.items():
        if stage in merged:
            old = merged[stage]
            details = {k: old.details.get(k, 0.0) + telemetry.details.get(k, 0.0)
                       for k in {*old.details, *telemetry.details}}  # fmt: skip
            merged[stage] = StageTelemetry(old.seconds + telemetry.seconds, old.patches + telemetry.patches, details)  # fmt: skip
        else:
            merged[stage] = telemetry
    report.telemetry = merged


def _cohort(cohort_dir: Path, size: DemoSize, seed: int) -> Path:
    """Generate the cohort unless ``cohort.json`` shows the same one is already there; returns labels.csv."""
    import json

    from wsi_engine.synthetic import generate_cohort

    wanted = {
        "n_slides": size.n_slides,
        "classes": ["normal", LESION_CLASS],
        "width": size.size,
        "height": size.size,
        "mpp": 0.5,
        "seed": seed,
        "artefacts": True,
    }
    previous = cohort_dir / "cohort.json"
    if previous.is_file():
        parameters = json.loads(previous.read_text()).get("parameters", {})
        if all(parameters.get(key) == value for key, value in wanted.items()):
            return cohort_dir / "labels.csv"
    wanted["classes"] = tuple(wanted["classes"])
    return generate_cohort(cohort_dir, **wanted).labels_csv


def lesion_auc(
    stores_dir: Path, truth_dir: Path, score_id: str | None
) -> tuple[float, list[float]]:
    """AUC of the tumour-class evidence for patches inside planted lesions: pooled, and per lesion slide."""
    from wsi_engine.patch.evaluate import attention_evidence, patch_auc
    from wsi_engine.tissue import patch_truth_fraction

    truths, scores, per_slide = [], [], []
    for geojson in sorted(truth_dir.glob("*.lesions.geojson")):
        slide_id = geojson.name.split(".", 1)[0]
        path = store_path(stores_dir, slide_id)
        if score_id is None or not path.is_dir():
            continue
        store = PatchStore.open(path)
        if not store.has_scores(score_id):
            continue
        arrays, attrs = store.read_scores(score_id)
        truth = patch_truth_fraction(store.coords(), store.patch_size_level0, geojson)
        if not (truth >= 0.5).any():
            continue
        evidence = attention_evidence(
            arrays["attention"], list(attrs["class_names"]).index(LESION_CLASS)
        )
        truths.append(truth)
        scores.append(evidence)
        per_slide.append(patch_auc(truth, evidence))
    if not truths:
        return float("nan"), []
    return patch_auc(np.concatenate(truths), np.concatenate(scores)), per_slide
