"""``cdclake dashboard``: a live page for the local stack, served with the standard library.

``/`` is one self-contained HTML page (no script or style from the internet); it polls
``/api/status``, the same document as ``cdclake --output json status``, and draws the
data path with each component's health, every table's lag and freshness per layer, and
small charts over the samples this server has kept (``/api/history``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from cdclake.config import Pipeline

HISTORY = 360  # samples kept (at the page's 5 s poll: 30 min)
MIN_REFRESH_SECONDS = 2.0


class StatusCache:
    """The latest status, refreshed at most every ``MIN_REFRESH_SECONDS``, and a history of samples."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.lock = threading.Lock()
        self.status: dict[str, Any] | None = None
        self.taken = 0.0
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)

    def current(self) -> dict[str, Any]:
        from cdclake.health.layers import full_status

        with self.lock:
            if self.status is None or time.monotonic() - self.taken >= MIN_REFRESH_SECONDS:
                self.status = full_status(self.pipeline, controller=False)
                self.taken = time.monotonic()
                self.history.append(sample(self.status))
            return self.status


def sample(status: dict[str, Any]) -> dict[str, Any]:
    """The numbers charted over time: per table end offset, lag and freshness; the slot's WAL."""
    tables = status["layers"].get("tables", {})
    slot = status.get("connector", {}).get("slot", {})
    return {"t": time.time(), "retained_wal_bytes": slot.get("retained_wal_bytes"),
            "tables": {name: {"end_offset": e["end_offset"], "lag": e["bronze"]["lag_events"],
                              "bronze": e["bronze"]["freshness_seconds"], "silver": e["silver"]["freshness_seconds"]}
                       for name, e in tables.items()}}


def page() -> bytes:
    return resources.files("cdclake.monitoring").joinpath("dashboard.html").read_bytes()


def handler(cache: StatusCache) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            routes = {"/": lambda: ("text/html; charset=utf-8", page()),
                      "/api/status": lambda: ("application/json", _json(cache.current())),
                      "/api/history": lambda: ("application/json", _json(list(cache.history)))}
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                self.send_error(404)
                return
            kind, body = route()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            return

    return Handler


def _json(data: Any) -> bytes:
    return json.dumps(data, default=str).encode()


def serve(pipeline: Pipeline, port: int, address: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve the dashboard in a background thread; returns the server (``.shutdown()`` stops it)."""
    server = ThreadingHTTPServer((address, port), handler(StatusCache(pipeline)))
    threading.Thread(target=server.serve_forever, name="cdclake-dashboard", daemon=True).start()
    return server
