"""``shipments slo``: publication and latency objectives judged from a ledger and metrics written
here with known times, through the real command line (``--now`` moves the clock)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from shipments.batch.ledger import FAILED, SUCCEEDED, RunRecord
from shipments.cli import main
from shipments.config import Config, load_config
from shipments.errors import ConfigError
from shipments.model.tables import PIPELINE_METRICS, PIPELINE_METRICS_SCHEMA, PIPELINE_RUNS, PIPELINE_RUNS_SCHEMA
from shipments.observe.slo import burn_rate_results
from shipments.ops_config import QualityConfig
from shipments.storage import delta
from tests.conftest import LOCAL_CONF

UTC = dt.UTC
Capture = pytest.CaptureFixture[str]
D = dt.date


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=UTC)


def run_row(job: str, run_date: dt.date, status: str, started: dt.datetime, ended: dt.datetime) -> tuple[object, ...]:
    run_id = f"{job}-{run_date}-{started:%H%M}-{status}"
    return RunRecord(run_id, job, run_date, started, ended, status).as_row()


def ledger_rows() -> list[tuple[object, ...]]:
    """Daily runs for 2026-03-01..03-30, each published at 03:00 on D+1 except:

    - 03-05 published at 08:45 (after the SLO's 08:30, before the SLA's 09:00);
    - 03-12 published at 10:00 on D+1 (after both);
    - 03-15 only failed (a restore that succeeded does not publish);
    - 03-20 failed at first, published at 08:00, then rerun (the first success counts);
    - 03-30 failed, then published at 11:00 on 03-31 (late).
    """
    rows = []
    for day in range(1, 31):
        run_date = D(2026, 3, day)
        next_day = run_date + dt.timedelta(days=1)

        def on_next(hour: int, minute: int = 0, next_day: dt.date = next_day) -> dt.datetime:
            return dt.datetime.combine(next_day, dt.time(hour, minute), UTC)

        if day == 5:
            rows.append(run_row("daily", run_date, SUCCEEDED, on_next(8, 15), on_next(8, 45)))
        elif day == 12:
            rows.append(run_row("daily", run_date, SUCCEEDED, on_next(9, 30), on_next(10)))
        elif day == 15:
            rows.append(run_row("daily", run_date, FAILED, on_next(2, 30), on_next(2, 50)))
            rows.append(run_row("restore", run_date, SUCCEEDED, on_next(5), on_next(5, 5)))
        elif day == 20:
            rows.append(run_row("daily", run_date, FAILED, on_next(2, 30), on_next(3)))
            rows.append(run_row("daily", run_date, SUCCEEDED, on_next(7, 30), on_next(8)))
            rows.append(run_row("daily", run_date, SUCCEEDED, on_next(11, 30), on_next(12)))
        elif day == 30:
            rows.append(run_row("daily", run_date, FAILED, on_next(2, 30), on_next(2, 50)))
            rows.append(run_row("daily", run_date, SUCCEEDED, on_next(10, 30), on_next(11)))
        else:
            rows.append(run_row("daily", run_date, SUCCEEDED, on_next(2, 30), on_next(3)))
    return rows


SLOW_BATCHES = (at(10, 12, 30), at(10, 13, 30), at(28, 12, 30), at(31, 8, 30))


def metric_row(
    job: str, metric: str, value: float | None, recorded_at: dt.datetime, batch_id: int | None
) -> tuple[object, ...]:
    return (f"{job}-run", job, "shipment_status", "local", None, batch_id, metric, value, "seconds", recorded_at)


def metrics_rows() -> list[tuple[object, ...]]:
    """One stream micro-batch an hour at HH:30 from 03-01 00:30 to 03-31 11:30: latency 1 s,
    8 s for SLOW_BATCHES. Plus rows that must not count: a batch without latency, a stream metric
    that is not latency, and the daily job's own latency_seconds."""
    rows = []
    recorded, batch = at(1, 0, 30), 0
    while recorded <= at(31, 11, 30):
        latency = 8.0 if recorded in SLOW_BATCHES else 1.0
        rows.append(metric_row("stream", "latency_seconds", latency, recorded, batch))
        rows.append(metric_row("stream", "rows_read", 500.0, recorded, batch))
        recorded, batch = recorded + dt.timedelta(hours=1), batch + 1
    rows.append(metric_row("stream", "latency_seconds", None, at(20, 12, 45), 9999))
    rows.append(metric_row("daily", "latency_seconds", 99999.0, at(31, 3), None))
    return rows


def write_lake(spark: SparkSession, config: Config, runs: list[tuple[object, ...]], metrics: list[Any]) -> None:
    if runs:
        delta.ensure_table(spark, config, PIPELINE_RUNS)
        delta.append_rows(spark.createDataFrame(runs, PIPELINE_RUNS_SCHEMA), PIPELINE_RUNS.path(config), key="seed")
    if metrics:
        delta.ensure_table(spark, config, PIPELINE_METRICS)
        delta.append_rows(
            spark.createDataFrame(metrics, PIPELINE_METRICS_SCHEMA), PIPELINE_METRICS.path(config), key="seed"
        )


@pytest.fixture(scope="module")
def month_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("slo") / "lake"
    config = load_config(LOCAL_CONF, lake=str(lake))
    write_lake(spark, config, ledger_rows(), metrics_rows())
    return lake


def slo(lake: Path, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["slo", "--conf", str(LOCAL_CONF), "--lake", str(lake), "--raw", str(lake.parent / "raw"), *options])
    return code, capsys.readouterr().out


def slo_json(lake: Path, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, dict[str, Any]]:
    code, out = slo(lake, capsys, "--json", *options)
    document = json.loads(out)
    assert document["exit_code"] == code
    return code, {o["name"]: o for o in document["objectives"]}


def budgets(objective: dict[str, Any]) -> dict[int, tuple[int, int, float | None]]:
    """window days -> (judged, bad, allowed)."""
    return {b["days"]: (b["judged"], b["bad"], b["allowed"]) for b in objective["budgets"]}


def burns(objective: dict[str, Any]) -> dict[str, tuple[int, int, float | None, bool]]:
    """fast|slow -> (judged, bad, rate, firing)."""
    return {b["speed"]: (b["judged"], b["bad"], b["rate"], b["firing"]) for b in objective["burns"]}


# now -> exit code, (SLA state, SLO state), SLA missed (7d, 28d), SLO bad (7d, 28d), SLO burn rates
# (fast, slow) and whether each fires. 28 days always judge 28 dates: the ledger starts on 03-01.
DAILY_CASES = {
    # 03-29 was published at 03:00: met. In 28d (dates 03-02..03-29): 03-05 late for the SLO only,
    # 03-12 late for both, 03-15 never published.
    "due date met": ("2026-03-30T10:00:00Z", 0, ("met", "met"), (0, 2), (0, 3), (0.0, 0.0)),
    # 03-30 not published yet, 3h30m before the SLO deadline: at risk, nothing bad in 7 days.
    "due date pending": ("2026-03-31T05:00:00Z", 0, ("at risk", "at risk"), (0, 2), (0, 3), (0.0, 0.0)),
    # Deadlines passed, 03-30 still unpublished at 10:00 (its success at 11:00 is after --now):
    # dates 03-03..03-30 in 28d; 1 bad day of 1 burns 1/0.01 = 100x, 1 of 7 burns 14.29x.
    "due date missed": ("2026-03-31T10:00:00Z", 1, ("breached", "breached"), (1, 3), (1, 4), (100.0, 100 / 7)),
    "due date late": ("2026-03-31T12:00:00Z", 1, ("breached", "breached"), (1, 3), (1, 4), (100.0, 100 / 7)),
}


@pytest.mark.parametrize("case", list(DAILY_CASES))
def test_daily_publication(case: str, month_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now, exit_code, states, sla_missed, slo_bad, rates = DAILY_CASES[case]
    code, objectives = slo_json(month_lake, capsys, "--now", now)
    sla, daily_slo = objectives["daily_sla"], objectives["daily_slo"]
    assert code == exit_code
    assert (sla["state"], daily_slo["state"]) == states
    assert budgets(sla) == {7: (7, sla_missed[0], None), 28: (28, sla_missed[1], None)}
    assert budgets(daily_slo) == {
        7: (7, slo_bad[0], pytest.approx(0.07)),
        28: (28, slo_bad[1], pytest.approx(0.28)),
    }
    assert sla["burns"] == []
    fast_bad, slow_bad = (1, 1) if rates[0] else (0, 0)
    assert burns(daily_slo) == {
        "fast": (1, fast_bad, pytest.approx(rates[0]), rates[0] > 14.4),
        "slow": (7, slow_bad, pytest.approx(rates[1]), rates[1] > 2),
    }


def test_pending_date_shows_the_time_left(month_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, objectives = slo_json(month_lake, capsys, "--now", "2026-03-31T05:00:00Z")
    assert objectives["daily_slo"]["due_date"] == "2026-03-30"
    assert objectives["daily_slo"]["deadline"] == "2026-03-31T08:30:00Z"
    assert objectives["daily_slo"]["time_left_seconds"] == 3.5 * 3600
    assert objectives["daily_sla"]["time_left_seconds"] == 4 * 3600


def test_text_output_is_one_line_per_objective(month_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = slo(month_lake, capsys, "--now", "2026-03-31T05:00:00Z")
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "slo at 2026-03-31T05:00:00Z: OK"
    assert [line.split(" ", 1)[0] for line in lines[1:]] == ["daily_sla", "daily_slo", "stream_latency"]
    assert lines[2] == (
        "daily_slo (published by 08:30 UTC on D+1 on 99% of days): at risk - 2026-03-30 not published yet, "
        "3h30m left before 2026-03-31T08:30:00Z; budget 7d: 0 bad of 0.07 allowed (7 days, 0% spent), "
        "28d: 3 bad of 0.28 allowed (28 days, 1071% spent); burn 1d 0.0x (page above 14.4x), "
        "7d 0.0x (ticket above 2x)"
    )
    sla_line = "daily_sla (published by 09:00 UTC on D+1): at risk - 2026-03-30 not published yet, 4h00m left"
    assert lines[1].startswith(sla_line)


def test_failing_text_names_what_fails(month_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = slo(month_lake, capsys, "--now", "2026-03-31T12:00:00Z")
    assert code == 1
    assert out.splitlines()[0] == "slo at 2026-03-31T12:00:00Z: FAILING (daily_sla, daily_slo)"
    assert "breached - 2026-03-30 published late at 2026-03-31T11:00:00Z, deadline 2026-03-31T08:30:00Z" in out
    assert "7d 14.3x (ticket above 2x) FIRING" in out


def test_days_before_the_first_daily_run_are_not_judged(month_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, objectives = slo_json(month_lake, capsys, "--now", "2026-03-31T10:00:00Z", "--days", "40")
    # 40 days back reaches 02-19, but the ledger starts at 03-01: 30 dates judged.
    assert budgets(objectives["daily_slo"])[40] == (30, 4, pytest.approx(0.30))
    assert budgets(objectives["daily_sla"])[40] == (30, 3, None)


# now -> stream (judged, slow) over 1, 7 and 28 days. Hourly batches: 24 / 168 / 672 judged.
STREAM_CASES = {
    "2026-03-30T10:00:00Z": ((24, 0), (168, 1), (672, 3)),
    "2026-03-31T05:00:00Z": ((24, 0), (168, 1), (672, 3)),
    # the 08:30 slow batch of 03-31 is in every window; 2 in 7 days spend more than 1.68 allowed
    "2026-03-31T10:00:00Z": ((24, 1), (168, 2), (672, 4)),
}


@pytest.mark.parametrize("now", list(STREAM_CASES))
def test_stream_latency(now: str, month_lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    day, week, month = STREAM_CASES[now]
    _, objectives = slo_json(month_lake, capsys, "--now", now)
    stream = objectives["stream_latency"]
    assert stream["state"] == "met"  # 28d: at most 4 slow of 672 against 6.72 allowed
    assert budgets(stream) == {
        7: (*week, pytest.approx(1.68)),
        28: (*month, pytest.approx(6.72)),
    }
    assert burns(stream) == {
        "fast": (*day, pytest.approx(day[1] / day[0] / 0.01), False),
        "slow": (*week, pytest.approx(week[1] / week[0] / 0.01), False),
    }


def test_burn_rate_results_for_the_alerts(month_lake: Path, spark: SparkSession) -> None:
    config = load_config(LOCAL_CONF, lake=str(month_lake))
    results = {r.spec.label: r for r in burn_rate_results(spark, config, at(31, 10))}
    assert set(results) == {
        "slo.daily_slo_fast_burn",
        "slo.daily_slo_slow_burn",
        "slo.stream_latency_fast_burn",
        "slo.stream_latency_slow_burn",
    }
    fast, slow = results["slo.daily_slo_fast_burn"], results["slo.daily_slo_slow_burn"]
    assert (fast.spec.check, fast.spec.alert, fast.spec.severity, fast.passed) == ("slo_burn", "page", "warn", False)
    assert (fast.observed, fast.threshold, fast.cause) == (pytest.approx(100.0), 14.4, "fast_burn")
    assert fast.sample_keys == ("2026-03-30",)
    assert (slow.spec.alert, slow.passed, slow.cause) == ("ticket", False, "slow_burn")
    assert slow.sample_keys == ("2026-03-30",)
    assert slow.observed == pytest.approx(100 / 7) and slow.threshold == 2
    assert not fast.blocks and "1 of 1 days bad" in fast.detail
    stream_fast, stream_slow = results["slo.stream_latency_fast_burn"], results["slo.stream_latency_slow_burn"]
    assert (stream_fast.passed, stream_fast.observed) == (True, pytest.approx(100 / 24))
    assert (stream_slow.passed, stream_slow.observed) == (True, pytest.approx(200 / 168))  # 2 slow of 168
    assert stream_slow.spec.alert == "ticket"
    # The day before, nothing burns: every result passes (an open alert would resolve).
    assert all(r.passed for r in burn_rate_results(spark, config, at(30, 10)))


def test_slow_stream_breaches_and_pages(spark: SparkSession, tmp_path: Path, capsys: Capture) -> None:
    lake = tmp_path / "lake"
    batches = [at(31, 9, minute) for minute in range(0, 50, 5)]  # 10 batches, 2 slow: 20% > 1%
    rows = [metric_row("stream", "latency_seconds", 6.0 if i < 2 else 0.5, t, i) for i, t in enumerate(batches)]
    write_lake(spark, load_config(LOCAL_CONF, lake=str(lake)), [], rows)
    code, objectives = slo_json(lake, capsys, "--now", "2026-03-31T10:00:00Z")
    stream = objectives["stream_latency"]
    assert code == 1
    assert stream["state"] == "breached" and stream["failing"]
    assert budgets(stream) == {7: (10, 2, pytest.approx(0.1)), 28: (10, 2, pytest.approx(0.1))}
    assert burns(stream) == {"fast": (10, 2, pytest.approx(20.0), True), "slow": (10, 2, pytest.approx(20.0), True)}
    assert objectives["daily_slo"]["state"] == objectives["daily_sla"]["state"] == "no data"

    # Scheduled with --alert, the burn pages once (one open alert per burn, the fast one a page).
    for _ in range(2):
        assert slo(lake, capsys, "--now", "2026-03-31T10:00:00Z", "--alert")[0] == 1
    alerts = spark.read.format("delta").load(str(lake / "alert_state")).collect()
    opened = {(a.check_name, a.level, a.state, a.occurrences) for a in alerts}
    assert opened == {
        ("stream_latency_fast_burn", "page", "open", 2),
        ("stream_latency_slow_burn", "ticket", "open", 2),
    }


def test_new_lake_has_no_data_and_passes(spark: SparkSession, tmp_path: Path, capsys: Capture) -> None:
    code, out = slo(tmp_path / "lake", capsys, "--now", "2026-03-31T10:00:00Z")
    assert code == 0
    assert out.splitlines() == [
        "slo at 2026-03-31T10:00:00Z: OK",
        "daily_sla (published by 09:00 UTC on D+1): no data - no daily run recorded yet",
        "daily_slo (published by 08:30 UTC on D+1 on 99% of days): no data - no daily run recorded yet",
        "stream_latency (p95 latency <= 5s on 99% of micro-batches): no data - no micro-batch in the last 28 days",
    ]


@pytest.mark.parametrize("days", ["0", "367", "x"])
def test_bad_days_is_a_usage_error(days: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["slo", "--days", days])
    assert exit_info.value.code == 2
    assert "--days" in capsys.readouterr().err


def test_slo_burn_is_not_declared_under_quality() -> None:
    with pytest.raises(ConfigError, match="slo_burn checks come from the slo section"):
        QualityConfig(daily=[{"name": "burn", "check": "slo_burn"}])
