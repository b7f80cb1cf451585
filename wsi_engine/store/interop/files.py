"""Feature files as CLAM and TRIDENT lay them out: found, chosen per slide and read safely.

Layouts (from the tools' documentation; no code of theirs is used):

* CLAM: ``<feat_dir>/h5_files/<id>.h5`` holds ``features`` (N, D) float32 and
  ``coords`` (N, 2) int32 level-0 x, y **without attributes**;
  ``<feat_dir>/pt_files/<id>.pt`` a torch tensor (N, D). The patching run's
  ``<save_dir>/patches/<id>.h5`` holds ``coords`` with ``patch_size``,
  ``patch_level``, ``downsample``, ``level_dim``.
* TRIDENT: ``<job>/<mag>x_<ps>px_<ov>px_overlap/patches/<id>_patches.h5``
  (``coords`` int64 with ``patch_size``, ``patch_size_level0``,
  ``level0_magnification``, ``target_magnification``, ``overlap``,
  ``level0_width``, ``level0_height``) and ``.../features_<encoder>/<id>.h5``
  (``features``, ``coords`` with the same attributes; ``features`` attributes
  ``encoder``, ``name``) or ``<id>.pt``: a pickled numpy array, read with
  torch's weights-only unpickler allowing numpy arrays and nothing else.

Coordinates and patch attributes of a file are completed from its companion
coordinate files (``--coords`` folders, then ``../patches``, ``../../patches``
and, for ``.pt`` files, ``../h5_files``) whose coordinates are identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsi_engine.errors import DataError
from wsi_engine.slide.ids import sanitize_name, slide_id_from_path

H5_SUFFIXES = (".h5", ".hdf5")
PT_SUFFIXES = (".pt", ".pth")
TRIDENT_FEATURES_PREFIX = "features_"
SKIPPED_FOLDER_PREFIXES = ("slide_features",)  # TRIDENT slide embeddings: one vector per slide


@dataclass(frozen=True)
class FeatureFile:
    """A candidate feature file of one slide; ``encoder`` is its ``encoder`` attribute, else TRIDENT's folder name."""

    path: Path
    slide_id: str
    encoder: str | None
    encoder_source: str  # "attribute", "folder" or "unknown"

    @property
    def is_h5(self) -> bool:
        return self.path.suffix.lower() in H5_SUFFIXES

    def describe(self) -> str:
        return f"{self.encoder or 'unknown encoder'} ({self.path})"


@dataclass
class ForeignFeatures:
    """Feature rows (N, D) and coords (N, 2) int64 level-0 x, y with the attributes found for them."""

    features: FeatureRows
    coords: np.ndarray
    attrs: dict[str, Any]
    coordinate_files: list[Path] = field(default_factory=list)
    ignored_files: list[Path] = field(default_factory=list)  # companions with other coordinates


def discover(paths: list[str | Path]) -> dict[str, list[FeatureFile]]:
    """Slide id → candidate feature files under ``paths`` (files, or folders searched recursively)."""
    found: dict[str, list[FeatureFile]] = {}
    for path in map(Path, paths):
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            feature_file = candidate(file)
            if feature_file is not None:
                found.setdefault(feature_file.slide_id, []).append(feature_file)
    return dict(sorted(found.items()))


def candidate(file: Path) -> FeatureFile | None:
    """``file`` as a feature file (``None``: not one, e.g. a coordinates-only HDF5 or a slide embedding)."""
    suffix = file.suffix.lower()
    if suffix not in H5_SUFFIXES + PT_SUFFIXES:
        return None
    if any(part.startswith(SKIPPED_FOLDER_PREFIXES) for part in file.parent.parts[-2:]):
        return None
    encoder = None
    if suffix in H5_SUFFIXES:
        has_features, encoder = _h5_encoder(file)
        if has_features is False:
            return None  # a coordinates-only file (CLAM or TRIDENT patches/)
    folder = file.parent.name
    if encoder:
        source = "attribute"
    elif folder.startswith(TRIDENT_FEATURES_PREFIX) and len(folder) > len(TRIDENT_FEATURES_PREFIX):
        encoder, source = folder[len(TRIDENT_FEATURES_PREFIX) :], "folder"
    else:
        source = "unknown"
    return FeatureFile(file, slide_id_from_path(file), encoder, source)


def _h5_encoder(path: Path) -> tuple[bool | None, str | None]:
    """(whether the file has a ``features`` dataset (None: unreadable), its ``encoder`` attribute)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "features" not in handle:
                return False, None
            attrs = {**_attrs(handle.attrs), **_attrs(handle["features"].attrs)}
    except OSError:
        return None, None
    value = attrs.get("encoder")
    return True, (str(value) if value not in (None, "", "None") else None)


def choose(slide_id: str, candidates: list[FeatureFile], wanted: str, strict: bool) -> FeatureFile:
    """The one file of ``candidates`` holding encoder ``wanted``'s features.

    Files whose encoder is ``wanted`` (sanitised names compared) are chosen when
    there are any; otherwise, unless ``strict``, the candidates of a single
    encoder. Among the chosen, HDF5 is preferred to ``.pt`` (CLAM writes both).
    Several encoders, or several files of one, raise :class:`DataError` listing them.
    """
    listing = "; ".join(c.describe() for c in candidates)
    chosen = [c for c in candidates if c.encoder and sanitize_name(c.encoder) == wanted]
    if not chosen:
        encoders = {c.encoder for c in candidates}
        if strict:
            raise DataError(
                f"no features of encoder '{wanted}' for slide {slide_id}; found: {listing}",
                hint="pass --source-encoder with one of the encoders found",
            )
        if len(encoders) > 1:
            raise DataError(
                f"features of {len(encoders)} encoders for slide {slide_id} and none is '{wanted}': {listing}",
                hint="choose one with --source-encoder NAME (its `encoder` attribute or features_<NAME> folder)",
            )
        chosen = candidates
    h5 = [c for c in chosen if c.is_h5]
    chosen = h5 or chosen
    if len(chosen) > 1:
        raise DataError(
            f"{len(chosen)} feature files for slide {slide_id}: "
            + "; ".join(str(c.path) for c in chosen),
            hint="pass the folder of one run only",
        )
    return chosen[0]


def read(file: FeatureFile, coord_dirs: list[Path]) -> ForeignFeatures:
    """Feature rows, coordinates and merged attributes of ``file`` (see the module docstring).

    HDF5 features are not read here: :meth:`FeatureRows.blocks` reads them in slices.
    """
    path = file.path
    coords, attrs = None, {}
    if file.is_h5:
        with _open_h5(path) as handle:
            data = handle["features"]
            features = FeatureRows(path, tuple(data.shape), data.dtype)
            attrs = {**_attrs(handle.attrs), **_attrs(data.attrs)}
            if "coords" in handle:
                coords = _coords(handle["coords"][:], path)
                attrs.update(_attrs(handle["coords"].attrs))
    else:
        array = read_pt_features(path)
        features = FeatureRows(path, array.shape, array.dtype, array)
    used, ignored = [], []
    for companion in _companions(file, coord_dirs):
        other, other_attrs = read_coords(companion)
        if coords is None:
            coords = other
        if np.array_equal(other, coords):
            attrs = {**other_attrs, **attrs}
            used.append(companion)
        else:
            ignored.append(companion)
    if coords is None:
        raise DataError(
            "a .pt file holds features only; its coordinates file was not found",
            path=path,
            hint=f"pass the folder of {file.slide_id}.h5 / {file.slide_id}_patches.h5 (a 'coords' "
            "dataset) with --coords, or keep CLAM's ../h5_files or ../patches beside pt_files",
        )
    features.check()
    if len(features) != len(coords):
        raise DataError(f"{len(features)} feature rows but {len(coords)} coordinates", path=path)
    return ForeignFeatures(features, coords, attrs, used, ignored)


@dataclass
class FeatureRows:
    """The (N, D) feature rows of a file, read in row blocks as float32.

    ``shape`` as stored: (N, D) or (1, N, D). ``array`` holds the rows of a
    ``.pt`` file (loaded whole: the format cannot be sliced); ``None`` for
    HDF5, whose ``features`` dataset is read slice by slice.
    """

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype
    array: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(self.shape[-1])

    def __len__(self) -> int:
        return int(self.shape[-2]) if len(self.shape) >= 2 else 0

    def check(self) -> None:
        """DataError unless the rows are a non-empty numeric (N, D) or (1, N, D)."""
        if int(np.prod(self.shape)) == 0:
            raise DataError(
                "the file holds no patches (empty features: no tissue found by the tool)",
                path=self.path,
            )
        if not (len(self.shape) == 2 or (len(self.shape) == 3 and self.shape[0] == 1)):
            raise DataError(
                f"features must be (N, D) or (1, N, D), got shape {self.shape}", path=self.path
            )
        if np.dtype(self.dtype).kind not in "fiu":
            raise DataError(f"features must be numbers, found dtype {self.dtype}", path=self.path)

    def blocks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 rows (≤ ``rows``, D)) in order, one block in memory at a time."""
        if self.array is not None:
            flat = self.array.reshape(len(self), self.dim)
            for start in range(0, len(self), rows):
                yield start, flat[start : start + rows].astype(np.float32)
            return
        with _open_h5(self.path) as handle:
            data = handle["features"]
            for start in range(0, len(self), rows):
                stop = min(start + rows, len(self))
                block = data[0, start:stop] if len(self.shape) == 3 else data[start:stop]
                yield start, np.asarray(block, dtype=np.float32)


def _companions(file: FeatureFile, coord_dirs: list[Path]) -> list[Path]:
    """Existing coordinate files that may belong to ``file``, most specific first."""
    names = [f"{file.slide_id}{s}" for s in H5_SUFFIXES] + [f"{file.slide_id}_patches.h5"]
    folders = [*coord_dirs]
    parent = file.path.parent
    if not file.is_h5:
        folders += [parent, parent.parent / "h5_files"]
    folders += [parent.parent / "patches", parent.parent.parent / "patches"]
    out = []
    for folder in folders:
        for name in names:
            candidate = folder / name
            if candidate.is_file() and candidate != file.path and candidate not in out:
                out.append(candidate)
    return out


def read_pt_features(path: Path) -> np.ndarray:
    """A ``.pt`` tensor or numpy array, unpickled with torch's weights-only loader (numpy arrays allowed)."""
    import torch

    # numpy's own reconstruction of an array (bytes: the empty-array payload); nothing callable beyond
    allowed = [np.ndarray, np.dtype, bytes, *_numpy_reconstructors(), *_numpy_dtype_classes()]
    try:
        with torch.serialization.safe_globals(allowed):
            value = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        raise DataError(
            f"cannot read the .pt file safely ({type(error).__name__}); only tensors and numpy "
            "arrays are accepted",
            path=path,
        ) from error
    if isinstance(value, torch.Tensor):
        return value.float().numpy()
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
        return value
    raise DataError(
        f"expected a tensor or numeric array of features, found {type(value).__name__}", path=path
    )


def _numpy_reconstructors() -> list[Any]:
    """``_reconstruct`` of numpy 2 (``numpy._core``) and numpy 1 (``numpy.core``), whichever exist."""
    out = []
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            out.append(__import__(module, fromlist=["_reconstruct"])._reconstruct)
        except (ImportError, AttributeError):
            continue
    return out


def _numpy_dtype_classes() -> list[type]:
    return [type(np.dtype(name)) for name in ("float16", "float32", "float64", "int32", "int64")]


def read_coords(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """(coords (N, 2) int64, root + ``coords`` attributes) of an HDF5 coordinates file."""
    with _open_h5(path) as handle:
        if "coords" not in handle:
            raise DataError("no 'coords' dataset (N, 2 level-0 x, y)", path=path)
        return _coords(handle["coords"][:], path), {
            **_attrs(handle.attrs),
            **_attrs(handle["coords"].attrs),
        }


def _open_h5(path: Path) -> Any:
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"not a readable HDF5 file ({error})", path=path) from error


def _coords(values: np.ndarray, path: Path) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != 2:
        raise DataError(f"'coords' must be (N, 2), got shape {values.shape}", path=path)
    return values.astype(np.int64)


def _attrs(attrs: Any) -> dict[str, Any]:
    out = {}
    for key, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        out[key] = value.tolist() if isinstance(value, np.ndarray | np.generic) else value
    return out
