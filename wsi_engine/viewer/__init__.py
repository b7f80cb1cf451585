"""``wsi-engine view``: a local zoomable viewer of slides with their score maps.

:func:`~wsi_engine.viewer.catalog.load_catalog` finds the slides of an output
folder, :mod:`~wsi_engine.viewer.deepzoom` cuts Deep Zoom tiles on demand from
the slide file and from the score canvas, and
:func:`~wsi_engine.viewer.server.make_server` serves them with the page in
``static/`` (OpenSeadragon is vendored there by ``tools/vendor_openseadragon.py``).
"""

from wsi_engine.viewer.catalog import Catalog, load_catalog
from wsi_engine.viewer.server import DEFAULT_PORT, ViewerServer, make_server, serve_in_thread

__all__ = [
    "DEFAULT_PORT",
    "Catalog",
    "ViewerServer",
    "load_catalog",
    "make_server",
    "serve_in_thread",
]
