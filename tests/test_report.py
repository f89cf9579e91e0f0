"""``shipments report``: the page is generated from a ledger and alerts written here, then drawn by
the real headless Chromium with every name lookup failing (the page must need no network), and
the drawn DOM is checked: every chart has a plotly svg with its bars and points, and the open
alerts table lists the open alert (escaped), not the resolved one."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from shipments.batch.ledger import FAILED, SUCCEEDED, RunRecord
from shipments.cli import main
from shipments.config import load_config
from shipments.model.tables import ALERT_STATE, ALERT_STATE_SCHEMA, PIPELINE_RUNS, PIPELINE_RUNS_SCHEMA
from shipments.storage import delta
from tests.conftest import LOCAL_CONF

UTC = dt.UTC
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHARTS = ("volume", "quarantine", "freshness", "durations")
NOW = "2026-03-31T10:00:00Z"
FIRST = dt.date(2026, 2, 24)  # 35 run dates: 02-24 .. 03-30
HTML_REASON = "<b>bold</b>&co"


def run_rows() -> list[tuple[object, ...]]:
    """A daily run per date, published at 03:00 on D+1, keeping 1000 + 100 x weekday shipments of
    1100 + 100 x weekday read; 03-12 published at 10:00 (late), 03-30 failed (not published)."""
    rows = []
    for offset in range(35):
        run_date = FIRST + dt.timedelta(days=offset)
        start = dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time(2, 30), UTC)
        end = start + dt.timedelta(minutes=30)
        if run_date == dt.date(2026, 3, 12):
            start, end = start + dt.timedelta(hours=7), end + dt.timedelta(hours=7)
        kept = 1000 + 100 * run_date.weekday()
        # 60 quarantined by reason; 03-20 was recorded before reasons were kept (null)
        reasons = None if run_date == dt.date(2026, 3, 20) else json.dumps({"invalid_json": 40, HTML_REASON: 20})
        status = FAILED if run_date == dt.date(2026, 3, 30) else SUCCEEDED
        record = RunRecord(f"daily-{run_date}", "daily", run_date, start, end, status)
        record.update(rows_read=kept + 100, rows_kept=kept, rows_quarantined=60, quarantine_reasons=reasons)
        rows.append(record.as_row())
    return rows


def alert_rows() -> list[tuple[object, ...]]:
    seen = dt.datetime(2026, 3, 31, 3, 0, tzinfo=UTC)

    def alert(fingerprint: str, state: str, check: str, summary: str) -> tuple[object, ...]:
        dates = [dt.date(2026, 3, 30)]
        return (fingerprint, state, "page", "daily", "shipment_daily_totals", check, "below_baseline", summary,
                "README.md#volume", dates, ["k1"], 2, seen, seen, seen, None, "daily-run")  # fmt: skip

    return [
        alert("f-open", "open", "volume", "volume <script>alert(1)</script> far below the baseline"),
        alert("f-resolved", "resolved", "resolved_check", "this one is resolved"),
    ]


@pytest.fixture(scope="module")
def lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("report") / "lake"
    config = load_config(LOCAL_CONF, lake=str(lake))
    delta.ensure_tables(spark, config, (PIPELINE_RUNS, ALERT_STATE))
    delta.append_rows(spark.createDataFrame(run_rows(), PIPELINE_RUNS_SCHEMA), PIPELINE_RUNS.path(config), key="seed")
    delta.append_rows(spark.createDataFrame(alert_rows(), ALERT_STATE_SCHEMA), ALERT_STATE.path(config), key="seed")
    return lake


def report(lake: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    code = main(
        ["report", "--conf", str(LOCAL_CONF), "--lake", str(lake), "--raw", str(lake.parent / "raw"),
         "--out", str(out), "--now", NOW]
    )  # fmt: skip
    assert code == 0
    return capsys.readouterr().out


def render(page: Path, profile: Path) -> str:
    """The DOM after Chromium ran the page's scripts; every host name fails to resolve."""
    if not Path(CHROMIUM).exists():
        # A service the suite needs is set up, not optional (.ci/run installs it): fail, never skip.
        pytest.fail("chromium is not installed (apt-get install chromium)")
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.as_uri(),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        dom, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own process group: chromium and its helpers
        process.communicate()
        raise
    assert process.returncode == 0
    return dom


def section(dom: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}"[^>]*>(.*?)</section>', dom, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def test_report_draws_every_chart_and_the_open_alerts(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    summary = report(lake, out, capsys)
    page = out.read_text(encoding="utf-8")
    # 28 run dates 03-04..03-31, published 03-04..03-29 (26; 03-30 failed)
    assert summary.startswith(f"report 2026-03-04..2026-03-31: wrote {out} (")
    assert summary.endswith("dates published: 26; open alerts: 1\n")
    # Self-contained: plotly.js inlined once, nothing fetched.
    assert page.count("<script src") == 0 and "<link" not in page
    assert page.count("plotly.js v") == 1
    assert "<script>alert(1)</script>" not in page and "<b>bold</b>" not in page

    dom = render(out, tmp_path / "profile")
    for chart in CHARTS:
        drawn = section(dom, f"chart-{chart}")
        assert 'class="main-svg"' in drawn, chart
        assert "no data yet" not in drawn, chart

    volume = section(dom, "chart-volume")
    # 26 bars, and the baseline's points from 03-17 on (3 same weekdays of history from 02-24)
    assert volume.count('class="trace bars"') == 1
    assert volume.count('class="point"') == 26 + 13
    quarantine = section(dom, "chart-quarantine")
    # one stacked trace per reason: the two recorded ones and the unrecorded one of 03-20
    assert quarantine.count('class="trace bars"') == 3
    assert "invalid_json" in quarantine and "(reason not recorded)" in quarantine
    assert "&lt;b&gt;bold&lt;/b&gt;&amp;co" in quarantine  # shown as text, not made bold
    freshness = section(dom, "chart-freshness")
    # 03-04..03-29 published (bars), 03-30 missed (one marker); the SLO and SLA lines
    assert freshness.count('class="point"') == 26 + 1
    assert "SLO 08:30" in freshness and "SLA 09:00" in freshness
    durations = section(dom, "chart-durations")
    # runs started in the last 28 days: for dates 03-03..03-30, the failed one apart
    assert durations.count('class="point"') == 28
    assert ">daily<" in durations and ">failed<" in durations

    alerts = section(dom, "alerts")
    assert alerts.count("<tr") == 2  # the header and the open alert
    assert "shipment_daily_totals.volume" in alerts and "2026-03-30" in alerts
    assert "volume &lt;script&gt;alert(1)&lt;/script&gt; far below the baseline" in alerts
    assert "resolved_check" not in alerts
    assert "daily_slo" in section(dom, "slo-summary")


def test_report_of_an_empty_lake(spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "empty.html"
    summary = report(tmp_path / "lake", out, capsys)
    assert summary.endswith("dates published: 0; open alerts: 0\n")
    dom = render(out, tmp_path / "profile")
    for chart in CHARTS:
        drawn = section(dom, f"chart-{chart}")
        assert 'class="main-svg"' in drawn and "no data yet" in drawn, chart
        assert 'class="point"' not in drawn, chart
    assert "no open alerts" in section(dom, "alerts")
    assert not (tmp_path / "lake").exists()  # reading made no table


def test_a_missing_output_folder_fails_before_spark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nope" / "report.html"
    code = main(["report", "--conf", str(LOCAL_CONF), "--lake", str(tmp_path / "lake"), "--out", str(out)])
    assert code == 1
    assert capsys.readouterr().err == f"shipments report: error: report folder {out.parent} does not exist\n"
    assert not out.parent.exists()
