"""Generate one synthetic whole-slide image and its ground truth."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from threadpoolctl import threadpool_limits

from wsi_engine.errors import ConfigError, OutputError
from wsi_engine.synthetic.lesions import NORMAL_LABEL, lesion_pattern
from wsi_engine.synthetic.render import design_slide
from wsi_engine.synthetic.truth import SlideTruth, compute_masks, default_mask_downsample
from wsi_engine.synthetic.writer import FLAVORS, LEVEL_DOWNSAMPLE, write_slide

MIN_SIDE = 256
MAX_SIDE = 1_000_000


def check_slide_options(
    *, width: int, height: int, mpp: float, tile_size: int, jpeg_quality: int
) -> None:
    """Raise :class:`~wsi_engine.errors.ConfigError` naming the first invalid option."""
    for name, value in (("width", width), ("height", height)):
        if not MIN_SIDE <= value <= MAX_SIDE:
            raise ConfigError(
                f"slide {name} {value} is out of range",
                hint=f"use --size WIDTHxHEIGHT (width=, height=) with sides from {MIN_SIDE} to {MAX_SIDE} px",
            )
    if not 0 < mpp <= 100:
        raise ConfigError(
            f"--mpp {mpp} is out of range", hint="give µm per pixel, e.g. 0.25 or 0.5"
        )
    if tile_size % 16 or not 64 <= tile_size <= 2048:
        raise ConfigError(
            f"--tile-size {tile_size} is invalid",
            hint="use a multiple of 16 between 64 and 2048, e.g. 256",
        )
    if not 1 <= jpeg_quality <= 100:
        raise ConfigError(
            f"--jpeg-quality {jpeg_quality} is out of range", hint="use 1 to 100, e.g. 85"
        )


def _check_flavor(flavor: str) -> None:
    """Raise :class:`~wsi_engine.errors.ConfigError` unless ``flavor`` is a known TIFF flavour."""
    if flavor not in FLAVORS:
        raise ConfigError(
            f"unknown slide flavour {flavor!r}", hint=f"use --flavor {' or '.join(FLAVORS)}"
        )


def generate_slide(
    path: str | Path,
    *,
    width: int,
    height: int,
    mpp: float = 0.5,
    tile_size: int = 256,
    flavor: str = "generic",
    lesion_class: str | None = None,
    seed: int = 0,
    artefacts: Sequence[str] = (),
    jpeg_quality: int = 85,
    mask_downsample: int | None = None,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> SlideTruth:
    """Write a pyramidal JPEG TIFF slide to ``path`` and return its ground truth.

    ``width``/``height`` in level-0 pixels, ``mpp`` in µm per level-0 pixel;
    levels are 4× apart (at least 3). ``flavor`` is ``generic`` or ``aperio``
    (SVS-style; name the file ``.svs``). ``lesion_class`` plants that class's
    lesions (None or ``normal``: none). ``artefacts`` is any of ``pen``,
    ``black_edge``, ``blur``. ``mask_downsample`` (level-0 px per mask pixel)
    defaults to 16, more for very large slides. The same arguments give a
    byte-identical file. ``workers`` threads render tiles; ``progress(n)`` is
    called as tiles are written.
    """
    check_slide_options(
        width=width, height=height, mpp=mpp, tile_size=tile_size, jpeg_quality=jpeg_quality
    )
    _check_flavor(flavor)
    if workers < 1:
        raise ConfigError(f"--workers {workers} is invalid", hint="use 1 or more threads")
    pattern = lesion_pattern(lesion_class) if lesion_class not in (None, NORMAL_LABEL) else None
    downsample = (
        default_mask_downsample(width, height) if mask_downsample is None else mask_downsample
    )
    if downsample < 1:
        raise ConfigError(
            f"mask_downsample {downsample} is invalid", hint="use a positive integer, e.g. 16"
        )
    path = Path(path)
    with threadpool_limits(limits=1, user_api="blas"):
        model = design_slide(
            width=width,
            height=height,
            mpp=mpp,
            tile_size=tile_size,
            seed=seed,
            pattern=pattern,
            artefacts=tuple(artefacts),
        )
        try:
            dims = write_slide(
                path,
                model,
                flavor=flavor,
                jpeg_quality=jpeg_quality,
                workers=workers,
                progress=progress,
            )
        except OSError as error:
            raise OutputError(
                f"cannot write slide: {error.strerror or error}", path=path
            ) from error
        tissue, lesion = compute_masks(model, downsample)
    return SlideTruth(
        path=path,
        width=width,
        height=height,
        mpp=mpp,
        flavor=flavor,
        tile_size=tile_size,
        level_dimensions=dims,
        level_downsamples=tuple(float(LEVEL_DOWNSAMPLE**k) for k in range(len(dims))),
        seed=seed,
        jpeg_quality=jpeg_quality,
        pattern=pattern,
        lesions=model.lesions,
        artefacts=model.artefacts,
        mask_downsample=downsample,
        tissue_mask=tissue,
        lesion_mask=lesion,
    )
