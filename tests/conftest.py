"""Fixtures shared by every test area: the real-slide folder and small synthetic cohorts."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_SLIDES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "slides"


@pytest.fixture(scope="session")
def shared_slides() -> Path:
    """``../shared/data/slides`` beside the checkout; the test is skipped when it is absent."""
    if not SHARED_SLIDES.is_dir():
        pytest.skip("real test slides not present (../shared/data/slides)")
    return SHARED_SLIDES
