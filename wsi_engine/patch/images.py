"""Labelled patch folders (BreakHis / Chaoyang style): ``DIR/<class>/<image>`` → frozen features.

Every sub-folder of ``DIR`` is a class (hidden ones are ignored); its image
files (:data:`IMAGE_SUFFIXES`, searched recursively) are that class's
examples. With a task, folder names must be task class names and the class
order is the task's; without one it is the sorted folder names. Files that
cannot be decoded, and files of other types, are skipped and reported; a
folder with fewer than two classes holding readable images is a DataError.

Encoding uses the encoder's own image path (:class:`~wsi_engine.encoders.encoder.ImageEmbedder`,
as ``embed`` does): a non-square image is first centre-cropped to its
largest square (what open_clip's resize-shortest-side + centre crop amounts
to), then the encoder resizes and normalises it. Images of the same crop
size are batched together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from wsi_engine.errors import DataError
from wsi_engine.patch.dataset import PatchSet
from wsi_engine.patch.evidence import Skipped

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


@dataclass
class ImageFolder:
    """Image files and class indices of a labelled folder; ``skipped`` files of other types."""

    root: Path
    class_names: list[str]
    paths: list[Path]
    targets: list[int]
    skipped: list[Skipped] = field(default_factory=list)


def scan_image_folder(root: str | Path, class_names: list[str] | None = None) -> ImageFolder:
    """Find the class folders and their image files (module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            "no image folder here", path=root, hint="give a folder with one sub-folder per class"
        )
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if class_names is None:
        class_names = [p.name for p in folders]
    unknown = [p.name for p in folders if p.name not in class_names]
    if unknown:
        raise DataError(
            f"class folder(s) not in the task: {', '.join(unknown)}",
            path=root,
            hint=f"task classes: {', '.join(class_names)}; rename the folders or use another --task",
        )
    found = ImageFolder(root, list(class_names), [], [])
    for folder in folders:
        for path in sorted(
            p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
        ):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                found.paths.append(path)
                found.targets.append(class_names.index(folder.name))
            else:
                found.skipped.append(
                    Skipped(str(path), f"not an image file type ({', '.join(IMAGE_SUFFIXES)})")
                )
    _require_two_classes(sorted({class_names[t] for t in found.targets}), root)
    return found


def _require_two_classes(present: list[str], root: Path) -> None:
    if len(present) < 2:
        raise DataError(
            f"the image folder holds images of {len(present)} class(es) ({', '.join(present) or 'none'})",
            path=root,
            hint="a classifier needs images of at least two classes, one sub-folder per class",
        )


def read_square(path: Path) -> np.ndarray:
    """(S, S, 3) uint8 RGB centre square of an image file; raises OSError/ValueError when unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except Image.DecompressionBombError as error:
        raise ValueError(str(error)) from error
    side = min(rgb.size)
    if side < 1:
        raise ValueError("empty image")
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    return np.asarray(rgb.crop((left, top, left + side, top + side)))


def encode_folder(
    folder: ImageFolder,
    embed: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 64,
) -> tuple[PatchSet, list[Skipped]]:
    """(one-patch-per-image PatchSet, unreadable images). ``embed`` maps (B, S, S, 3) uint8 → (B, D)."""
    buckets: dict[int, list[tuple[int, np.ndarray]]] = {}
    features: dict[int, np.ndarray] = {}
    skipped: list[Skipped] = []

    def flush(side: int) -> None:
        items = buckets.pop(side)
        out = (
            embed(torch.from_numpy(np.stack([square for _, square in items]))).float().cpu().numpy()
        )
        features.update({index: row for (index, _), row in zip(items, out, strict=True)})

    for index, path in enumerate(folder.paths):
        try:
            square = read_square(path)
        except (OSError, ValueError, SyntaxError) as error:  # PIL raises all three for broken files
            skipped.append(
                Skipped(str(path), f"unreadable image ({type(error).__name__}: {error})")
            )
            continue
        buckets.setdefault(square.shape[0], []).append((index, square))
        if len(buckets[square.shape[0]]) >= batch_size:
            flush(square.shape[0])
    for side in list(buckets):
        flush(side)
    kept = sorted(features)
    targets = np.array([folder.targets[i] for i in kept], dtype=np.int64)
    _require_two_classes(sorted({folder.class_names[t] for t in targets}), folder.root)
    patches = PatchSet(
        np.stack([features[i] for i in kept]).astype(np.float32),
        targets,
        None,
        np.arange(len(kept), dtype=np.int64),
        [str(folder.paths[i]) for i in kept],
        targets.copy(),
    )
    return patches, skipped


def encoder_embedder(encoder, device: str = "auto") -> Callable[[torch.Tensor], torch.Tensor]:
    """``embed`` for :func:`encode_folder`: the encoder's image path on ``device``, inference mode, autocast."""
    from wsi_engine.encoders import autocast, resolve_device, resolve_precision

    target = resolve_device(device)
    encoder.to(target)
    precision = resolve_precision("auto", target)

    @torch.inference_mode()
    def embed(pixels: torch.Tensor) -> torch.Tensor:
        with autocast(target, precision):
            return encoder.image(pixels.to(target))

    return embed
