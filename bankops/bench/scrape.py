"""What one Prometheus scrape of /metrics costs, and whether the series count grows with data.

The scrape is timed client-side, as Prometheus would see it (request sent to last byte), over
one kept-alive connection, without compression. The series count is the number of sample
lines; labels are bounded sets (docs/metrics.md), so the count must be the same with 100
accounts as with 10,000 after the same traffic.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families


def scrape_cost(base_url: str, scrapes: int) -> dict:
    with httpx.Client(base_url=base_url, headers={"Accept-Encoding": "identity"},
                      timeout=10) as client:
        client.get("/metrics").raise_for_status()  # connection open, code paths warm
        seconds = []
        for _ in range(scrapes):
            start = time.perf_counter()
            response = client.get("/metrics")
            seconds.append(time.perf_counter() - start)
            response.raise_for_status()
    ms = sorted(s * 1000 for s in seconds)
    return {
        "scrapes": scrapes,
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[max(0, round(0.95 * len(ms)) - 1)], 2),
        "max_ms": round(ms[-1], 2),
        "bytes": len(response.content),
        "series": count_series(response.text),
    }


def count_series(exposition: str) -> int:
    return sum(1 for line in exposition.splitlines() if line and not line.startswith("#"))


def series_by_family(exposition: str) -> dict[str, int]:
    return {family.name: len(family.samples)
            for family in text_string_to_metric_families(exposition)}


def fixed_traffic(base_url: str, first_id: int, last_id: int, rounds: int = 40) -> None:
    """The same mix of answers whatever the data size: reads, statements, credits with and
    without a key, transfers, a refusal, a 404, an unknown path, a validation error."""
    rng = random.Random(20261123)
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for _ in range(rounds):
            account = rng.randint(first_id, last_id)
            other = first_id if account != first_id else last_id
            credit = {"direction": "credit", "amount": rng.randint(1, 1000)}
            client.get(f"/accounts/{account}")
            client.get(f"/accounts/{account}/transactions")
            client.post(f"/accounts/{account}/transactions", json=credit)
            client.post(f"/accounts/{account}/transactions", json=credit,
                        headers={"Idempotency-Key": str(uuid.uuid4())})
            client.post("/transfers", json={"source_account_id": account,
                                            "destination_account_id": other, "amount": 1})
        client.post(f"/accounts/{first_id}/transactions",
                    json={"direction": "debit", "amount": 100_000_000_000})  # 409
        client.get(f"/accounts/{last_id + 1_000_000}")  # 404 on a known route
        client.get("/no/such/path")  # 404 on no route
        client.post("/transfers", json={"amount": "lots"})  # 422
        client.get("/health/ready")


def series_check(base_url: str, id_range: tuple[int, int]) -> tuple[str, dict]:
    """Drive the fixed traffic, then scrape: the exposition text and its per-family counts."""
    fixed_traffic(base_url, *id_range)
    exposition = httpx.get(f"{base_url}/metrics", timeout=10).text
    return exposition, series_by_family(exposition)
