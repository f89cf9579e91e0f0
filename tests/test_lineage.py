"""Lineage (optional): with ``lineage.enabled`` a daily run's OpenLineage run events land in the
configured file (file transport only: nothing leaves the machine); off, the default, no listener
is configured. The daily run is its own process (``tests/cold_run.py``): the listener is fixed
when the JVM's context starts, so the suite's shared session (lineage off, as configured by
default) cannot show it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from shipments.config import load_config
from shipments.session import lineage_settings, local_jars, local_startup_settings
from tests.cold_run import LINEAGE_NAMESPACE, ColdRun

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LOCAL_CONF = ROOT / "conf" / "local.yaml"
LISTENER = "io.openlineage.spark.agent.OpenLineageSparkListener"


def _write_conf(folder: Path, lineage: str) -> Path:
    """A config that extends conf/local.yaml, paths relative to its own folder."""
    conf = folder / "lineage.yaml"
    conf.write_text(f"extends: {json.dumps(str(LOCAL_CONF))}\npaths: {{raw: raw, lake: lake}}\n{lineage}")
    return conf


def _datasets(event: dict[str, Any], side: str) -> set[tuple[str, str]]:
    return {(dataset["namespace"], dataset["name"]) for dataset in event[side]}


def test_daily_run_writes_openlineage_events_to_the_file(cold_daily: ColdRun) -> None:
    events = [json.loads(line) for line in cold_daily.lineage_events.read_text().splitlines()]
    assert all(event["schemaURL"].endswith("#/$defs/RunEvent") for event in events)
    assert {event["job"]["namespace"] for event in events} == {LINEAGE_NAMESPACE}
    totals = ("file", str((cold_daily.lake / "shipment_daily_totals").resolve()))
    raw_folder = str((cold_daily.raw / "shipments").resolve())
    writes = [event for event in events if totals in _datasets(event, "outputs")]
    # OpenLineage names an input by the folder its files share, or by the file when it is one.
    reads_raw = [
        event
        for event in writes
        if any(ns == "file" and (name + "/").startswith(raw_folder + "/") for ns, name in _datasets(event, "inputs"))
    ]
    assert {event["eventType"] for event in reads_raw} >= {"START", "COMPLETE"}
    # START and COMPLETE of the same run: the write of D's totals from the raw shipments
    runs = {event["run"]["runId"] for event in reads_raw if event["eventType"] == "START"}
    assert any(event["run"]["runId"] in runs for event in reads_raw if event["eventType"] == "COMPLETE")


def test_lineage_is_off_by_default(spark: SparkSession) -> None:
    """The suite's session, built by the project's builder from conf/local.yaml's Spark section
    (without its lineage section: the test below checks what that adds): no listener, no
    OpenLineage settings, no listener jar."""
    assert not load_config(LOCAL_CONF).lineage.enabled
    settings = dict(spark.sparkContext.getConf().getAll())
    assert "spark.extraListeners" not in settings
    assert {key for key in settings if key.startswith("spark.openlineage.")} == set()
    assert [jar for jar in settings["spark.jars"].split(",") if "openlineage" in jar] == []


def test_enabled_lineage_adds_the_listener_its_jar_and_the_file_transport_only(tmp_path: Path) -> None:
    """What a local session starts with when lineage is on, as build_spark sets it (the daily
    run above proves the listener then runs), and when it is off."""
    config = load_config(_write_conf(tmp_path, "lineage: {enabled: true, output: events.jsonl}\n"))

    startup = local_startup_settings(config.spark, config.lineage)

    assert {key: value for key, value in startup.items() if key != "spark.jars"} == {
        "spark.extraListeners": LISTENER,
        "spark.openlineage.transport.type": "file",
        "spark.openlineage.transport.location": str(tmp_path.resolve() / "events.jsonl"),
        "spark.openlineage.namespace": "shipments",
    }
    listener_jars = [jar for jar in startup["spark.jars"].split(",") if "openlineage" in jar]
    assert len(listener_jars) == 1 and "openlineage-spark" in listener_jars[0]
    # a listener the platform or the config already names is kept, before ours
    kept = lineage_settings(config.lineage, "com.example.Audit")
    assert kept["spark.extraListeners"] == f"com.example.Audit,{LISTENER}"
    off = load_config(LOCAL_CONF)
    assert local_startup_settings(off.spark, off.lineage) == {"spark.jars": ",".join(local_jars(off.spark.jars_dir))}
