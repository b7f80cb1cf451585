"""The viewer's local HTTP server (standard library only, bound to 127.0.0.1 by default).

Routes (every response is computed from the catalog; nothing is fetched from elsewhere)::

    /                                    the viewer page (static/index.html)
    /static/...                          page script, style, vendored OpenSeadragon
    /api/slides                          run id and one summary per slide (JSON)
    /api/slides/<id>                     geometry, per-class colour scales, patch values, top patches
    /dzi/<id>/slide.dzi                  Deep Zoom descriptor of the slide
    /dzi/<id>/slide_files/<L>/<c>_<r>.jpeg        slide tile, read on demand from the slide file
    /dzi/<id>/overlay-<k>.dzi            Deep Zoom descriptor of the score map of class k
    /dzi/<id>/overlay-<k>_files/<L>/<c>_<r>.png   score-map tile (RGBA)
    /report/...                          the static heatmap report and its images, when there is one
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from wsi_engine.errors import OutputError, WsiEngineError
from wsi_engine.viewer.catalog import Catalog, SlideView, ViewerState
from wsi_engine.viewer.deepzoom import TileSource

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

_TILE = re.compile(r"^/dzi/([^/]+)/(slide|overlay-(\d+))_files/(\d+)/(\d+)_(\d+)\.(jpeg|png)$")
_DZI = re.compile(r"^/dzi/([^/]+)/(slide|overlay-(\d+))\.dzi$")
_SLIDE = re.compile(r"^/api/slides/([^/]+)$")


class ViewerServer(ThreadingHTTPServer):
    """A threading HTTP server holding the :class:`ViewerState`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: ViewerState):
        super().__init__(address, _Handler)
        self.state = state

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def make_server(
    catalog: Catalog, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> ViewerServer:
    """A server for ``catalog`` listening on ``host:port`` (port 0: any free port); call ``serve_forever``."""
    try:
        return ViewerServer((host, port), ViewerState(catalog))
    except OSError as error:
        raise OutputError(
            f"cannot listen on {host}:{port} ({error.strerror or error})",
            hint="another program uses the port: pass --port with another number, or --port 0 for any free one",
        ) from error


def serve_in_thread(server: ViewerServer) -> threading.Thread:
    """Run ``server`` in a daemon thread (tests, notebooks); stop it with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="wsi-engine-viewer", daemon=True)
    thread.start()
    return thread


class _Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        path = unquote(urlsplit(self.path).path)
        try:
            self._route(path)
        except WsiEngineError as error:
            self._json({"error": str(error)}, HTTPStatus.NOT_FOUND)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, path: str) -> None:
        state = self.server.state
        if path in ("/", "/index.html"):
            return self._file(STATIC_DIR / "index.html", STATIC_DIR)
        if path.startswith("/static/"):
            return self._file(STATIC_DIR / path.removeprefix("/static/"), STATIC_DIR)
        if path.startswith("/report/") and state.catalog.report is not None:
            root = state.catalog.report.parent
            return self._file(root / (path.removeprefix("/report/") or "report.html"), root)
        if path == "/api/slides":
            return self._json(
                {
                    "run_id": state.catalog.run_id,
                    "report": state.catalog.report is not None,
                    "slides": [self._summary(s) for s in state.slide_ids],
                }
            )
        if match := _SLIDE.match(path):
            view = self._view(match[1])
            return self._json(view.detail()) if view else None
        if match := _DZI.match(path):
            source = self._source(match[1], match[3])
            if source is not None:
                fmt = source.image_format
                self._send(source.geometry.dzi(fmt).encode(), "application/xml")
            return None
        if match := _TILE.match(path):
            source = self._source(match[1], match[3])
            if source is None:
                return None
            tile = source.tile(int(match[4]), int(match[5]), int(match[6]))
            if tile is None or match[7] != source.image_format:
                return self._json({"error": "no such tile"}, HTTPStatus.NOT_FOUND)
            return self._send(tile, f"image/{source.image_format}", cache=True)
        self._json({"error": f"no such page: {path}"}, HTTPStatus.NOT_FOUND)

    # ------------------------------------------------------------ helpers
    def _summary(self, slide_id: str) -> dict:
        try:
            return self.server.state.view(slide_id).summary()
        except WsiEngineError as error:
            return {"id": slide_id, "error": str(error)}

    def _view(self, slide_id: str) -> SlideView | None:
        view = self.server.state.view(slide_id)
        if view is None:
            self._json({"error": f"no slide {slide_id!r}"}, HTTPStatus.NOT_FOUND)
        return view

    def _source(self, slide_id: str, overlay: str | None) -> TileSource | None:
        view = self._view(slide_id)
        if view is None:
            return None
        if overlay is None:
            return view.slide
        if int(overlay) >= len(view.class_names):
            self._json({"error": f"no class {overlay}"}, HTTPStatus.NOT_FOUND)
            return None
        return view.overlay(int(overlay))

    def _file(self, path: Path, root: Path) -> None:
        resolved = path.resolve()
        if not resolved.is_relative_to(root.resolve()) or not resolved.is_file():
            return self._json({"error": "no such file"}, HTTPStatus.NOT_FOUND)
        kind = mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
        self._send(resolved.read_bytes(), kind)

    def _json(self, payload: object, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(json.dumps(payload).encode(), "application/json", status=status)

    def _send(
        self, body: bytes, kind: str, *, status: HTTPStatus = HTTPStatus.OK, cache: bool = False
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.end_headers()
        self.wfile.write(body)
