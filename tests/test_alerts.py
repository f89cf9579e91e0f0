"""Alerts: failing check results grouped into one alert per cause, sent once to the SNS topic of
their level (moto's SNS, each topic drained through a subscribed SQS queue), updated while open,
resolved when the check passes, reopened when it fails again; exact ``alert_state`` rows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import uuid
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipments.config import Config
from shipments.devtools.kafka_broker import free_port
from shipments.model.tables import ALERT_STATE, ALERT_STATE_SCHEMA
from shipments.observe.alerts import RUNBOOKS, AlertOutcome, default_runbook, open_alerts, process_alerts
from shipments.ops_config import CHECK_TABLES, AlertsConfig, CheckSpec
from shipments.quality.results import CheckResult
from shipments.storage import delta
from tests.cloud_fixtures import REGION, Moto, aws_env_fixture, moto_fixture  # noqa: F401

pytestmark = pytest.mark.usefixtures("aws_env")

D = dt.date
NOV2 = D(2026, 11, 2)
SCHEMA = CheckSpec(name="schema", check="schema", severity="fail", runbook="Fix the files, rerun daily for D.")
VOLUME = CheckSpec(name="volume", check="volume", severity="warn", alert="page", runbook="Ask the source.")
INVALID = CheckSpec(name="invalid_share_high", check="invalid_share", max=0.1, severity="warn", alert="ticket")
NO_SHIPMENTS = CheckSpec(name="no_shipments", check="min_rows", min=1, severity="warn")  # alert: log
DLQ = CheckSpec(name="dlq_share", check="dlq_share", max=0.2, severity="warn", alert="page", runbook="Read the DLQ.")


def fingerprint(table: str, check: str, cause: str) -> str:
    return hashlib.sha256(json.dumps([table, check, cause]).encode()).hexdigest()


SCHEMA_FP = fingerprint("shipments", "schema", "vanished:created_at")


def failed(
    spec: CheckSpec, cause: str, run_date: D | None = NOV2, keys: tuple[str, ...] = (), detail: str = ""
) -> CheckResult:
    return CheckResult(spec, False, 1.0, 0.0, detail, cause, keys, run_date)


def passed(spec: CheckSpec, run_date: D | None = NOV2) -> CheckResult:
    return CheckResult(spec, True, 0.0, 0.0, "ok", "", (), run_date)


# --------------------------------------------------------------------------- SNS -> SQS inbox


@dataclasses.dataclass
class Inbox:
    """A page and a ticket topic in moto's SNS, each with an SQS queue subscribed."""

    moto: Moto
    topics: dict[str, str]
    queues: dict[str, str]

    def take(self, level: str) -> list[tuple[str, dict[str, Any]]]:
        """Everything that arrived on ``level``'s topic since the last take: (subject, message)."""
        sqs = self.moto.client("sqs")
        found = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queues[level], MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = batch.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                envelope = json.loads(message["Body"])
                found.append((envelope["Subject"], json.loads(envelope["Message"])))
                sqs.delete_message(QueueUrl=self.queues[level], ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def inbox(moto: Moto) -> Inbox:
    sns, sqs = moto.client("sns"), moto.client("sqs")
    suffix = uuid.uuid4().hex[:8]
    topics, queues = {}, {}
    for level in ("page", "ticket"):
        topics[level] = sns.create_topic(Name=f"{level}-{suffix}")["TopicArn"]
        queues[level] = sqs.create_queue(QueueName=f"{level}-{suffix}")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=queues[level], AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topics[level], Protocol="sqs", Endpoint=attributes["Attributes"]["QueueArn"])
    return Inbox(moto, topics, queues)


def alerts_to(config: Config, inbox: Inbox, *, endpoint_url: str | None = None, page: bool = True) -> Config:
    settings = AlertsConfig(
        page_topic=inbox.topics["page"] if page else "",
        ticket_topic=inbox.topics["ticket"],
        region=REGION,
        endpoint_url=endpoint_url or inbox.moto.endpoint_url,
        samples=5,
    )
    return dataclasses.replace(config, alerts=settings)


@pytest.fixture
def alerting(config: Config, inbox: Inbox) -> Config:
    return alerts_to(config, inbox)


TIMES = ("first_seen", "last_seen", "notified_at", "resolved_at")


def state_rows(spark: SparkSession, config: Config) -> list[dict[str, Any]]:
    """``alert_state`` by fingerprint; times as UTC datetimes."""
    table = delta.read_table(spark, config, ALERT_STATE)
    assert table is not None
    columns = [F.unix_micros(c).alias(c) if c in TIMES else F.col(c) for c in ALERT_STATE_SCHEMA.names]
    rows = [row.asDict() for row in table.select(*columns).orderBy("fingerprint").collect()]
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    for row in rows:
        for name in TIMES:
            row[name] = None if row[name] is None else epoch + dt.timedelta(microseconds=row[name])
    return rows


def without_times(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in TIMES}


# --------------------------------------------------------------------------- lifecycle


def test_a_failure_pages_once_resolves_when_the_check_passes_and_pages_again_when_it_fails_again(
    spark: SparkSession, alerting: Config, inbox: Inbox
) -> None:
    failure = failed(SCHEMA, "vanished:created_at", keys=("a.jsonl", "b.jsonl"), detail="created_at gone from 2 files")
    before = dt.datetime.now(dt.UTC)

    first = process_alerts(spark, alerting, [failure, passed(VOLUME)], job="daily", run_id="daily-1")

    [(subject, message)] = inbox.take("page")
    assert inbox.take("ticket") == []
    assert subject == "[PAGE] shipments.schema failed: vanished:created_at (2026-11-02)"
    summary = "shipments.schema (schema, fail) failed on 2026-11-02: created_at gone from 2 files"
    [row] = state_rows(spark, alerting)
    assert message == {
        "state": "open",
        "level": "page",
        "severity": "fail",
        "fingerprint": SCHEMA_FP,
        "job": "daily",
        "run_id": "daily-1",
        "table": "shipments",
        "check": "schema",
        "cause": "vanished:created_at",
        "summary": summary,
        "affected_dates": ["2026-11-02"],
        "sample_keys": ["a.jsonl", "b.jsonl"],
        "sample_count": 2,
        "occurrences": 1,
        "first_seen": row["first_seen"].isoformat(),
        "runbook": "Fix the files, rerun daily for D.",
    }
    opened = {
        "fingerprint": SCHEMA_FP,
        "state": "open",
        "level": "page",
        "job": "daily",
        "table_name": "shipments",
        "check_name": "schema",
        "cause": "vanished:created_at",
        "summary": summary,
        "runbook": "Fix the files, rerun daily for D.",
        "affected_dates": [NOV2],
        "sample_keys": ["a.jsonl", "b.jsonl"],
        "occurrences": 1,
        "last_run_id": "daily-1",
    }
    assert without_times(row) == opened
    assert before <= row["first_seen"] == row["last_seen"] <= row["notified_at"]
    assert row["resolved_at"] is None
    [raised] = first.raised
    assert (raised.fingerprint, raised.new, raised.notified_at) == (SCHEMA_FP, True, row["notified_at"])
    assert (first.still_open, first.resolved) == ((), ())

    # A rerun of the same day with the same failure: nobody is paged again.
    second = process_alerts(spark, alerting, [failure], job="daily", run_id="daily-2")

    assert inbox.take("page") == []
    [again] = state_rows(spark, alerting)
    assert without_times(again) == {**opened, "occurrences": 2, "last_run_id": "daily-2"}
    assert (again["first_seen"], again["notified_at"]) == (row["first_seen"], row["notified_at"])
    assert again["last_seen"] > row["last_seen"]
    assert second.raised == ()
    assert [(a.fingerprint, a.new, a.occurrences) for a in second.still_open] == [(SCHEMA_FP, False, 2)]
    assert [a.fingerprint for a in open_alerts(spark, alerting)] == [SCHEMA_FP]

    # The check passes: the alert resolves, and the page topic hears it.
    third = process_alerts(spark, alerting, [passed(SCHEMA)], job="daily", run_id="daily-3")

    assert third == AlertOutcome(resolved=(SCHEMA_FP,))
    [(subject, message)] = inbox.take("page")
    assert subject == "[RESOLVED] shipments.schema: vanished:created_at"
    [resolved] = state_rows(spark, alerting)
    assert message == {
        "state": "resolved",
        "level": "page",
        "fingerprint": SCHEMA_FP,
        "job": "daily",
        "run_id": "daily-3",
        "table": "shipments",
        "check": "schema",
        "cause": "vanished:created_at",
        "summary": f"shipments.schema passes again; it failed on: {summary}",
        "affected_dates": ["2026-11-02"],
        "first_seen": row["first_seen"].isoformat(),
        "resolved_at": resolved["resolved_at"].isoformat(),
    }
    assert without_times(resolved) == {**opened, "state": "resolved", "occurrences": 2, "last_run_id": "daily-3"}
    assert (resolved["last_seen"], resolved["notified_at"]) == (again["last_seen"], again["notified_at"])
    assert resolved["resolved_at"] > again["last_seen"]
    assert open_alerts(spark, alerting) == []

    # It fails again: a new incident, paged again.
    fourth = process_alerts(spark, alerting, [failure], job="daily", run_id="daily-4")

    [(subject, message)] = inbox.take("page")
    assert (subject, message["run_id"], message["occurrences"]) == (
        "[PAGE] shipments.schema failed: vanished:created_at (2026-11-02)",
        "daily-4",
        1,
    )
    [reopened] = state_rows(spark, alerting)
    assert without_times(reopened) == {**opened, "last_run_id": "daily-4"}
    assert resolved["resolved_at"] < reopened["first_seen"] == reopened["last_seen"] <= reopened["notified_at"]
    assert reopened["resolved_at"] is None
    assert [(a.fingerprint, a.new) for a in fourth.raised] == [(SCHEMA_FP, True)]


def test_thirty_dates_of_a_backfill_with_one_cause_make_one_alert_naming_the_thirty_dates(
    spark: SparkSession, alerting: Config, inbox: Inbox
) -> None:
    dates = [D(2026, 10, 1) + dt.timedelta(days=i) for i in range(30)]
    results = [failed(VOLUME, "below_baseline", day, detail=f"{100 + i} shipments") for i, day in enumerate(dates)]
    results += [passed(SCHEMA, day) for day in dates]

    outcome = process_alerts(spark, alerting, results, job="backfill", run_id="backfill-1")

    [(subject, message)] = inbox.take("page")
    assert subject == "[PAGE] shipment_daily_totals.volume failed: below_baseline (30 dates)"
    assert message["affected_dates"] == [day.isoformat() for day in dates]
    summary = "shipment_daily_totals.volume (volume, warn) failed on 30 dates, 2026-10-01 .. 2026-10-30: 129 shipments"
    assert (message["summary"], message["occurrences"], message["job"]) == (summary, 30, "backfill")
    [row] = state_rows(spark, alerting)
    assert without_times(row) == {
        "fingerprint": fingerprint("shipment_daily_totals", "volume", "below_baseline"),
        "state": "open",
        "level": "page",
        "job": "backfill",
        "table_name": "shipment_daily_totals",
        "check_name": "volume",
        "cause": "below_baseline",
        "summary": summary,
        "runbook": "Ask the source.",
        "affected_dates": dates,
        "sample_keys": [],
        "occurrences": 30,
        "last_run_id": "backfill-1",
    }
    assert [a.affected_dates for a in outcome.raised] == [tuple(dates)]

    # A later daily run on one more date adds it to the same open alert, silently.
    process_alerts(spark, alerting, [failed(VOLUME, "below_baseline", D(2026, 10, 31))], job="daily", run_id="d-1")

    assert inbox.take("page") == []
    [row] = state_rows(spark, alerting)
    assert (row["affected_dates"], row["occurrences"]) == ([*dates, D(2026, 10, 31)], 31)


@pytest.mark.parametrize(
    "shape",
    ["one result naming 100 files", "100 micro-batches with the same cause"],
)
def test_a_hundred_failing_keys_make_one_alert_with_a_sample_and_the_count(
    spark: SparkSession, alerting: Config, inbox: Inbox, shape: str
) -> None:
    keys = tuple(f"part-{i:03d}.jsonl" for i in range(100))
    if shape == "one result naming 100 files":
        spec, table, results = SCHEMA, "shipments", [failed(SCHEMA, "vanished:created_at", keys=keys)]
        dates = ["2026-11-02"]
    else:
        spec, table, results = DLQ, "shipment_status", [failed(DLQ, "dlq_burst", None, keys=(key,)) for key in keys]
        dates = []

    process_alerts(spark, alerting, results, job="stream", run_id="run-1")

    [(_, message)] = inbox.take("page")
    assert (message["sample_keys"], message["sample_count"]) == (list(keys[:5]), 100)
    assert (message["check"], message["affected_dates"]) == (spec.name, dates)
    assert message["summary"].endswith("[100 failing keys, 5 shown]")
    [row] = state_rows(spark, alerting)
    assert (row["table_name"], row["sample_keys"], row["occurrences"]) == (table, list(keys[:5]), len(results))


def test_ticket_alerts_go_to_the_ticket_topic_and_log_alerts_only_to_the_log(
    spark: SparkSession, alerting: Config, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    results = [failed(INVALID, "top_reason:bad_timestamp"), failed(NO_SHIPMENTS, "no_rows")]

    with caplog.at_level(logging.INFO, logger="shipments.observe.alerts"):
        outcome = process_alerts(spark, alerting, results, job="daily", run_id="daily-1")

    assert inbox.take("page") == []
    [(subject, message)] = inbox.take("ticket")
    assert subject == "[TICKET] shipments.invalid_share_high failed: top_reason:bad_timestamp (2026-11-02)"
    assert (message["level"], message["check"]) == ("ticket", INVALID.name)
    assert message["runbook"].startswith("Too many invalid records: read the reasons in quarantine/shipments")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("ALERT [log] shipment_daily_totals.no_shipments (no_rows): ")
    assert "next step: Too few shipments for D" in warnings[0]
    assert sorted((a.check, a.level, a.new) for a in outcome.raised) == [
        ("invalid_share_high", "ticket", True),
        ("no_shipments", "log", True),
    ]
    assert sorted((r["check_name"], r["level"], r["notified_at"] is not None) for r in state_rows(spark, alerting)) == [
        ("invalid_share_high", "ticket", True),
        ("no_shipments", "log", True),
    ]


def test_a_page_without_a_page_topic_is_logged(
    spark: SparkSession, config: Config, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="shipments.observe.alerts"):
        outcome = process_alerts(
            spark, alerts_to(config, inbox, page=False), [failed(SCHEMA, "vanished:id")], job="daily", run_id="d-1"
        )

    assert (inbox.take("page"), inbox.take("ticket")) == ([], [])
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith("ALERT [page] shipments.schema (vanished:id): ")
    assert [a.new for a in outcome.raised] == [True]


def test_sns_unreachable_never_fails_the_run_and_the_next_call_notifies(
    spark: SparkSession, config: Config, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = alerts_to(config, inbox, endpoint_url=f"http://127.0.0.1:{free_port()}")
    failure = failed(SCHEMA, "vanished:created_at", keys=("a.jsonl",))

    with caplog.at_level(logging.WARNING, logger="shipments.observe.alerts"):
        down = process_alerts(spark, unreachable, [failure], job="daily", run_id="daily-1")

    assert down.raised == ()
    assert [(a.fingerprint, a.new, a.notified_at) for a in down.still_open] == [(SCHEMA_FP, False, None)]
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(
        f"alert shipments.schema (vanished:created_at) not sent to {unreachable.alerts.page_topic}: "
    )
    [row] = state_rows(spark, config)
    assert (row["state"], row["occurrences"], row["notified_at"]) == ("open", 1, None)

    back = process_alerts(spark, alerts_to(config, inbox), [failure], job="daily", run_id="daily-2")

    [(_, message)] = inbox.take("page")
    assert (message["fingerprint"], message["occurrences"], message["run_id"]) == (SCHEMA_FP, 2, "daily-2")
    [row] = state_rows(spark, config)
    assert (row["state"], row["occurrences"], row["last_run_id"]) == ("open", 2, "daily-2")
    assert row["notified_at"] is not None
    assert [(a.fingerprint, a.new) for a in back.raised] == [(SCHEMA_FP, True)]


def test_a_call_with_nothing_failing_and_nothing_open_writes_nothing(spark: SparkSession, alerting: Config) -> None:
    assert process_alerts(spark, alerting, [], job="daily", run_id="d-1") == AlertOutcome()
    assert process_alerts(spark, alerting, [passed(SCHEMA)], job="daily", run_id="d-2") == AlertOutcome()
    assert delta.read_table(spark, alerting, ALERT_STATE) is None


# --------------------------------------------------------------------------- pure parts


def test_every_check_kind_has_its_own_runbook() -> None:
    assert set(CHECK_TABLES) <= set(RUNBOOKS)
    rule = CheckSpec(name="charge_ok", check="range", table="shipment_daily_totals", column="total_charge_usd", min=0)
    assert "Compare the sample keys' total_charge_usd with min 0:" in default_runbook(rule)
    assert default_runbook(dataclasses.replace(SCHEMA, runbook="")) == RUNBOOKS["schema"]


def test_a_long_cause_keeps_the_subject_under_100_ascii_characters(
    spark: SparkSession, alerting: Config, inbox: Inbox
) -> None:
    process_alerts(spark, alerting, [failed(SCHEMA, "vanished:" + "é" * 150)], job="daily", run_id="d-1")

    [(subject, _)] = inbox.take("page")
    assert len(subject) == 99
    assert subject.startswith("[PAGE] shipments.schema failed: vanished:???")
    assert subject.endswith("... (2026-11-02)")


def test_merge_upsert_replaces_only_rows_the_condition_allows(spark: SparkSession, config: Config) -> None:
    delta.ensure_table(spark, config, ALERT_STATE)
    path = ALERT_STATE.path(config)
    now = dt.datetime(2026, 11, 2, 6, 0, tzinfo=dt.UTC)

    def row(key: str, summary: str, ok: bool) -> tuple[Any, ...]:
        values = (key, "open", "log", "daily", "t", "c", "x", summary, "r", [], [], 1, now, now, None, None, "run")
        return (*values, ok)

    schema = T.StructType([*ALERT_STATE_SCHEMA.fields, T.StructField("ok", T.BooleanType())])
    columns = ALERT_STATE_SCHEMA.names
    first = spark.createDataFrame([row("a", "one", True), row("b", "one", True)], schema)
    assert delta.merge_upsert(first, path, key="fingerprint", columns=columns, replace_when="s.ok", note="n1") == 2
    second = spark.createDataFrame([row("a", "two", False), row("b", "two", True), row("c", "two", False)], schema)
    assert delta.merge_upsert(second, path, key="fingerprint", columns=columns, replace_when="s.ok", note="n2") == 2
    assert [(r["fingerprint"], r["summary"]) for r in state_rows(spark, config)] == [
        ("a", "one"),
        ("b", "two"),
        ("c", "two"),
    ]
