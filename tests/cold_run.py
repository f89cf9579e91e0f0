"""One ``shipments daily`` in a fresh process, on a host set up unlike the suite's, shared by the
tests of what only a new JVM shows (a JVM's zone, log config and listeners are fixed when it
starts, so the suite's session cannot show them):

- the machine's zone east of UTC (``TZ=Asia/Kolkata``; the suite's own is west of it),
- the config and its log4j2 file under a folder whose name has spaces (``~/My Projects/``),
- lineage on, events to a file (file transport: nothing leaves the machine), and no
  ``OPENLINEAGE_*`` variable in the environment (the listener would merge them in).

One process instead of one per test: each cold start costs ~20 s of JVM and Spark start-up.
The price: a run that fails on one of these (say the lineage listener) fails all their tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.lake import LOCAL_CONF, ROOT, land, shipment_line

DAY = dt.date(2026, 11, 2)
ZONE = "Asia/Kolkata"
LINEAGE_NAMESPACE = "shipments-lineage-test"


@dataclasses.dataclass(frozen=True)
class ColdRun:
    raw: Path
    lake: Path
    lineage_events: Path
    done: subprocess.CompletedProcess[str]
    # time.time() just before the process started and just after it ended
    started: float
    ended: float


def land_two_shipments(raw: Path) -> None:
    """Customer C1, and for ingest date DAY a valid shipment S1 and S2 with a weight that is not
    a number (quarantined)."""
    (raw / "customers").mkdir(parents=True)
    (raw / "customers" / "customers.csv").write_text("customer_id,customer_name,segment,region\nC1,Acme,SMB,EU\n")
    land(raw, DAY, "part-0.jsonl", [shipment_line("S1", weight=1.5), shipment_line("S2", weight="heavy")])


@pytest.fixture(scope="session")
def cold_daily(tmp_path_factory: pytest.TempPathFactory) -> ColdRun:
    work = tmp_path_factory.mktemp("cold-run")
    raw, lake, events = work / "raw", work / "lake", work / "lineage" / "events.jsonl"
    land_two_shipments(raw)
    folder = work / "my conf folder"
    folder.mkdir()
    log_config = folder / "log4j2.properties"
    shutil.copy(ROOT / "conf" / "log4j2.properties", log_config)
    conf = folder / "local with logs.yaml"
    conf.write_text(
        f"extends: {json.dumps(str(LOCAL_CONF))}\n"
        f"spark:\n  log_config: {json.dumps(str(log_config))}\n"
        f"lineage: {{enabled: true, output: {json.dumps(str(events))}, namespace: {LINEAGE_NAMESPACE}}}\n"
    )
    arguments = ["daily", "--date", DAY.isoformat(), "--conf", str(conf), "--raw", str(raw), "--lake", str(lake)]
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("OPENLINEAGE")}
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "shipments", *arguments],
        cwd=work,
        env={**env, "TZ": ZONE},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    ended = time.time()
    assert done.returncode == 0, done.stderr[-3000:]
    return ColdRun(raw, lake, events, done, started, ended)
