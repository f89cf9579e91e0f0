"""How the project's session is set up: the local log4j2 config is applied from a path with a
space in it (a checkout under ``~/My Projects/``): the JVM option that names it must reach the
driver as one argument; a long-lived session compiles a plan's generated classes once; and the
suite's own session keeps the full JIT while the processes the tests start run its first tier."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pyspark.sql import SparkSession

from shipments.batch.daily import DailyRequest, run_daily
from shipments.config import load_config
from tests.cold_run import DAY, ColdRun, land_two_shipments
from tests.conftest import FIRST_JIT_TIER_ONLY
from tests.helpers.lake import LOCAL_CONF

# A line of Spark's log4j2 pattern (%d{yy/MM/dd HH:mm:ss} %p ...) below ERROR.
JVM_LOG_LINE = re.compile(r"^\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} (INFO|WARN) ")


def test_a_log_config_under_a_path_with_a_space_is_applied(cold_daily: ColdRun) -> None:
    # (the premise, should the shared run's set-up change: the config's folder name has a space)
    assert " " in cold_daily.done.args[cold_daily.done.args.index("--conf") + 1]
    assert (cold_daily.lake / "shipment_daily_totals" / "_delta_log").is_dir()
    # Without the config Spark announces its own default profile and logs at INFO/WARN; with it,
    # the root level is ERROR. (The job's own Python log lines start with a yyyy-mm-dd date.)
    stderr = cold_daily.done.stderr
    assert "default log4j profile" not in stderr and "Setting default log level" not in stderr
    spark_chatter = [line for line in stderr.splitlines() if JVM_LOG_LINE.match(line)]
    assert spark_chatter == []


def test_a_second_run_in_one_session_compiles_almost_nothing_again(spark: SparkSession, tmp_path: Path) -> None:
    """A daily run makes ~190 generated classes; with Spark's default code generation cache (100
    entries) every run in a long-lived session (a backfill's isolated runs, the stream's batches)
    compiled ~185 of them again. conf/base.yaml makes room for them."""
    raw = tmp_path / "raw"
    land_two_shipments(raw)
    compilations = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()  # type: ignore[union-attr]
    compiled, written = [], []
    for lake in ("first", "second"):
        before = compilations.getCount()
        result = run_daily(spark, load_config(LOCAL_CONF, raw=str(raw), lake=str(tmp_path / lake)), DailyRequest(DAY))
        compiled.append(compilations.getCount() - before)
        written.append((result.counts.rows_written, result.counts.quarantined))
    assert written == [(1, 1), (1, 1)]
    # (measured: 2-6; a plan's timestamps of the run itself are literals in its code)
    assert compiled[1] <= 20, compiled


def test_the_suites_session_keeps_the_full_jit_and_the_tests_processes_get_the_first_tier(spark: SparkSession) -> None:
    # C1 alone made the session 1.6x slower; the processes a test starts inherit os.environ.
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    arguments = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert arguments and FIRST_JIT_TIER_ONLY not in arguments
    assert os.environ["SPARK_SUBMIT_OPTS"].split()[-1] == FIRST_JIT_TIER_ONLY
