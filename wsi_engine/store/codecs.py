"""Codecs of the ``patches`` array, one per pixel mode (docs/store.md).

* ``jpeg``: :class:`JpegCodec`, a Zarr v3 array-to-bytes codec named
  ``wsi_engine.jpeg`` that stores each chunk (one RGB patch) as a baseline
  JPEG image (:func:`encode_jpeg`: libjpeg-turbo via ``imagecodecs``, 4:2:0
  chroma subsampling, standard Huffman tables: optimised tables would save
  about 7 % of the bytes for twice the encoding time). Lossy; ``quality`` 1-100.
* ``lossless``: the standard ``bytes`` serializer + Blosc/zstd (any Zarr v3
  reader decodes it).
* ``none``: no ``patches`` array at all.

The JPEG codec is not part of the Zarr v3 specification. It is registered
with zarr's codec registry when this module is imported, which
``import wsi_engine.store`` does, so any process that reads stores through
:class:`~wsi_engine.store.PatchStore` (or imports ``wsi_engine.store`` before
``zarr.open``) decodes it. Encoding is deterministic: the same pixels and
quality always give the same bytes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import imagecodecs
import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.codecs import BloscCodec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.core.common import JSON, parse_named_configuration
from zarr.registry import register_codec

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.chunk_grids import ChunkGrid
    from zarr.core.dtype.wrapper import TBaseDType, TBaseScalar, ZDType

JPEG_CODEC_NAME = "wsi_engine.jpeg"


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """One (H, W, 3) or (H, W, 1) uint8 image as baseline JPEG bytes (4:2:0 for RGB), deterministic."""
    image = np.ascontiguousarray(image)
    if image.shape[-1] == 1:
        image = image[..., 0]
    return imagecodecs.jpeg8_encode(image, level=quality, subsampling="420")


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """Encode a uint8 chunk of shape (1, ..., H, W, C), C in {1, 3}, as one JPEG image.

    ``quality`` is the libjpeg quality factor (1-100); see :func:`encode_jpeg`.
    """

    is_fixed_size = False

    quality: int

    def __init__(self, *, quality: int = 90) -> None:
        if not isinstance(quality, int) or not 1 <= quality <= 100:
            raise ValueError(f"JPEG quality must be an integer in 1..100, got {quality!r}")
        object.__setattr__(self, "quality", quality)

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, configuration = parse_named_configuration(
            data, JPEG_CODEC_NAME, require_configuration=False
        )
        return cls(**(configuration or {}))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, JSON]:
        return {"name": JPEG_CODEC_NAME, "configuration": {"quality": self.quality}}

    def validate(
        self,
        *,
        shape: tuple[int, ...],
        dtype: ZDType[TBaseDType, TBaseScalar],
        chunk_grid: ChunkGrid,
    ) -> None:
        if dtype.to_native_dtype() != np.dtype("uint8"):
            raise ValueError(f"the JPEG codec needs uint8 data, got {dtype.to_native_dtype()}")
        if len(shape) < 3 or shape[-1] not in (1, 3):
            raise ValueError(f"the JPEG codec needs (..., H, W, 1 or 3) arrays, got shape {shape}")

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        image = np.asarray(chunk_array.as_numpy_array())
        if int(np.prod(image.shape[:-3], dtype=np.int64)) != 1:
            raise ValueError(
                f"the JPEG codec stores one image per chunk, got chunk shape {image.shape}"
            )
        encoded = encode_jpeg(image.reshape(image.shape[-3:]), self.quality)
        return chunk_spec.prototype.buffer.from_bytes(encoded)

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        image = imagecodecs.jpeg8_decode(chunk_bytes.to_bytes())
        return chunk_spec.prototype.nd_buffer.from_numpy_array(image.reshape(chunk_spec.shape))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("JPEG output size depends on the image")


register_codec(JPEG_CODEC_NAME, JpegCodec)


def patch_array_options(pixel_mode: str, jpeg_quality: int) -> dict[str, Any]:
    """Keyword arguments of ``zarr.create_array`` for the ``patches`` array of ``pixel_mode``.

    ``none`` has no patch array and raises ``ValueError``.
    """
    if pixel_mode == "jpeg":
        return {"serializer": JpegCodec(quality=jpeg_quality), "compressors": None}
    if pixel_mode == "lossless":
        return {"compressors": [BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")]}
    raise ValueError(f"pixel mode {pixel_mode!r} has no patch array")
