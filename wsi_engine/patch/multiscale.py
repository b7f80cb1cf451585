"""The same location at two resolutions: match the patches of two stores of one slide.

Patch i of the first store (top-left ``coords_a[i]``, side ``size_a`` level-0
px) is paired with the patch of the second store whose square contains the
centre of patch i; when several do (overlapping tiling) the one with the
nearest centre wins. Patches whose centre no second-store patch covers get −1.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from wsi_engine.store import PatchStore


def match_locations(
    coords_a: np.ndarray, size_a: float, coords_b: np.ndarray, size_b: float
) -> np.ndarray:
    """(N_a,) int64 index of the second-store patch covering each first-store patch centre, or −1."""
    if not len(coords_a) or not len(coords_b):
        return np.full(len(coords_a), -1, dtype=np.int64)
    centres_a = np.asarray(coords_a, dtype=np.float64) + size_a / 2
    centres_b = np.asarray(coords_b, dtype=np.float64) + size_b / 2
    distance, nearest = cKDTree(centres_b).query(centres_a, p=np.inf)
    return np.where(distance <= size_b / 2, nearest, -1).astype(np.int64)


def view_mismatch(first: PatchStore, second: PatchStore) -> str | None:
    """Why ``second`` cannot give a second view of ``first`` (another slide, same µm/px), or None."""
    if first.sections.slide.fingerprint != second.sections.slide.fingerprint:
        return "the second store is of another slide (fingerprints differ)"
    if np.isclose(first.target_mpp, second.target_mpp, rtol=0.01):
        return (
            f"both stores are at {first.target_mpp:g} µm/px; a second view needs another resolution"
        )
    return None


def second_views(first: PatchStore, second: PatchStore, features_b: np.ndarray) -> np.ndarray:
    """(N_a, D) float32 features of the matched second-store patches, NaN rows where none matches."""
    index = match_locations(
        first.coords(), first.patch_size_level0, second.coords(), second.patch_size_level0
    )
    views = np.full((len(index), features_b.shape[1]), np.nan, dtype=np.float32)
    views[index >= 0] = features_b[index[index >= 0]]
    return views
