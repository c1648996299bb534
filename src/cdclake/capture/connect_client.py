"""A small client for the Kafka Connect REST API."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from cdclake.capture.exceptions import ConnectError


class ConnectClient:
    def __init__(self, url: str, timeout: float = 30):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, ok_missing: bool = False) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        for attempt in range(10):
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                    return json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                detail = _message(exc)
                if exc.code == 404 and ok_missing:
                    return None
                # 409: the worker group is rebalancing; it settles within seconds.
                if exc.code == 409 and attempt < 9:
                    time.sleep(1)
                    continue
                raise ConnectError(f"Kafka Connect {method} {path} failed ({exc.code}): {detail}",
                                   status=exc.code) from None
            except (urllib.error.URLError, OSError) as exc:
                raise ConnectError(f"cannot reach Kafka Connect at {self.url} ({getattr(exc, 'reason', exc)}); "
                                   "is it running? (`cdclake up`, `cdclake status`)") from None
        raise AssertionError("unreachable")

    def put_config(self, name: str, config: dict[str, str]) -> dict:
        return self.request("PUT", f"/connectors/{name}/config", config)

    def validate(self, connector_class: str, config: dict[str, str]) -> list[str]:
        """Connect's own validation: one message per invalid key."""
        plugin = connector_class.rsplit(".", 1)[-1]
        result = self.request("PUT", f"/connector-plugins/{plugin}/config/validate",
                              {"name": "cdclake-validate", **config})
        errors = []
        for item in result.get("configs", []):
            value = item.get("value", {})
            for err in value.get("errors", []):
                errors.append(f"{value.get('name')}: {err}")
        return errors

    def status(self, name: str) -> dict | None:
        return self.request("GET", f"/connectors/{name}/status", ok_missing=True)

    def config(self, name: str) -> dict | None:
        return self.request("GET", f"/connectors/{name}/config", ok_missing=True)

    def task_configs(self, name: str) -> list[dict]:
        """The configs the connector's tasks run with (they lag a config update until the
        tasks are reconfigured)."""
        return [t.get("config", {}) for t in self.request("GET", f"/connectors/{name}/tasks", ok_missing=True) or []]

    def offsets(self, name: str) -> list[dict]:
        """The connector's committed source offsets: ``[{"partition": {...}, "offset": {...}}]``."""
        return (self.request("GET", f"/connectors/{name}/offsets", ok_missing=True) or {}).get("offsets", [])

    def restart(self, name: str) -> None:
        self.request("POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed=false")

    def pause(self, name: str) -> None:
        self.request("PUT", f"/connectors/{name}/pause")

    def resume(self, name: str) -> None:
        self.request("PUT", f"/connectors/{name}/resume")

    def delete(self, name: str) -> None:
        self.request("DELETE", f"/connectors/{name}", ok_missing=True)


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return json.loads(exc.read()).get("message", "")
    except (ValueError, OSError):
        return exc.reason
