"""Cohorts: layout, labels, reproducibility, class/flavour/artefact mix, and the ``synth`` CLI."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest

from wsi_engine.cli import main
from wsi_engine.errors import ConfigError
from wsi_engine.synthetic import generate_cohort, plan_cohort

COHORT = {"n_slides": 4, "width": 1024, "height": 1024, "artefacts": True, "flavors": "mixed"}


def _digests(root):
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return generate_cohort(tmp_path_factory.mktemp("cohort_a"), seed=5, **COHORT)


def test_cohort_layout_labels_and_provenance(cohort):
    root = cohort.out_dir
    with open(root / "labels.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["slide_id", "label"],
        ["slide_000", "normal"],
        ["slide_001", "tumor"],
        ["slide_002", "normal"],
        ["slide_003", "tumor"],
    ]
    for slide in cohort.slides:
        suffix = ".svs" if slide.plan.flavor == "aperio" else ".tiff"
        assert (root / "slides" / f"{slide.plan.slide_id}{suffix}").is_file()
        for name in ("lesions.geojson", "lesions.png", "tissue.png", "json"):
            assert (root / "truth" / f"{slide.plan.slide_id}.{name}").is_file()
        summary = json.loads((root / "truth" / f"{slide.plan.slide_id}.json").read_text())
        assert summary["label"] == slide.plan.label
        assert summary["flavor"] == slide.plan.flavor
        assert summary["mpp"] == 0.5 and summary["width"] == 1024
        assert (summary["lesion_count"] > 0) == (slide.plan.label == "tumor")
    provenance = json.loads((root / "cohort.json").read_text())
    assert provenance["parameters"]["seed"] == 5
    assert provenance["parameters"]["classes"] == ["normal", "tumor"]
    assert [s["slide"] for s in provenance["slides"]] == [
        f"slides/{s.plan.file_name}" for s in cohort.slides
    ]


def test_same_seed_gives_byte_identical_cohort_and_another_seed_differs(cohort, tmp_path):
    again = generate_cohort(tmp_path / "again", seed=5, **COHORT)
    first, second = _digests(cohort.out_dir), _digests(again.out_dir)
    assert first == second
    assert len(first) == 4 * 5 + 2  # slide + 4 truth files each, labels.csv, cohort.json
    other = generate_cohort(tmp_path / "other", seed=6, **{**COHORT, "n_slides": 2})
    assert _digests(other.out_dir)["slides/slide_000.tiff"] != first["slides/slide_000.tiff"]


def test_plans_balance_classes_and_mix_flavours_and_artefacts():
    plans = plan_cohort(
        n_slides=12,
        classes=["normal", "tumor", "necrosis"],
        seed=0,
        artefacts=True,
        flavors="mixed",
    )
    assert [p.slide_id for p in plans[:2]] == ["slide_000", "slide_001"]
    for label in ("normal", "tumor", "necrosis"):
        mine = [p for p in plans if p.label == label]
        assert len(mine) == 4
        assert {p.flavor for p in mine} == {"generic", "aperio"}
        assert len({p.artefacts for p in mine}) == 4
    assert len({p.seed for p in plans}) == 12
    plain = plan_cohort(
        n_slides=4, classes=["normal", "tumor"], seed=0, artefacts=False, flavors="aperio"
    )
    assert all(p.artefacts == () and p.flavor == "aperio" for p in plain)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"n_slides": 0}, "--n-slides"),
        ({"n_slides": 1}, "fewer than the 2 classes"),
        ({"classes": ["normal", "cancer"]}, "cancer"),
        ({"classes": ["tumor", "tumor"]}, "--classes"),
        ({"flavors": "hamamatsu"}, "--flavor"),
    ],
)
def test_bad_cohort_options_raise_config_errors(options, words):
    arguments = {
        "n_slides": 4,
        "classes": ["normal", "tumor"],
        "seed": 0,
        "artefacts": False,
        "flavors": "mixed",
    }
    with pytest.raises(ConfigError, match=words):
        plan_cohort(**{**arguments, **options})


def test_cli_writes_a_cohort(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "synth",
            str(out),
            "--n-slides",
            "3",
            "--classes",
            "normal,tumor,gland",
            "--size",
            "1024x768",
            "--seed",
            "1",
            "--flavor",
            "generic",
        ]
    )
    assert code == 0
    assert (out / "labels.csv").read_text().splitlines() == [
        "slide_id,label",
        "slide_000,normal",
        "slide_001,tumor",
        "slide_002,gland",
    ]
    assert sorted(p.name for p in (out / "slides").iterdir()) == [
        f"slide_00{i}.tiff" for i in range(3)
    ]
    printed = capsys.readouterr().out
    assert "slide_002" in printed and "gland" in printed


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--size", "10x"], "--size"),
        (["--size", "100x100"], "--size"),
        (["--n-slides", "0"], "--n-slides"),
        (["--flavor", "leica"], "--flavor"),
        (["--n-slides", "1", "--classes", "normal,tumor"], "--n-slides"),
        (["--classes", "normal,,tumor"], "--classes"),
    ],
)
def test_cli_rejects_bad_arguments_with_one_line(tmp_path, capsys, arguments, words):
    out = tmp_path / "bad"
    assert main(["synth", str(out), *arguments]) == 3
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1
    assert message.startswith("error:") and words in message
    assert not (out / "labels.csv").exists()
