"""The local log4j2 config is applied from a path with a space in it (a checkout under
``~/My Projects/``): the JVM option that names it must reach the driver as one argument."""

from __future__ import annotations

import re

from tests.cold_run import ColdRun

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
