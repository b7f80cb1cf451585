"""Features of other tools in and out of patch stores: CLAM and TRIDENT files (docs/interop.md).

* :mod:`~wsi_engine.store.interop.files`: the tools' file layouts, found, chosen per slide, read;
* :mod:`~wsi_engine.store.interop.geometry`: the sections of an imported store (patch geometry, slide);
* :mod:`~wsi_engine.store.interop.importer`: :func:`import_features` (``wsi-engine import-features``);
* :mod:`~wsi_engine.store.interop.export`: :func:`export_features` (``wsi-engine export-features``).
"""

from wsi_engine.store.interop.export import LAYOUTS, export_features
from wsi_engine.store.interop.importer import ImportResult, import_features

__all__ = ["LAYOUTS", "ImportResult", "export_features", "import_features"]
