"""Level-0 µm/px of a slide: from the user, a per-slide table, metadata, or the objective power.

Resolution order (the first that gives a value wins; never a silent default):

1. ``option``: ``--mpp X`` (or ``open_slide(mpp=...)``), any positive value;
2. ``table``: ``--mpp-table CSV`` keyed by slide id (:func:`load_mpp_table`);
3. metadata, first plausible of: the backend's normalised ``openslide.mpp-x/-y``
   or ``tiffslide.mpp-x/-y``, Aperio ``aperio.MPP``, TIFF ``XResolution`` /
   ``YResolution`` with ``ResolutionUnit`` centimeter (1e4 / res) or inch
   (25400 / res); unit "none" is ignored;
4. ``objective-power``: 10 / magnification (40x → 0.25, 20x → 0.5 µm/px), a rule
   of thumb that varies by scanner, so it is reported as a problem;
5. otherwise: no µm/px, and opening the slide fails with a message saying how to
   supply it.

Metadata and objective-power values must give 0.05–20 µm/px
(:data:`PLAUSIBLE_MPP`); others are ignored and noted: TIFF writers put 72 dpi
(352.8 µm/px) or 1 px per unit in files that have no real resolution.
"""

from __future__ import annotations

import csv
import io
import math
import numbers
from collections.abc import Mapping
from pathlib import Path

from wsi_engine.errors import ConfigError, SlideError
from wsi_engine.slide.discovery import SLIDE_EXTENSIONS
from wsi_engine.slide.ids import sanitize_name, slide_id_from_path
from wsi_engine.slide.reader import Mpp

PLAUSIBLE_MPP = (0.05, 20.0)
"""Accepted range of µm/px read from metadata or derived from the objective power."""

OBJECTIVE_POWER_RULE_UM = 10.0
"""µm/px at 1x magnification: mpp = 10 / magnification."""

_MPP_KEY_PAIRS = (
    ("openslide.mpp-x", "openslide.mpp-y"),
    ("tiffslide.mpp-x", "tiffslide.mpp-y"),
    ("aperio.MPP", "aperio.MPP"),
)
_UM_PER_RESOLUTION_UNIT = {"centimeter": 1e4, "inch": 25400.0}

MPP_HINT = "pass --mpp X (µm/px of level 0) or --mpp-table CSV with columns slide_id,mpp"


def user_mpp(value: float | tuple[float, float], source: str) -> Mpp:
    """An :class:`Mpp` from a user value (one number or (x, y)); must be positive and finite."""
    pair = (value, value) if isinstance(value, numbers.Real) else tuple(value)
    if len(pair) != 2 or not all(
        isinstance(v, numbers.Real) and math.isfinite(v) and v > 0 for v in pair
    ):
        raise ConfigError(
            f"µm/px must be a positive number or (x, y) pair, got {value!r}", hint=MPP_HINT
        )
    return Mpp(float(pair[0]), float(pair[1]), source)


def resolve_mpp(
    path: Path,
    properties: Mapping[str, str],
    objective_power: float | None,
    *,
    option: float | tuple[float, float] | None = None,
    table: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[Mpp | None, tuple[str, ...]]:
    """Level-0 µm/px of the slide at ``path`` by the module's resolution order, and notes.

    Returns ``(None, notes)`` when nothing gives a value; notes describe ignored
    implausible metadata, the use of the objective-power rule, and a user value
    that differs from plausible metadata by more than 1%.
    """
    found, notes = metadata_mpp(properties)
    slide_id = slide_id_from_path(path)
    if option is not None or (table is not None and slide_id in table):
        user = (
            user_mpp(option, "option") if option is not None else user_mpp(table[slide_id], "table")
        )
        if found is None or math.isclose(user.x, found.x, rel_tol=0.01):
            return user, ()
        return user, (f"µm/px {user.x:g} ({user.source}) overrides {found.x:g} ({found.source})",)
    if found is not None:
        return found, notes
    if objective_power is not None:
        value = OBJECTIVE_POWER_RULE_UM / objective_power
        if _plausible(value):
            note = (
                f"µm/px from objective power ({objective_power:g}x → {value:g} µm/px by the "
                f"10/magnification rule; scanners differ): check it, or {MPP_HINT}"
            )
            return Mpp(value, value, "objective-power"), (*notes, note)
        notes = (*notes, f"ignored implausible objective power {objective_power:g}x")
    return None, notes


def metadata_mpp(properties: Mapping[str, str]) -> tuple[Mpp | None, tuple[str, ...]]:
    """First plausible µm/px in slide ``properties``, and a note listing implausible ones ignored."""
    rejected: list[str] = []
    for key_x, key_y, (x, y) in _metadata_candidates(properties):
        if _plausible(x) and _plausible(y):
            return Mpp(x, y, f"metadata:{key_x}"), _rejected_note(rejected)
        rejected.append(f"{key_x}={x:g}" if x == y else f"{key_x}={x:g} {key_y}={y:g}")
    return None, _rejected_note(rejected)


def missing_mpp_error(path: Path, notes: tuple[str, ...]) -> SlideError:
    """The error raised when a slide has no usable µm/px."""
    detail = f" ({'; '.join(notes)})" if notes else ""
    return SlideError(
        f"no µm/px in the slide's metadata and no objective power{detail}", path=path, hint=MPP_HINT
    )


def load_mpp_table(csv_path: str | Path) -> dict[str, tuple[float, float]]:
    """Read a µm/px table: columns ``slide_id,mpp`` or ``slide_id,mpp_x,mpp_y``.

    ``slide_id`` may be the slide id or the slide's file name (both map to
    :func:`~wsi_engine.slide.ids.slide_id_from_path`). Returns ``{slide_id: (x, y)}``
    in µm/px; any problem raises :class:`ConfigError` naming the file and line.
    """
    path = Path(csv_path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the µm/px table: {error}", path=path) from error
    rows = csv.DictReader(io.StringIO(text))
    columns = [name.strip() for name in rows.fieldnames or []]
    rows.fieldnames = columns
    if "slide_id" not in columns or not ("mpp" in columns or {"mpp_x", "mpp_y"} <= set(columns)):
        raise ConfigError(
            f"line 1: header {','.join(columns) or '(empty)'} lacks the needed columns",
            path=path,
            hint="expected slide_id,mpp or slide_id,mpp_x,mpp_y",
        )
    table: dict[str, tuple[float, float]] = {}
    first_line: dict[str, int] = {}
    for row in rows:
        line = rows.line_num
        try:
            name = (row["slide_id"] or "").strip()
            is_file = Path(name).suffix.lower() in SLIDE_EXTENSIONS  # a file name, else an id
            slide_id = slide_id_from_path(name) if is_file else sanitize_name(name)
            cells = (row["mpp"], row["mpp"]) if "mpp" in columns else (row["mpp_x"], row["mpp_y"])
            mpp = user_mpp(tuple(float(cell) for cell in cells), "table")
        except (ValueError, TypeError, ConfigError) as error:
            raise ConfigError(f"line {line}: {_row_problem(error)}", path=path) from error
        if slide_id in table:
            raise ConfigError(
                f"line {line}: slide id {slide_id!r} already given on line {first_line[slide_id]}",
                path=path,
            )
        table[slide_id] = (mpp.x, mpp.y)
        first_line[slide_id] = line
    return table


def _metadata_candidates(properties: Mapping[str, str]):
    """(key_x, key_y, (x, y) µm/px) for each µm/px-like pair of properties, in priority order."""
    for key_x, key_y in _MPP_KEY_PAIRS:
        values = _floats(properties.get(key_x), properties.get(key_y))
        if values is not None:
            yield key_x, key_y, values
    factor = _UM_PER_RESOLUTION_UNIT.get(properties.get("tiff.ResolutionUnit", "").lower())
    resolution = _floats(properties.get("tiff.XResolution"), properties.get("tiff.YResolution"))
    if factor is not None and resolution is not None and min(resolution) > 0:
        yield (
            "tiff.XResolution",
            "tiff.YResolution",
            (factor / resolution[0], factor / resolution[1]),
        )


def _floats(x: str | None, y: str | None) -> tuple[float, float] | None:
    try:
        return (float(x), float(y)) if x is not None and y is not None else None
    except ValueError:
        return None


def _plausible(value: float) -> bool:
    return PLAUSIBLE_MPP[0] <= value <= PLAUSIBLE_MPP[1]


def _rejected_note(rejected: list[str]) -> tuple[str, ...]:
    if not rejected:
        return ()
    low, high = PLAUSIBLE_MPP
    return (
        f"ignored implausible µm/px in metadata: {', '.join(rejected)} (accepted {low:g}–{high:g})",
    )


def _row_problem(error: Exception) -> str:
    if isinstance(error, ConfigError):
        return error.message
    if isinstance(error, TypeError):
        return "missing cells"
    return f"not a number or empty slide id ({error})"
