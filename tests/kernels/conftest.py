"""Fixtures for the kernel tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test, so every test sees the same problems on every run."""
    return np.random.default_rng(20240605)
