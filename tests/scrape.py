"""Reading a /metrics page as Prometheus would, with prometheus_client's own text parser."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def families(port: int) -> list:
    """The metric families of http://127.0.0.1:PORT/metrics, those without samples too."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return list(text_string_to_metric_families(response.read().decode()))


def scrape(port: int) -> list:
    """The samples of http://127.0.0.1:PORT/metrics."""
    return [sample for family in families(port) for sample in family.samples]


def value(samples: list, name: str, **labels) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``; None when there is none."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None
