"""Fixtures of the run-metrics tests: Debian's real Prometheus Pushgateway on 127.0.0.1, and a
reader of what it exposes.

The gateway runs without a persistence file (its groups live in memory only), is awaited through
its ``/-/ready`` endpoint and stopped by its pid at the end of the session. A test module imports
``pushgateway`` from here and asks for it.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shipments.devtools.kafka_broker import free_port
from tests.stream_fixtures import local_service

PUSHGATEWAY = Path("/usr/bin/prometheus-pushgateway")


@dataclasses.dataclass
class Pushgateway:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def samples(self, prefix: str = "shipments_") -> dict[str, list[tuple[dict[str, str], float]]]:
        """What ``/metrics`` exposes now, for metric names starting with ``prefix``:
        name -> [(labels, value)]."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        found: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith(prefix):
                    found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return found

    def groups(self) -> list[dict[str, str]]:
        """The grouping keys of the groups the gateway holds (``/api/v1/metrics``)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/metrics", timeout=5) as response:
            data = json.loads(response.read())
        return [dict(group["labels"]) for group in data["data"]]

    def group(self, environment: str) -> dict[str, list[tuple[dict[str, str], float]]]:
        """The ``shipments_*`` samples of the groups of ``environment``: name -> [(labels, value)],
        sorted by job."""
        found: dict[str, list[tuple[dict[str, str], float]]] = {}
        for name, samples in self.samples().items():
            mine = sorted((s for s in samples if s[0].get("environment") == environment), key=lambda s: s[0]["job"])
            if mine:
                found[name] = mine
        return found


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushgateway]:
    if not PUSHGATEWAY.exists():
        # A service the suite needs is set up, not optional (.ci/run installs it): fail, never skip.
        pytest.fail(f"{PUSHGATEWAY} is not installed (apt-get install prometheus-pushgateway)")
    folder = tmp_path_factory.mktemp("pushgateway")
    url = f"http://127.0.0.1:{free_port()}"
    # No --persistence.file: nothing is written to disk, every group is gone when it stops.
    command = [str(PUSHGATEWAY), f"--web.listen-address={url.removeprefix('http://')}"]
    with local_service(command, folder, "pushgateway", f"{url}/-/ready", 30) as process:
        yield Pushgateway(process, url, folder / "pushgateway.log")
