"""Bad arguments: a one-line reason on stderr, a non-zero exit, and nothing under the lake changed.

These run the installed console script as a user would; none of them gets as far as starting
Spark, so they are cheap.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPMENTS = [sys.executable, "-m", "shipments"]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def lake_with_content(tmp_path: Path) -> Path:
    """A lake folder holding a file, to prove a rejected command leaves it alone."""
    lake = tmp_path / "lake"
    (lake / "shipment_daily_totals" / "_delta_log").mkdir(parents=True)
    (lake / "shipment_daily_totals" / "_delta_log" / "00000000000000000000.json").write_text("{}\n")
    return lake


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SHIPMENTS, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env={**os.environ})


BAD_COMMANDS = {
    "impossible date": (["daily", "--date", "2026-13-45"], "invalid date '2026-13-45'"),
    "february 30": (["daily", "--date", "2026-02-30"], "not a calendar date"),
    "sql injection": (["daily", "--date", "2026-11-02' OR '1'='1"], "expected YYYY-MM-DD"),
    "no date": (["daily"], "the following arguments are required: --date"),
    "unknown command": (["dailly", "--date", "2026-11-02"], "invalid choice: 'dailly'"),
    "backfill end before start": (["backfill", "--start", "2026-11-05", "--end", "2026-11-01"], "is before --start"),
    "zero parallelism": (
        ["backfill", "--start", "2026-11-01", "--end", "2026-11-02", "--parallelism", "0"],
        "at least 1",
    ),
    "negative version": (["restore", "--date", "2026-11-02", "--to-version", "-1"], "at least 0"),
    "missing config": (["daily", "--date", "2026-11-02", "--conf", "/nonexistent/x.yaml"], "cannot read config"),
}


@pytest.mark.parametrize("case", list(BAD_COMMANDS))
def test_bad_arguments_fail_in_one_line_and_touch_nothing(case: str, lake_with_content: Path, tmp_path: Path) -> None:
    args, message = BAD_COMMANDS[case]
    before = _snapshot(lake_with_content)
    result = _run(*args, "--raw", str(tmp_path / "raw"), "--lake", str(lake_with_content))
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert _snapshot(lake_with_content) == before


def test_missing_raw_folder(tmp_path: Path, lake_with_content: Path) -> None:
    before = _snapshot(lake_with_content)
    result = _run("daily", "--date", "2026-11-02", "--raw", str(tmp_path / "nope"), "--lake", str(lake_with_content))
    assert result.returncode == 1
    assert result.stderr == f"shipments daily: error: raw folder {tmp_path / 'nope'} does not exist\n"
    assert _snapshot(lake_with_content) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("paths: [unclosed\n", "is not valid YAML at line"),
        (
            "extends: base.yaml\ndaily:\n  lookback_days: -2\n",
            "daily.lookback_days must be a whole number from 0 to 31",
        ),
        ("extends: base.yaml\ndaily:\n  raw_format: xml\n", "daily.raw_format must be one of json, csv"),
        ("extends: base.yaml\nspark:\n  platform: k8s\n", "spark.platform must be one of local, emr, glue"),
        (
            "extends: base.yaml\nstream:\n  driver_merge_max_mb: lots\n",
            "stream.driver_merge_max_mb must be a whole number from 0 to 65536",
        ),
        (
            "extends: base.yaml\nstream:\n  metrics_interval: every batch\n",
            "stream.metrics_interval must look like '30 seconds'",
        ),
        ("extends: base.yaml\nstream:\n  metrics_interval: 2 days\n", "stream.metrics_interval must be at most 1 day"),
        # a bare YAML number, as "0: as soon as ..." reads: the unit is required, and the message shows the form
        ("extends: base.yaml\nstream:\n  metrics_interval: 0\n", "stream.metrics_interval must look like '30 seconds'"),
        ("extends: base.yaml\ndayly: {}\n", "unknown top-level key(s)"),
        ("extends: missing.yaml\n", "cannot read config"),
    ],
)
def test_unreadable_config(tmp_path: Path, lake_with_content: Path, text: str, message: str) -> None:
    conf = tmp_path / "conf" / "bad.yaml"
    conf.parent.mkdir()
    conf.write_text(text.replace("extends: base.yaml", f"extends: {ROOT / 'conf' / 'local.yaml'}"))
    before = _snapshot(lake_with_content)
    result = _run(
        "daily", "--date", "2026-11-02", "--conf", str(conf), "--raw", str(tmp_path), "--lake", str(lake_with_content)
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert _snapshot(lake_with_content) == before


def test_help_lists_every_command() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in ("daily", "backfill", "stream", "restore", "reconcile", "status", "generate"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("script", "command"),
    [("jobs/daily_totals.py", []), ("jobs/glue_daily_totals.py", []), ("jobs/emr_main.py", ["daily"])],
)
def test_job_entry_points_are_the_cli(script: str, command: list[str], lake_with_content: Path, tmp_path: Path) -> None:
    before = _snapshot(lake_with_content)
    result = subprocess.run(
        [
            sys.executable,
            script,
            *command,
            "--date",
            "2026-13-45",
            "--raw",
            str(tmp_path),
            "--lake",
            str(lake_with_content),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "invalid date '2026-13-45'" in result.stderr
    assert _snapshot(lake_with_content) == before
