"""wsi-engine: whole-slide images to patch stores, CLIP features, few-shot MIL and heatmaps."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wsi-engine")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
