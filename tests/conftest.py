"""Shared fixtures: one SparkSession for the whole run, built by the project's own builder."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from shipments.config import Config, load_config
from shipments.session import build_spark
from tests.cold_run import cold_daily  # noqa: F401  (session-wide: one cold process for the tests that need one)

ROOT = Path(__file__).resolve().parents[1]
LOCAL_CONF = ROOT / "conf" / "local.yaml"

# Tests run with the machine's zone deliberately far from UTC: a job that forgot to pin the
# session to UTC would put records on the wrong day and fail the exact-content assertions.
# Set, not defaulted: a TZ=UTC exported by a container or CI image would hide exactly that bug.
os.environ["TZ"] = "America/Los_Angeles"

# The Spark processes the tests start (a job or two each, then exit) run the JVM's first JIT tier
# only: in a module of such processes the C2 compiler took about a third of the CPU, for code then
# run a few times (bench/README.md, "The suite's cold processes: the first JIT tier"). The suite's
# own session keeps the full JIT (built below without it): it plans hundreds of queries, and C1
# alone made it 1.6x slower.
FIRST_JIT_TIER_ONLY = "-XX:TieredStopAtLevel=1"
_USER_SUBMIT_OPTS = os.environ.get("SPARK_SUBMIT_OPTS", "")
os.environ["SPARK_SUBMIT_OPTS"] = f"{_USER_SUBMIT_OPTS} {FIRST_JIT_TIER_ONLY}".strip()


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    base = load_config(LOCAL_CONF)
    settings = {
        **base.spark.settings,
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.databricks.delta.snapshotPartitions": "1",
        # The suite's ~400 tests plan many more distinct queries than one job does: room for the
        # classes of all of them, so a test never compiles again what an earlier one compiled.
        "spark.sql.codegen.cache.maxEntries": "10000",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
    }
    subprocess_opts = os.environ["SPARK_SUBMIT_OPTS"]
    os.environ["SPARK_SUBMIT_OPTS"] = _USER_SUBMIT_OPTS
    try:
        session = build_spark(dataclasses.replace(base.spark, settings=settings), "shipments-tests")
    finally:
        os.environ["SPARK_SUBMIT_OPTS"] = subprocess_opts
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return tmp_path / "raw"


@pytest.fixture
def config(raw: Path, lake: Path) -> Config:
    return load_config(LOCAL_CONF, raw=str(raw), lake=str(lake))


D = dt.date
