"""Slide ids: the name of a slide file reduced to a safe, stable id (also used for encoder and run ids).

A store is named after its slide id (:func:`wsi_engine.store.store_path`);
the store package builds on this module, never the reverse.
"""

from __future__ import annotations

import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_name(name: str) -> str:
    """Return ``name`` reduced to ``[A-Za-z0-9._-]`` (used for slide, encoder and run ids).

    Leading dots are removed so a name can never be ``..`` or a hidden or
    temporary entry; an empty result raises ``ValueError``.
    """
    cleaned = _UNSAFE.sub("_", name).lstrip(".")
    if not cleaned:
        raise ValueError(f"name {name!r} has no usable characters")
    return cleaned


COMPOUND_SUFFIXES = (".ome",)
"""Inner suffixes that belong to the extension (``x.ome.tiff`` → ``x``)."""


def slide_id_from_path(path: str | Path) -> str:
    """Slide id of a slide file: its name without its extension (``.svs``; ``.ome.tiff``), sanitised.

    Only the extension goes: ``a..b.tiff`` is ``a..b`` and
    ``TCGA-…-DX1.<uuid>.svs`` keeps its UUID.
    """
    name = Path(path).name
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or " " in suffix:  # no extension (or a dot file)
        stem = name
    for inner in COMPOUND_SUFFIXES:
        if stem.lower().endswith(inner) and len(stem) > len(inner):
            stem = stem[: -len(inner)]
    return sanitize_name(stem)
