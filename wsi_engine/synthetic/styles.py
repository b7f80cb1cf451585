"""The shipped tissue styles: normal tissue and the planted lesion classes, read from YAML.

The styles are data (``configs/synthetic/tissue_styles.yaml`` inside the
package, found through :mod:`importlib.resources`), validated into the frozen
:class:`~wsi_engine.synthetic.texture.TissueStyle` specs. They are not taken
from ``$WSI_ENGINE_CONFIGS``: the same generator arguments always give the
same slide.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic.dataclasses import dataclass as validated_dataclass

from wsi_engine.config.loader import StrictModel, read_yaml, validate
from wsi_engine.synthetic.texture import TissueStyle

STYLES_FILE = Path(
    str(resources.files("wsi_engine") / "configs" / "synthetic" / "tissue_styles.yaml")
)
"""The shipped style book (package data)."""


@validated_dataclass(frozen=True)
class LesionPattern:
    """What a lesion class looks like and how QuPath shows its annotations."""

    name: str
    color: tuple[int, int, int]
    """QuPath display colour (RGB 0-255) of the classification."""
    style: TissueStyle


class StyleBook(StrictModel):
    """Contents of the style file: the normal tissue and the lesion classes in order."""

    normal: TissueStyle
    lesions: tuple[LesionPattern, ...]


def load_styles(path: Path = STYLES_FILE) -> StyleBook:
    """Read and validate a style book; :class:`~wsi_engine.errors.ConfigError` names a bad key."""
    return validate(StyleBook, read_yaml(path), path)


_BOOK = load_styles()

NORMAL_STYLE: TissueStyle = _BOOK.normal
"""Normal tissue: pink fibrous stroma with sparse spindle and small round nuclei."""

PATTERNS: dict[str, LesionPattern] = {pattern.name: pattern for pattern in _BOOK.lesions}
"""Lesion patterns by class label: dense dark-violet tumour, red-orange necrosis, pale gland rings."""
