"""``shipments report --out FILE.html``: one self-contained HTML page on how the pipeline is doing.

Read from the lake, for the run dates of the last ``--days`` days:

- ``#chart-volume``: shipments kept per run date (the last successful daily run) against the
  baseline the volume check uses, the median of the same weekday over the trailing weeks;
- ``#chart-quarantine``: the share of records read that were quarantined, stacked by reason
  (``pipeline_runs.quarantine_reasons``);
- ``#chart-freshness``: when each date was published, in hours after the day ended, against the
  SLO and SLA deadlines (``observe.slo``);
- ``#chart-durations``: how long each run took, per job, failed runs marked;
- ``#alerts``: the open alerts (``alert_state``), ``#slo-summary``: the objectives now.

The charts are plotly figures; plotly.js is inlined once (the first chart), so the page needs no
network to be read. Every text that comes from the data is HTML-escaped, in the page and in the
charts' labels (plotly renders entities as text). A missing table shows as "no data yet".
Writes only the file (atomically: written beside it, then renamed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import os
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]
from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

from shipments.batch.ledger import FAILED, SUCCEEDED, utc_now
from shipments.config import Config
from shipments.errors import EXIT_OK
from shipments.model.tables import PIPELINE_RUNS
from shipments.observe.alerts import Alert, open_alerts
from shipments.observe.slo import (
    DAILY_JOB,
    DAY_LATE,
    DAY_MET,
    DAY_MISSED,
    Objective,
    Publications,
    deadline,
    evaluate,
    from_micros,
    iso,
    judge_day,
    publication_range,
    read_publications,
)
from shipments.ops_config import CheckSpec
from shipments.storage import delta

NO_DATA = "no data yet"
CHART_HEIGHT = 380
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
_COLORS = {"ok": "#2e7d32", "warn": "#ef6c00", "bad": "#c62828", "bars": "#1565c0", "line": "#6a1b9a"}
_LEVELS = ("page", "ticket", "log")


@dataclasses.dataclass(frozen=True)
class ReportRequest:
    """``shipments report --out FILE.html [--days N] [--now T]``."""

    out: Path
    days: int = 28
    now: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class ReportResult:
    out: Path
    start: dt.date
    end: dt.date
    run_dates: int
    open_alerts: int
    size_bytes: int
    exit_code: int = EXIT_OK

    def summary(self) -> str:
        return (
            f"report {self.start}..{self.end}: wrote {self.out} ({self.size_bytes // 1024} KiB); "
            f"dates published: {self.run_dates}; open alerts: {self.open_alerts}"
        )


# --------------------------------------------------------------------------- reads


@dataclasses.dataclass(frozen=True)
class DayRun:
    """The last successful daily run of a date: what it read, kept and quarantined (by reason)."""

    run_date: dt.date
    rows_read: int | None  # None: not recorded
    rows_kept: int | None
    reasons: Mapping[str, int]


@dataclasses.dataclass(frozen=True)
class RunPoint:
    job: str
    run_date: dt.date | None
    status: str
    started_at: dt.datetime
    seconds: float


def read_day_runs(spark: SparkSession, config: Config, start: dt.date, end: dt.date) -> dict[dt.date, DayRun]:
    """The last successful daily run of each date in ``start..end`` (one row per date)."""
    runs = delta.read_table(spark, config, PIPELINE_RUNS)
    if runs is None:
        return {}
    latest = Window.partitionBy("run_date").orderBy(F.col("started_at").desc(), F.col("ended_at").desc())
    rows = (
        runs.filter(
            (F.col("job") == F.lit(DAILY_JOB))
            & (F.col("status") == F.lit(SUCCEEDED))
            & F.col("run_date").between(F.lit(start), F.lit(end))
        )
        .withColumn("newest", F.row_number().over(latest))
        .filter(F.col("newest") == 1)
        .select("run_date", "rows_read", "rows_kept", "rows_quarantined", "quarantine_reasons")
        .collect()
    )
    return {
        row["run_date"]: DayRun(
            row["run_date"],
            row["rows_read"],
            row["rows_kept"],
            _reasons(row["quarantine_reasons"], row["rows_quarantined"]),
        )
        for row in rows
    }


def _reasons(text: str | None, quarantined: int | None) -> dict[str, int]:
    """``quarantine_reasons`` (a JSON object reason -> count); a run recorded before reasons were
    kept (null) shows its quarantined total as one unnamed reason."""
    reasons: dict[str, int] = {}
    if text:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            reasons = {str(k): int(v) for k, v in parsed.items() if isinstance(v, int | float) and v > 0}
    if not reasons and quarantined:
        reasons = {"(reason not recorded)": int(quarantined)}
    return reasons


def read_run_points(spark: SparkSession, config: Config, since: dt.datetime, now: dt.datetime) -> list[RunPoint]:
    """Every run that started in ``(since, now]``: its job, date, status and duration."""
    runs = delta.read_table(spark, config, PIPELINE_RUNS)
    if runs is None:
        return []
    started, ended = F.unix_micros("started_at"), F.unix_micros("ended_at")
    rows = (
        runs.filter((F.col("started_at") > F.lit(since)) & (F.col("started_at") <= F.lit(now)))
        .select(
            "job",
            "run_date",
            "status",
            started.alias("started_us"),
            ((ended - started) / F.lit(1_000_000)).alias("seconds"),
        )
        .orderBy("started_us")
        .collect()
    )
    return [
        RunPoint(row["job"], row["run_date"], row["status"], from_micros(int(row["started_us"])), float(row["seconds"]))
        for row in rows
    ]


# --------------------------------------------------------------------------- charts


def _figure(title: str, y_title: str) -> Any:
    figure = go.Figure()
    figure.update_layout(
        title=title,
        template="plotly_white",
        height=CHART_HEIGHT,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        yaxis_title=y_title,
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def _no_data(figure: Any, text: str = NO_DATA) -> Any:
    figure.add_annotation(
        text=html.escape(text), xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font={"size": 18}
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def baseline_settings(config: Config) -> tuple[int, int]:
    """(weeks, min_history) of the configured volume check, else a volume check's defaults."""
    volume = next((c for c in config.quality.daily if c.check == "volume"), None)
    spec = volume or CheckSpec(name="volume", check="volume")
    return spec.weeks, max(1, spec.min_history)


def same_weekday_baseline(kept: Mapping[dt.date, int], day: dt.date, weeks: int, min_history: int) -> float | None:
    """The median of the same weekday's values over the ``weeks`` weeks before ``day``."""
    history = [kept[d] for d in (day - dt.timedelta(weeks=w) for w in range(1, weeks + 1)) if d in kept]
    return float(statistics.median(history)) if len(history) >= min_history else None


def volume_chart(day_runs: Mapping[dt.date, DayRun], dates: Sequence[dt.date], config: Config) -> Any:
    figure = _figure("Daily volume: shipments kept per run date", "shipments")
    kept = {d: run.rows_kept for d, run in day_runs.items() if run.rows_kept is not None}
    shown = [d for d in dates if d in kept]
    if not shown:
        return _no_data(figure)
    weeks, min_history = baseline_settings(config)
    x = [d.isoformat() for d in shown]
    name = "rows kept (last successful run)"
    figure.add_bar(x=x, y=[kept[d] for d in shown], name=name, marker_color=_COLORS["bars"])
    baseline = [same_weekday_baseline(kept, d, weeks, min_history) for d in shown]
    figure.add_scatter(
        x=x,
        y=baseline,
        mode="lines+markers",
        name=f"baseline: same-weekday median of {weeks} weeks",
        line={"color": _COLORS["line"], "dash": "dash"},
    )
    figure.update_xaxes(type="date")
    return figure


def quarantine_chart(day_runs: Mapping[dt.date, DayRun], dates: Sequence[dt.date]) -> Any:
    figure = _figure("Quarantine rate by reason", "% of records read")
    read = {d: run.rows_read for d, run in day_runs.items() if run.rows_read}
    shown = [d for d in dates if d in read]
    if not shown:
        return _no_data(figure)
    totals: dict[str, int] = {}
    for d in shown:
        for reason, count in day_runs[d].reasons.items():
            totals[reason] = totals.get(reason, 0) + count
    if not totals:
        return _no_data(figure, "no records quarantined")
    x = [d.isoformat() for d in shown]
    for reason in sorted(totals, key=lambda r: (-totals[r], r)):
        rates = [100.0 * day_runs[d].reasons.get(reason, 0) / read[d] for d in shown]
        figure.add_bar(x=x, y=rates, name=html.escape(reason))
    figure.update_layout(barmode="stack")
    figure.update_xaxes(type="date")
    return figure


def _hours_after_day(run_date: dt.date, instant: dt.datetime) -> float:
    day_end = dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time(), dt.UTC)
    return (instant - day_end).total_seconds() / 3600


def freshness_chart(publications: Publications, dates: Sequence[dt.date], config: Config, now: dt.datetime) -> Any:
    slo = config.slo
    figure = _figure("Freshness: published, hours after the day ended (UTC)", "hours after the day ended")
    first = publications.first_date
    due = now.date() - dt.timedelta(days=slo.daily_offset_days)
    judged = [d for d in dates if first is not None and first <= d <= due]
    if not judged:
        return _no_data(figure)
    offset = slo.daily_offset_days
    # The same for every date: the deadlines are clock times a fixed number of days after D.
    sla_hours = _hours_after_day(judged[0], deadline(judged[0], slo.daily_sla, offset))
    slo_hours = _hours_after_day(judged[0], deadline(judged[0], slo.daily_slo, offset))
    published_x, published_y, colors, missed_x = [], [], [], []
    for d in judged:
        by_slo = judge_day(d, publications, slo.daily_slo, offset, now)
        by_sla = judge_day(d, publications, slo.daily_sla, offset, now)
        if by_slo.published_at is not None:
            published_x.append(d.isoformat())
            published_y.append(_hours_after_day(d, by_slo.published_at))
            on_time = by_slo.state == DAY_MET
            colors.append(_COLORS["ok"] if on_time else _COLORS["warn"] if by_sla.state != DAY_LATE else _COLORS["bad"])
        elif by_sla.state == DAY_MISSED:
            missed_x.append(d.isoformat())
    if published_x:
        figure.add_bar(x=published_x, y=published_y, name="published", marker_color=colors)
    if missed_x:
        figure.add_scatter(
            x=missed_x,
            y=[sla_hours] * len(missed_x),
            mode="markers",
            name="not published by the SLA",
            marker={"symbol": "x", "size": 12, "color": _COLORS["bad"]},
        )
    # The deadlines as line traces, named in the legend (two labels half an hour apart collide).
    ends = [judged[0].isoformat(), judged[-1].isoformat()]
    for name, hours, dash, color in (
        (f"SLO {slo.daily_slo} UTC", slo_hours, "dash", _COLORS["warn"]),
        (f"SLA {slo.daily_sla} UTC", sla_hours, "dot", _COLORS["bad"]),
    ):
        figure.add_scatter(x=ends, y=[hours, hours], mode="lines", name=name, line={"dash": dash, "color": color})
    figure.update_xaxes(type="date")
    return figure


def durations_chart(points: Sequence[RunPoint]) -> Any:
    figure = _figure("Run durations", "minutes")
    if not points:
        return _no_data(figure)
    for job in sorted({p.job for p in points}):
        runs = [p for p in points if p.job == job and p.status != FAILED]
        if runs:
            figure.add_scatter(
                x=[iso(p.started_at) for p in runs],
                y=[p.seconds / 60 for p in runs],
                mode="markers",
                name=html.escape(job),
                text=[html.escape(f"{job} {p.run_date or ''} {p.status}") for p in runs],
            )
    failed = [p for p in points if p.status == FAILED]
    if failed:
        figure.add_scatter(
            x=[iso(p.started_at) for p in failed],
            y=[p.seconds / 60 for p in failed],
            mode="markers",
            name="failed",
            marker={"symbol": "x", "size": 10, "color": _COLORS["bad"]},
            text=[html.escape(f"{p.job} {p.run_date or ''} FAILED") for p in failed],
        )
    figure.update_xaxes(type="date")
    figure.update_yaxes(rangemode="tozero")
    return figure


# --------------------------------------------------------------------------- page


def _chart_section(key: str, figure: Any, *, first: bool) -> str:
    div = figure.to_html(
        full_html=False,
        include_plotlyjs=first,  # inlined once: the page reads offline
        include_mathjax=False,
        div_id=f"plot-{key}",
        config=_PLOT_CONFIG,
        default_height=f"{CHART_HEIGHT}px",
    )
    return f'<section id="chart-{key}" class="chart">\n{div}\n</section>'


def alerts_table(alerts: Sequence[Alert]) -> str:
    if not alerts:
        return '<p class="none">no open alerts</p>'
    head = ("level", "check", "cause", "summary", "affected dates", "occurrences", "first seen", "last seen")
    rows = []
    for a in alerts:
        dates = ", ".join(d.isoformat() for d in a.affected_dates[:10]) + (" ..." if len(a.affected_dates) > 10 else "")
        cells = (
            a.level,
            a.label,
            a.cause,
            a.summary,
            dates,
            str(a.occurrences),
            iso(a.first_seen),
            iso(a.last_seen),
        )
        level = a.level if a.level in _LEVELS else "log"
        rows.append(f'<tr class="{level}">' + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "\n".join(rows)
    return f'<table id="open-alerts">\n<thead><tr>{header}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'


def _slo_list(objectives: Sequence[Objective]) -> str:
    items = []
    for o in objectives:
        state = "failing" if o.failing else o.state.replace(" ", "-")
        rest = o.line().removeprefix(o.name)
        items.append(f'<li class="{state}"><strong>{html.escape(o.name)}</strong>{html.escape(rest)}</li>')
    return "<ul>\n" + "\n".join(items) + "\n</ul>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
section { margin-bottom: 2em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
tr.page td:first-child, li.failing, li.breached { color: #c62828; font-weight: bold; }
tr.ticket td:first-child, li.at-risk { color: #ef6c00; }
"""


def render_page(
    *,
    config: Config,
    now: dt.datetime,
    start: dt.date,
    end: dt.date,
    charts: Sequence[tuple[str, str, Any]],
    alerts: Sequence[Alert],
    objectives: Sequence[Objective],
) -> str:
    """The whole page: ``charts`` are (key, heading, figure), plotly.js inlined in the first."""
    sections = [
        f"<h2>{html.escape(heading)}</h2>\n" + _chart_section(key, figure, first=i == 0)
        for i, (key, heading, figure) in enumerate(charts)
    ]
    title = "Shipments pipeline report"
    context = f"run dates {start} to {end}, generated {iso(now)}, environment {config.metrics.environment}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            '<head>\n<meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_STYLE}</style>\n</head>\n<body>",
            f"<h1>{html.escape(title)}</h1>",
            f"<p>{html.escape(context)}</p>",
            f'<section id="slo-summary">\n<h2>Service levels</h2>\n{_slo_list(objectives)}\n</section>',
            *sections,
            f'<section id="alerts">\n<h2>Open alerts</h2>\n{alerts_table(alerts)}\n</section>',
            "</body>\n</html>\n",
        ]
    )


def _write_atomically(out: Path, text: str) -> int:
    data = text.encode("utf-8")
    with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", delete=False) as handle:
        handle.write(data)
    os.replace(handle.name, out)
    return len(data)


def run_report(spark: SparkSession, config: Config, request: ReportRequest) -> ReportResult:
    """Read the ledger, the alerts and the service levels; write the page to ``request.out``."""
    now = (request.now or utc_now()).astimezone(dt.UTC)
    end = now.date()
    start = end - dt.timedelta(days=request.days - 1)
    dates = [start + dt.timedelta(days=i) for i in range(request.days)]
    weeks, _ = baseline_settings(config)
    day_runs = read_day_runs(spark, config, start - dt.timedelta(weeks=weeks), end)
    # read once for the freshness chart and the objectives (the range covers start..due)
    publications = read_publications(spark, config, *publication_range(config.slo, now, request.days))
    points = read_run_points(spark, config, now - dt.timedelta(days=request.days), now)
    alerts = open_alerts(spark, config)
    objectives = evaluate(spark, config, now, request.days, publications)
    charts = [
        ("volume", "Daily volume", volume_chart(day_runs, dates, config)),
        ("quarantine", "Quarantine", quarantine_chart(day_runs, dates)),
        ("freshness", "Freshness against the SLO", freshness_chart(publications, dates, config, now)),
        ("durations", "Run durations", durations_chart(points)),
    ]
    page = render_page(
        config=config, now=now, start=start, end=end, charts=charts, alerts=alerts, objectives=objectives
    )
    size = _write_atomically(request.out, page)
    published = sum(1 for d in dates if d in day_runs)
    return ReportResult(request.out, start, end, published, len(alerts), size)
