"""A /metrics page read back: every sample by name and labels, and sums over them.

The one reader of Prometheus text pages in the project: the demo's status line and the
soak read their worker's /metrics with it, and so do the benchmarks (``bench/common.py``)
and the integration tests (``tests/processes.py``).

>>> page = '''# TYPE fw_events_total counter
... fw_events_total{topic="clicks",kind="step"} 3.0
... fw_events_total{topic="clicks",kind="click"} 2.0
... fw_events_total{topic="contacts",kind="queued"} 4.0
... '''
>>> samples = parse(page)
>>> total(samples, "fw_events_total"), total(samples, "fw_events_total", topic="clicks")
(9.0, 5.0)
>>> total(samples, "fw_events_total", topic="feedback"), total(samples, "fw_other")
(0, 0)
"""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a page in the Prometheus text format: {(name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(url: str, timeout: float = 5.0) -> Samples:
    """Every sample of the /metrics page at ``url``; OSError when it can't be read."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return parse(response.read().decode())


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(value for (sample, found), value in samples.items() if sample == name and wanted <= found)
