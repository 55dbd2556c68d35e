"""Where Prometheus, Tempo and Loki are, and HTTP to them that fails with a sentence.

The addresses are the stack's settings (environment variables, as the scenario tools read
PROMETHEUS_URL); the defaults are the ports both the native stack and compose publish on
127.0.0.1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx

DEFAULTS = {
    "PROMETHEUS_URL": "http://127.0.0.1:9090",
    "TEMPO_URL": "http://127.0.0.1:3200",
    "LOKI_URL": "http://127.0.0.1:3100",
}
TIMEOUT_S = 10.0


def setting(name: str) -> str:
    return os.environ.get(name) or DEFAULTS[name]


class BackendError(Exception):
    """Prometheus, Tempo or Loki could not answer: the message says which, where and why."""


class Unreachable(BackendError):
    def __init__(self, name: str, url: str, reason: str) -> None:
        super().__init__(
            f"{name} is not reachable at {url} ({reason}). Is the stack running? "
            "(`make stack` natively, `docker compose up` with compose; another address: "
            f"--{name.lower()} URL or {name.upper()}_URL)")


@dataclass
class Backend:
    """One service's HTTP API. A 404 is returned to the caller (it can mean "no such trace");
    any other failure raises BackendError."""

    name: str
    url: str
    timeout: float = TIMEOUT_S

    def get(self, path: str, params: dict | None = None,
            headers: dict | None = None) -> httpx.Response:
        url = self.url.rstrip("/") + path
        try:
            response = httpx.get(url, params=params, headers=headers, timeout=self.timeout)
        except httpx.ConnectTimeout:
            raise Unreachable(self.name, self.url, f"no connection in {self.timeout:g} s") \
                from None
        except httpx.TimeoutException:
            raise BackendError(f"{self.name} at {self.url} did not answer {path} in "
                               f"{self.timeout:g} s") from None
        except httpx.TransportError as error:
            raise Unreachable(self.name, self.url, _reason(error)) from None
        if response.status_code >= 400 and response.status_code != 404:
            raise BackendError(f"{self.name} at {self.url} answered {response.status_code} to "
                               f"{path}: {response.text.strip()[:300]}")
        return response

    def get_json(self, path: str, params: dict | None = None) -> dict:
        response = self.get(path, params)
        try:
            return response.json()
        except ValueError:
            raise BackendError(f"{self.name} at {self.url} did not answer JSON to {path}: is "
                               f"it {self.name}?") from None


def _reason(error: httpx.TransportError) -> str:
    text = str(error) or type(error).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text
