"""A labelled cohort of synthetic slides, reproducible from one seed.

Layout of ``out_dir``::

    slides/<id>.tiff | <id>.svs      the slides (generic / aperio flavour)
    truth/<id>.lesions.geojson      lesion polygons (level-0 px, QuPath-importable)
    truth/<id>.lesions.png          lesion mask  } one pixel per mask_downsample
    truth/<id>.tissue.png           tissue mask  } level-0 pixels (see <id>.json)
    truth/<id>.json                 size, mpp, levels, label, lesions, artefacts
    labels.csv                      slide_id,label
    cohort.json                     generation parameters and slide list

Labels go round-robin over the classes (slide i has class i mod k); flavours
and artefacts vary with i div k, so every class gets the same mix of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsi_engine import __version__
from wsi_engine.errors import ConfigError, OutputError
from wsi_engine.synthetic.lesions import lesion_pattern
from wsi_engine.synthetic.slide import check_slide_options, generate_slide
from wsi_engine.synthetic.truth import SlideTruth
from wsi_engine.synthetic.writer import FLAVORS, tile_count

ARTEFACT_CYCLE: tuple[tuple[str, ...], ...] = (
    ("pen",),
    ("black_edge",),
    ("blur",),
    ("pen", "black_edge", "blur"),
    (),
)
"""Artefact sets handed out in turn when a cohort asks for artefacts."""

_EXTENSIONS = {"generic": ".tiff", "aperio": ".svs"}


@dataclass(frozen=True)
class SlidePlan:
    """What one cohort slide will be: id, class label, flavour, artefacts and seed."""

    slide_id: str
    label: str
    flavor: str
    artefacts: tuple[str, ...]
    seed: int

    @property
    def file_name(self) -> str:
        """Slide file name: ``<id>.tiff`` (generic) or ``<id>.svs`` (aperio)."""
        return self.slide_id + _EXTENSIONS[self.flavor]


@dataclass(frozen=True)
class CohortSlide:
    """One written slide of a cohort and its ground truth."""

    plan: SlidePlan
    truth: SlideTruth
    truth_files: dict[str, Path]


@dataclass(frozen=True)
class CohortManifest:
    """What :func:`generate_cohort` wrote under ``out_dir``."""

    out_dir: Path
    slides: tuple[CohortSlide, ...]
    labels_csv: Path
    cohort_json: Path
    parameters: dict


def _flavor_cycle(flavors: str | Sequence[str]) -> tuple[str, ...]:
    """Flavours to hand out in turn: ``mixed`` means all of :data:`FLAVORS`."""
    names = (
        FLAVORS
        if flavors == "mixed"
        else (flavors,)
        if isinstance(flavors, str)
        else tuple(flavors)
    )
    unknown = [name for name in names if name not in FLAVORS]
    if unknown or not names:
        shown = unknown[0] if unknown else ""
        raise ConfigError(f"--flavor {shown!r} is unknown", hint="use mixed, generic or aperio")
    return tuple(names)


def plan_cohort(
    *,
    n_slides: int,
    classes: Sequence[str],
    seed: int,
    artefacts: bool,
    flavors: str | Sequence[str],
) -> list[SlidePlan]:
    """Decide every slide's id, label, flavour, artefacts and seed; validates the options."""
    if n_slides < 1:
        raise ConfigError(f"--n-slides {n_slides} is invalid", hint="ask for at least 1 slide")
    if not classes or len(set(classes)) != len(classes):
        raise ConfigError(
            f"--classes {','.join(classes)!r} is invalid",
            hint="give distinct class names, e.g. normal,tumor",
        )
    for label in classes:
        lesion_pattern(label)
    if n_slides < len(classes):
        raise ConfigError(
            f"--n-slides {n_slides} is fewer than the {len(classes)} classes",
            hint=f"ask for at least {len(classes)} slides or fewer classes",
        )
    cycle = _flavor_cycle(flavors)
    plans = []
    for index in range(n_slides):
        turn = index // len(classes)
        plans.append(
            SlidePlan(
                slide_id=f"slide_{index:03d}",
                label=classes[index % len(classes)],
                flavor=cycle[turn % len(cycle)],
                artefacts=ARTEFACT_CYCLE[turn % len(ARTEFACT_CYCLE)] if artefacts else (),
                seed=int(np.random.SeedSequence([seed, index]).generate_state(1)[0]),
            )
        )
    return plans


def generate_cohort(
    out_dir: str | Path,
    *,
    n_slides: int,
    classes: Sequence[str] = ("normal", "tumor"),
    width: int = 8192,
    height: int = 8192,
    mpp: float = 0.5,
    tile_size: int = 256,
    seed: int = 0,
    artefacts: bool = False,
    flavors: str | Sequence[str] = "mixed",
    jpeg_quality: int = 85,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> CohortManifest:
    """Write ``n_slides`` labelled slides, their ground truth, ``labels.csv`` and ``cohort.json``.

    ``classes`` are labels: ``normal`` (no lesions) or a lesion pattern name
    (``tumor``, ``necrosis``, ``gland``). Sizes in level-0 pixels, ``mpp`` in
    µm/px. ``flavors`` is ``mixed`` (alternate generic and aperio), one flavour,
    or a sequence to cycle. ``artefacts=True`` hands out pen marks, black edges
    and blur in turn. The same arguments give byte-identical files.
    ``progress(n)`` is called as tiles are written (see :func:`cohort_tile_count`).
    """
    check_slide_options(
        width=width, height=height, mpp=mpp, tile_size=tile_size, jpeg_quality=jpeg_quality
    )
    plans = plan_cohort(
        n_slides=n_slides, classes=classes, seed=seed, artefacts=artefacts, flavors=flavors
    )
    out_dir = Path(out_dir)
    try:
        (out_dir / "slides").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(
            f"cannot create the output folder: {error.strerror or error}", path=out_dir
        ) from error
    slides = []
    for plan in plans:
        truth = generate_slide(
            out_dir / "slides" / plan.file_name,
            width=width,
            height=height,
            mpp=mpp,
            tile_size=tile_size,
            flavor=plan.flavor,
            lesion_class=plan.label,
            seed=plan.seed,
            artefacts=plan.artefacts,
            jpeg_quality=jpeg_quality,
            workers=workers,
            progress=progress,
        )
        files = truth.save(out_dir / "truth", plan.slide_id, plan.label)
        slides.append(CohortSlide(plan, truth, files))
    parameters = {
        "n_slides": n_slides,
        "classes": list(classes),
        "width": width,
        "height": height,
        "mpp": mpp,
        "tile_size": tile_size,
        "seed": seed,
        "artefacts": artefacts,
        "flavors": flavors if isinstance(flavors, str) else list(flavors),
        "jpeg_quality": jpeg_quality,
    }
    labels_csv = out_dir / "labels.csv"
    labels_csv.write_text("slide_id,label\n" + "".join(f"{p.slide_id},{p.label}\n" for p in plans))
    cohort_json = out_dir / "cohort.json"
    cohort_json.write_text(json.dumps(_provenance(parameters, slides), indent=2) + "\n")
    return CohortManifest(out_dir, tuple(slides), labels_csv, cohort_json, parameters)


def _provenance(parameters: dict, slides: list[CohortSlide]) -> dict:
    """cohort.json content: generator, parameters and per-slide plan, with relative paths."""
    return {
        "generator": "wsi-engine synthetic",
        "version": __version__,
        "parameters": parameters,
        "slides": [
            {
                "slide_id": s.plan.slide_id,
                "label": s.plan.label,
                "flavor": s.plan.flavor,
                "artefacts": list(s.plan.artefacts),
                "seed": s.plan.seed,
                "slide": f"slides/{s.plan.file_name}",
                "truth": f"truth/{s.plan.slide_id}.json",
                "lesion_count": len(s.truth.lesions),
            }
            for s in slides
        ],
    }


def cohort_tile_count(*, n_slides: int, width: int, height: int, tile_size: int) -> int:
    """Tiles a cohort writes in total (all slides, all levels), for progress bars."""
    return n_slides * tile_count(width, height, tile_size)
