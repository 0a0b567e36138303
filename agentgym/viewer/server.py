"""The viewer's HTTP server: the standard library's threading server on a loopback address.

No web framework is needed for a JSON API of seven routes and a few static files, so the viewer adds no
dependency. It binds to loopback only and checks the Host header, so neither other machines nor a web
page using DNS rebinding can read trajectories (nor the screenshots, served by hash from the run's
``images/`` directory: ``/api/image/<sha256>``, nothing else); a strict Content-Security-Policy keeps model-written text
from ever running as script (the pages also only insert text as text).
"""

from __future__ import annotations

import json
import math
import mimetypes
import re
import threading
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from agentgym.http_guard import LOOPBACK_NAMES, HostCheck
from agentgym.images import IMAGES_DIR, ImageError, ImageStore, sniff_mime, valid_hash
from agentgym.store import TrajectoryFileError
from agentgym.viewer.index import RunIndex
from agentgym.viewer.metrics import read_metrics
from agentgym.viewer.tokens import TokenizerChoice, choose_tokenizer
from agentgym.viewer.treeview import sibling_diff, tree_json

STATIC_DIR = Path(__file__).parent / "static"
LOOPBACK = LOOPBACK_NAMES
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
MAX_PAGE = 500


class BadRequest(ValueError):
    pass


def _number(params: dict[str, list[str]], key: str, kind: type = float) -> Any:
    value = params.get(key, [""])[0].strip()
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise BadRequest(f"{key}={value!r} is not a number") from None


class Viewer:
    """The data behind the pages: the run index, metrics and the tokenizer choice."""

    def __init__(self, path: str | Path):
        self.index = RunIndex(path)
        self.metrics = read_metrics(self.index.path)
        self.images = ImageStore(self.index.root / IMAGES_DIR)  # screenshots, written beside the stores
        self._tokenizer: TokenizerChoice | None = None
        self._lock = threading.Lock()
        self.tree = lru_cache(maxsize=32)(self._tree)

    def tokenizer(self, tree_meta: dict[str, Any] | None) -> TokenizerChoice:
        with self._lock:  # loaded once, by whichever request first needs it
            if self._tokenizer is None:
                self._tokenizer = choose_tokenizer(self.index.root, tree_meta)
            return self._tokenizer

    def _tree(self, n: int) -> dict[str, Any]:
        s = self.index.summaries[n]
        tree = self.index.load_tree(n)
        return tree_json(tree, self.tokenizer(tree.meta), n=n, source=s.source)

    def run(self) -> dict[str, Any]:
        self.index.refresh()  # a run that is still training: pick up appended trees
        out = self.index.overview()
        out["metrics"] = {"rows": self.metrics.rows, "keys": self.metrics.keys()}
        out["messages"] = out["messages"] + self.metrics.messages
        return out

    def trees(self, params: dict[str, list[str]]) -> dict[str, Any]:
        self.index.refresh()
        text = {k: params.get(k, [""])[0] for k in ("env", "source", "errors", "branched", "q", "sort")}
        found = self.index.query(
            env=text["env"], source=text["source"], errors=text["errors"], branched=text["branched"], q=text["q"],
            sort=text["sort"] or "n", rmin=_number(params, "rmin"), rmax=_number(params, "rmax"),
            lmin=_number(params, "lmin", int), lmax=_number(params, "lmax", int),
            smin=_number(params, "smin", int), smax=_number(params, "smax", int))
        offset = max(0, _number(params, "offset", int) or 0)
        limit = min(MAX_PAGE, max(1, _number(params, "limit", int) or 100))
        return {"total": len(found), "offset": offset, "limit": limit, "run_trees": len(self.index.summaries),
                "items": [s.row() for s in found[offset:offset + limit]]}

    def diff(self, n: int, params: dict[str, list[str]]) -> dict[str, Any]:
        a, b = _number(params, "a", int), _number(params, "b", int)
        if a is None or b is None:
            raise BadRequest("diff needs a=NODE&b=NODE")
        return sibling_diff(self.index.load_tree(n), a, b)

    def metrics_json(self) -> dict[str, Any]:
        return {**self.metrics.to_json(), "step_stats": self.index.step_stats()}


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by its name ("inf", "-inf", "nan")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


_TREE = re.compile(r"^/api/tree/(\d+)(/diff)?$")


def make_handler(viewer: Viewer, host_check: HostCheck) -> type[BaseHTTPRequestHandler]:
    static_files = {p.name: p for p in STATIC_DIR.iterdir() if p.suffix in (".html", ".js", ".css")}

    class Handler(BaseHTTPRequestHandler):
        server_version = "agentgym-viewer"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a request log per page load is noise in the terminal the user launched us from

        def do_GET(self) -> None:
            if not host_check.host_ok(self.headers.get("Host")):
                return self._send(403, b"forbidden host", "text/plain")
            if not host_check.origin_ok(self.headers.get("Origin")):
                return self._send(403, b"forbidden origin", "text/plain")
            url = urlsplit(self.path)
            params = parse_qs(url.query)
            try:
                if url.path == "/favicon.ico":
                    return self._send(204, b"", "image/x-icon")
                if url.path in ("/", "/index.html"):
                    return self._file(static_files["index.html"])
                if url.path.startswith("/static/"):
                    name = url.path.removeprefix("/static/")
                    if name not in static_files:
                        return self._json(404, {"error": f"no static file {name!r}"})
                    return self._file(static_files[name])
                if url.path == "/api/run":
                    return self._json(200, viewer.run())
                if url.path == "/api/trees":
                    return self._json(200, viewer.trees(params))
                if url.path == "/api/metrics":
                    return self._json(200, viewer.metrics_json())
                if url.path.startswith("/api/image/"):
                    return self._image(url.path.removeprefix("/api/image/"))
                if m := _TREE.match(url.path):
                    n = int(m.group(1))
                    if n >= len(viewer.index.summaries):
                        return self._json(404, {"error": f"no tree #{n} (the run has {len(viewer.index.summaries)})"})
                    return self._json(200, viewer.diff(n, params) if m.group(2) else viewer.tree(n))
                return self._json(404, {"error": f"no route {url.path}"})
            except (BadRequest, ValueError) as e:
                status = 422 if isinstance(e, (ValidationError, TrajectoryFileError)) else 400
                return self._json(status, {"error": str(e)})
            except Exception as e:  # a bug or a file that changed under us: an answer, never a dropped connection
                return self._json(500, {"error": f"{type(e).__name__}: {str(e)[:500]}"})

        def _json(self, status: int, body: Any) -> None:
            try:
                data = json.dumps(body, allow_nan=False, default=str)
            except ValueError:  # an inf/nan from a stored tree: JSON has no such numbers, so send them as text
                data = json.dumps(_finite(body), allow_nan=False, default=str)
            self._send(status, data.encode(), "application/json")

        def _image(self, name: str) -> None:
            # Only a 64-hex-digit hash names a file (ImageStore.find): no path can leave the images dir.
            path = viewer.images.find(name) if valid_hash(name) else None
            if path is None:
                return self._json(404 if valid_hash(name) else 400,
                                  {"error": f"no stored image {name[:80]!r}" if valid_hash(name)
                                   else "an image is named by its sha256 (64 hex digits)"})
            data = path.read_bytes()
            try:
                kind = sniff_mime(data)
            except ImageError:
                return self._json(422, {"error": f"stored image {name} is not an image"})
            self._send(200, data, kind)

        def _file(self, path: Path) -> None:
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            self._send(200, path.read_bytes(), f"{kind}; charset=utf-8" if kind.startswith("text/") or
                       kind.endswith("javascript") else kind)

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a browser's idle keep-alive connection must not block shutdown


class ViewerServer:
    """`Viewer` served over HTTP. ``port=0`` picks a free port. Use as a context manager or call `close`."""

    def __init__(self, path: str | Path, port: int = 0, host: str = "127.0.0.1"):
        if host not in LOOPBACK:
            raise ValueError(f"the viewer only listens on loopback ({', '.join(LOOPBACK)}), not {host!r}")
        self.viewer = Viewer(path)
        self.httpd = _Server((host, port), BaseHTTPRequestHandler)
        self.port = self.httpd.server_address[1]
        self.httpd.RequestHandlerClass = make_handler(self.viewer, HostCheck(host))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> ViewerServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="agentgym-viewer", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ViewerServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
