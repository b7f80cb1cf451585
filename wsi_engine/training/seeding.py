"""Reproducible training: seeded torch, deterministic algorithms, a fixed CPU thread count."""

from __future__ import annotations

import numpy as np
import torch

from wsi_engine.errors import ConfigError


def set_threads(threads: int | None) -> None:
    """Use ``threads`` intra-op CPU threads in torch (``None``: leave torch's default)."""
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"--threads {threads} must be at least 1")
    torch.set_num_threads(threads)


def seed_everything(*keys: int) -> int:
    """Seed torch from ``keys`` (e.g. seed, shots, fold); returns the derived seed."""
    derived = int(np.random.SeedSequence(list(keys)).generate_state(1)[0])
    torch.manual_seed(derived)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return derived
