"""``wsi-engine verify``: every problem of a complete store (missing or corrupt chunks, unsealed arrays)."""

from __future__ import annotations

from pathlib import Path

from wsi_engine.store import layout
from wsi_engine.store.integrity import ArrayGuard, Problem, sealed_arrays
from wsi_engine.store.patch_store import PatchStore


def verify_store(path: Path) -> list[Problem]:
    """Every problem of the complete store at ``path``: missing and corrupt chunks, unsealed arrays."""
    store = PatchStore.open(path)
    problems: list[Problem] = []
    for array in sealed_arrays(store.root):
        meta = array.attrs.get(layout.ATTRS_KEY, {}) or {}
        if array.path.startswith(f"{layout.FEATURES}/") and not meta.get("complete", False):
            continue  # an embed in progress or killed: not in use, `embed` resumes it
        guard = ArrayGuard(store.path, store.attrs, array)
        if guard.chunks is None:
            problems.append(
                guard.problem("", "unsealed (no integrity record: written by an older engine)")
            )
            continue
        problems.extend(guard.missing())
        problems.extend(guard.corrupt())
    return problems
