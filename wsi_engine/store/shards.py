"""Write one whole shard of the ``patches`` array in a single store operation (the tiling fast path).

zarr writes a shard by running its codec pipeline once per chunk, which here
costs about as much as JPEG-encoding the patch itself. When the array has the
layout :meth:`~wsi_engine.store.writer.StoreWriter.create_patches` makes for
``jpeg`` pixels, :func:`write_shard` encodes the chunks itself with
:func:`~wsi_engine.store.codecs.encode_jpeg` (the function the codec uses)
and assembles the shard in the Zarr v3 ``sharding_indexed`` format: the chunks
back to back in shard order, then the index, an array of shape
(chunks per shard..., 2) of little-endian uint64 (offset, length) pairs with
2^64-1 for absent chunks, then its CRC-32C, as zarr's ``bytes`` + ``crc32c``
index codecs write it. The tests check that the bytes equal zarr's own. Any
other layout (``lossless`` pixels, arrays made elsewhere) goes through zarr.
"""

from __future__ import annotations

import google_crc32c  # zarr's own dependency for its crc32c codec
import numpy as np
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, ShardingCodecIndexLocation
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from wsi_engine.store.codecs import JpegCodec, encode_jpeg

_ABSENT = np.iinfo(np.uint64).max
_INDEX_CODECS = (BytesCodec(endian="little"), Crc32cCodec())


def write_shard(array: zarr.Array, shard: int, patches: np.ndarray) -> None:
    """Write ``patches`` (n, S, S, 3) as shard ``shard`` of the (N, S, S, 3) sharded ``array``.

    ``n`` must be the shard's full length (``shards[0]``, less at the end of
    the array): shards are only ever written whole.
    """
    size = array.shards[0] if array.shards else array.chunks[0]
    start = shard * size
    expected = min(size, array.shape[0] - start)
    if len(patches) != expected or expected <= 0:
        raise ValueError(
            f"shard {shard} holds {expected} patches, got {len(patches)}: write shards whole"
        )
    quality = jpeg_layout_quality(array)
    if quality is None:
        array[start : start + len(patches)] = patches
        return
    write_jpeg_shard(array, shard, [encode_jpeg(patch, quality) for patch in patches])


def write_jpeg_shard(array: zarr.Array, shard: int, chunks: list[bytes]) -> None:
    """Write JPEG files ``chunks`` (one per patch, the shard's full length) as shard ``shard``
    of an array with the engine's JPEG layout (:func:`jpeg_layout_quality` is not ``None``)."""
    size = array.shards[0]
    expected = min(size, array.shape[0] - shard * size)
    if len(chunks) != expected or expected <= 0:
        raise ValueError(
            f"shard {shard} holds {expected} patches, got {len(chunks)}: write shards whole"
        )
    data = shard_bytes(chunks, size)
    key = array.metadata.encode_chunk_key((shard,) + (0,) * (array.ndim - 1))
    sync((array.store_path / key).set(default_buffer_prototype().buffer.from_bytes(data)))


def shard_bytes(chunks: list[bytes], chunks_per_shard: int) -> bytes:
    """A shard file of encoded ``chunks`` (the first ones of the shard), index at the end."""
    index = np.full((chunks_per_shard, 2), _ABSENT, dtype="<u8")
    lengths = np.array([len(chunk) for chunk in chunks], dtype="<u8")
    index[: len(chunks), 0] = np.cumsum(lengths) - lengths
    index[: len(chunks), 1] = lengths
    index_bytes = index.tobytes()
    checksum = google_crc32c.value(index_bytes).to_bytes(4, "little")
    return b"".join([*chunks, index_bytes, checksum])


def jpeg_layout_quality(array: zarr.Array) -> int | None:
    """The JPEG quality when ``array`` has the engine's JPEG patch layout, else ``None``."""
    codecs = array.metadata.codecs if array.metadata.zarr_format == 3 else ()
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None
    sharding = codecs[0]
    single_patch_chunks = sharding.chunk_shape == (1, *array.shape[1:])
    one_shard_across = tuple(array.shards[1:]) == tuple(array.shape[1:])
    if (
        sharding.index_location != ShardingCodecIndexLocation.end
        or tuple(sharding.index_codecs) != _INDEX_CODECS
        or len(sharding.codecs) != 1
        or not isinstance(sharding.codecs[0], JpegCodec)
        or not (single_patch_chunks and one_shard_across)
    ):
        return None
    return sharding.codecs[0].quality
