"""The local log4j2 config is applied from a path with a space in it (a checkout under
``~/My Projects/``): the JVM option that names it must reach the driver as one argument."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from pathlib import Path

from shipments.devtools.generate import generate_raw_zone
from tests.conftest import LOCAL_CONF, ROOT

DAY = dt.date(2026, 11, 2)
# A line of Spark's log4j2 pattern (%d{yy/MM/dd HH:mm:ss} %p ...) below ERROR.
JVM_LOG_LINE = re.compile(r"^\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} (INFO|WARN) ")


def test_a_log_config_under_a_path_with_a_space_is_applied(tmp_path: Path) -> None:
    folder = tmp_path / "my conf folder"
    folder.mkdir()
    log_config = folder / "log4j2.properties"
    shutil.copy(ROOT / "conf" / "log4j2.properties", log_config)
    conf = folder / "local with logs.yaml"
    conf.write_text(f'extends: "{LOCAL_CONF}"\nspark:\n  log_config: "{log_config}"\n')
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    generate_raw_zone(raw, DAY, 1, shipments_per_day=20, customers=5, seed=3, events_per_day=0)

    args = ["daily", "--conf", str(conf), "--date", DAY.isoformat(), "--raw", str(raw), "--lake", str(lake)]
    done = subprocess.run(
        [sys.executable, "-m", "shipments", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert (lake / "shipment_daily_totals" / "_delta_log").is_dir()
    # Without the config Spark announces its own default profile and logs at INFO/WARN; with it,
    # the root level is ERROR. (The job's own Python log lines start with a yyyy-mm-dd date.)
    assert "default log4j profile" not in done.stderr and "Setting default log level" not in done.stderr
    spark_chatter = [line for line in done.stderr.splitlines() if JVM_LOG_LINE.match(line)]
    assert spark_chatter == []
