"""Alerts people act on: failing check results grouped into one alert per cause, remembered in
``alert_state``, sent once to whom the check's alert level names, resolved when the check passes.

- **Fingerprint**: sha256 of (table, check name, cause), never a date, a count or a file name.
  Thirty dates of a backfill failing for one reason, or a hundred files missing the same field,
  make one alert that names the dates and shows a sample of the keys.
- **Lifecycle** (one ``alert_state`` row per fingerprint): a failure without an open alert opens
  one (or reopens a resolved one) and notifies; a failure of an open alert updates it (last_seen,
  occurrences, the union of its dates, samples up to ``alerts.samples``) and notifies nobody; a
  passing result of the same check (table + check name) resolves the check's open alerts, except
  one the same call also fails with its cause.
- **Routing**: page and ticket alerts are published to the level's SNS topic (``alerts.page_topic``,
  ``alerts.ticket_topic``), and their resolution too; a level without a topic, and ``log``, write
  one WARNING line instead. A notification SNS does not take is logged and leaves ``notified_at``
  null: the next call sends it. Delivery is at least once: a run that dies between publishing
  and its commit to ``alert_state`` repeats the notification on the next call.
- **Concurrency**: one read of the open alerts and one MERGE per call. The MERGE replaces a row
  only while it is still as read; when another writer (the stream, a parallel run) changed one
  in between, or the commit conflicts, the call reads again and redoes its plan, without sending
  again what it already sent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipments.batch.retry import is_commit_conflict
from shipments.config import Config
from shipments.errors import describe
from shipments.model.tables import ALERT_STATE, ALERT_STATE_SCHEMA
from shipments.ops_config import AlertsConfig, CheckSpec
from shipments.quality.results import CheckResult
from shipments.storage import delta

log = logging.getLogger(__name__)

OPEN = "open"
RESOLVED = "resolved"
_LEVEL_RANK = {"page": 0, "ticket": 1, "log": 2}
_SEVERITY_RANK = {"fail": 0, "quarantine": 1, "warn": 2}
_MAX_ATTEMPTS = 4
_SUMMARY_CHARS = 1000
_SUBJECT_CHARS = 99  # SNS: "less than 100 characters", ASCII, no line breaks
_SNS_TIMEOUT_SECONDS = 5.0

# The next step of a failed check when its config gives no ``runbook``, by check kind. "D" is each
# affected date the alert names; {name}, {table}, {column}, {columns}, {values}, {bounds} are the
# check's own.
RUNBOOKS: dict[str, str] = {
    "schema": (
        "Compare the named files' fields with the contract (docs/quality.md): a field renamed or dropped "
        "upstream is fixed there, or corrected files are landed again; then rerun `shipments daily --date D` "
        "for each affected date."
    ),
    "not_null": (
        "Look up the sample keys' {column} in {table} (failing records are quarantined with reason "
        "check:{name}); fix the source or its mapping, then rerun `shipments daily --date D` for each "
        "affected date."
    ),
    "accepted_values": (
        "Look at the sample keys' {column} values: a legitimate new value belongs in the check's values "
        "({values}) in the config, bad data is fixed at the source; then rerun `shipments daily --date D` "
        "for each affected date."
    ),
    "range": (
        "Compare the sample keys' {column} with {bounds}: fix the data at the source, or the check's bounds "
        "if the data is right; then rerun `shipments daily --date D` for each affected date."
    ),
    "unique": (
        "More than one row per ({columns}) in {table}: look for two runs of the same date at once and for "
        "duplicate customers in the dimension; then rerun `shipments daily --date D` (it replaces the day) "
        "and check it with `shipments reconcile --date D`."
    ),
    "invalid_share": (
        "Too many invalid records: read the reasons in quarantine/shipments for the affected ingest dates "
        "(the cause names the top one) and the sample files; fix upstream or land corrected files, then "
        "rerun `shipments daily --date D`."
    ),
    "unknown_customers": (
        "Shipments name customers the customer dimension lacks (counted under UNKNOWN): land a current "
        "customer file in the raw zone, then rerun `shipments daily --date D`."
    ),
    "min_rows": (
        "Too few shipments for D: check that D's files landed in the raw zone (and in the right ingest "
        "folder); after late files land, rerun `shipments daily --date D`."
    ),
    "volume": (
        "Confirm with the source whether D's volume really changed (a holiday, an outage, a partial "
        "landing); rerun `shipments daily --date D` after late files land. A lasting change becomes the "
        "baseline after a few weeks."
    ),
    "shrink": (
        "A rerun would replace the published D with far fewer shipments: check the files landed again for "
        "D. If the smaller day is intended, rerun with `shipments daily --date D --allow-shrink`; otherwise "
        "land the complete files and rerun."
    ),
    "dlq_share": (
        "Many events are malformed: read the error column of shipment_status_dlq for the latest batches; "
        "the producer or the topic's schema changed. Fix the producer: the stream keeps running and keeps "
        "every dead letter."
    ),
    "late_share": (
        "Many events arrive later than stream.allowed_lateness: check the producer's backlog and clocks "
        "(late events are kept in shipment_status_late); if this is the new normal, raise "
        "stream.allowed_lateness."
    ),
    "slo_burn": (
        "The error budget burns too fast: run `shipments slo` to see which objective and since when, then "
        "look at the late or failed runs in pipeline_runs (the stream's latency in pipeline_metrics)."
    ),
}
_FALLBACK_RUNBOOK = (
    "Read the check's detail in dq_results for the affected dates, fix the cause, then rerun the job for "
    "each affected date."
)


@dataclasses.dataclass(frozen=True)
class Alert:
    """One alert: the failures of one check on one table for one cause.

    ``check`` is the check's name. ``affected_dates`` are the run dates that failed (none for
    micro-batches), oldest first; ``sample_keys`` at most ``alerts.samples`` failing keys
    (shipment ids, files), ``key_count`` how many this call's results named (for an alert read
    back, how many it keeps). ``new``: notified by this call. ``severity`` is the check's
    (warn / quarantine / fail; '' when the config no longer declares the check).
    ``occurrences`` counts the failing results grouped into it since it opened. Times are UTC.
    """

    fingerprint: str
    level: str
    job: str
    table: str
    check: str
    cause: str
    summary: str
    runbook: str
    affected_dates: tuple[dt.date, ...]
    sample_keys: tuple[str, ...]
    new: bool
    severity: str
    key_count: int
    occurrences: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    notified_at: dt.datetime | None

    @property
    def label(self) -> str:
        """``<table>.<check>``, as results and the log name a check."""
        return f"{self.table}.{self.check}"


@dataclasses.dataclass(frozen=True)
class AlertOutcome:
    """What one ``process_alerts`` call did.

    ``raised``: alerts notified by this call (opened, reopened, or one whose notification an
    earlier call could not deliver). ``still_open``: open alerts this call updated without
    notifying (already notified, or SNS did not take the notification: the next call retries).
    ``resolved``: fingerprints of the alerts this call resolved.
    """

    raised: tuple[Alert, ...] = ()
    still_open: tuple[Alert, ...] = ()
    resolved: tuple[str, ...] = ()


def fingerprint(table: str, check: str, cause: str) -> str:
    """The alert's identity: sha256 (hex) of table, check name and cause, never a date."""
    return hashlib.sha256(json.dumps([table, check, cause]).encode()).hexdigest()


def default_runbook(spec: CheckSpec) -> str:
    """The next step of a failed ``spec`` when its config gives no ``runbook``."""
    bounds = " and ".join(
        f"{word} {value:g}" for word, value in (("min", spec.min), ("max", spec.max)) if value is not None
    )
    return RUNBOOKS.get(spec.check, _FALLBACK_RUNBOOK).format(
        name=spec.name,
        table=spec.table,
        column=spec.column,
        columns=", ".join(spec.columns),
        values=", ".join(spec.values),
        bounds=bounds or "its bounds",
    )


def process_alerts(
    spark: SparkSession, config: Config, results: Sequence[CheckResult], *, job: str, run_id: str
) -> AlertOutcome:
    """Open, update, notify and resolve alerts from check ``results`` (passing and failing).

    Failing results are grouped by ``fingerprint``; see the module's docstring for the rules.
    One read of the open alerts and one MERGE into ``alert_state`` (again only after another
    writer changed a row read, or a commit conflict). Notifications that cannot be delivered
    are logged, never raised.

    Raises:
        TypeError / ValueError: ``results`` are not ``CheckResult``s, ``job`` or ``run_id`` empty
            (caller bugs).
    """
    for name, value in (("job", job), ("run_id", run_id)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"process_alerts: {name} must be a non-empty string, got {value!r}")
    for result in results:
        if not isinstance(result, CheckResult):
            raise TypeError(f"process_alerts needs CheckResults, got {type(result).__name__}")
    failures = _group_failures(results, config.alerts.samples)
    passing = {(r.spec.table, r.spec.name) for r in results if r.passed}
    if not failures and not passing:
        return AlertOutcome()
    now = dt.datetime.now(dt.UTC)
    sender = _Sender(config.alerts)
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        try:
            return _apply(spark, config, failures, passing, sender, job=job, run_id=run_id, now=now)
        except Exception as exc:
            if attempt == _MAX_ATTEMPTS or not (isinstance(exc, _StateMoved) or is_commit_conflict(exc)):
                raise
            delay = random.uniform(0, 0.5 * 2**attempt)
            log.info("alert_state changed under run %s (%s); reading it again in %.1fs", run_id, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # the loop returns or raises


def open_alerts(spark: SparkSession, config: Config) -> list[Alert]:
    """Every open alert, pages first, then tickets, then logs; oldest first within a level."""
    stored = _read_open(spark, config).values()
    return sorted(stored, key=lambda a: (_LEVEL_RANK.get(a.level, 9), a.first_seen, a.fingerprint))


# --------------------------------------------------------------------------- planning (pure)


@dataclasses.dataclass(frozen=True)
class _Failure:
    """This call's failing results of one fingerprint."""

    fingerprint: str
    spec: CheckSpec
    cause: str
    level: str
    severity: str
    dates: tuple[dt.date, ...]
    keys: tuple[str, ...]
    key_count: int
    detail: str
    count: int


def _group_failures(results: Sequence[CheckResult], samples: int) -> dict[str, _Failure]:
    groups: dict[str, list[CheckResult]] = {}
    for result in results:
        if not result.passed:
            key = fingerprint(result.spec.table, result.spec.name, result.cause)
            groups.setdefault(key, []).append(result)
    failures = {}
    for key, group in groups.items():
        keys = _distinct(k for r in group for k in r.sample_keys)
        # The newest date's words describe the alert (a micro-batch has none: the last result).
        latest = max(enumerate(group), key=lambda item: (item[1].run_date or dt.date.min, item[0]))[1]
        failures[key] = _Failure(
            fingerprint=key,
            spec=group[0].spec,
            cause=group[0].cause,
            level=min((r.spec.alert for r in group), key=lambda level: _LEVEL_RANK[level]),
            severity=min((r.spec.severity for r in group), key=lambda severity: _SEVERITY_RANK[severity]),
            dates=tuple(sorted({r.run_date for r in group if r.run_date is not None})),
            keys=keys[:samples],
            key_count=len(keys),
            detail=latest.detail,
            count=len(group),
        )
    return failures


@dataclasses.dataclass(frozen=True)
class _Write:
    """One row this call writes to ``alert_state``, and what to tell whom about it."""

    alert: Alert
    state: str
    resolved_at: dt.datetime | None
    read: Alert | None  # the open row it was computed from; None: the key was absent or resolved
    notify: bool  # send the alert (it was never notified)
    announce: bool  # send its resolution (it had been notified)
    failing: bool  # one of this call's failures


def _plan(
    config: Config,
    failures: dict[str, _Failure],
    passing: set[tuple[str, str]],
    stored: dict[str, Alert],
    *,
    job: str,
    now: dt.datetime,
) -> list[_Write]:
    writes = []
    for failure in failures.values():
        old = stored.get(failure.fingerprint)
        spec = failure.spec
        dates = failure.dates if old is None else tuple(sorted({*old.affected_dates, *failure.dates}))
        keys = failure.keys if old is None else _distinct([*old.sample_keys, *failure.keys])[: config.alerts.samples]
        alert = Alert(
            fingerprint=failure.fingerprint,
            level=failure.level,
            job=job,
            table=spec.table,
            check=spec.name,
            cause=failure.cause,
            summary=_summary(spec, failure.severity, dates, failure.detail, failure.key_count, len(keys)),
            runbook=spec.runbook or default_runbook(spec),
            affected_dates=dates,
            sample_keys=keys,
            new=False,
            severity=failure.severity,
            key_count=failure.key_count,
            occurrences=failure.count + (0 if old is None else old.occurrences),
            first_seen=now if old is None else old.first_seen,
            last_seen=now,
            notified_at=None if old is None else old.notified_at,
        )
        writes.append(_Write(alert, OPEN, None, old, alert.notified_at is None, False, True))
    for old in stored.values():
        if old.fingerprint in failures:
            continue
        if (old.table, old.check) in passing:
            resolved = dataclasses.replace(old, job=job)
            writes.append(_Write(resolved, RESOLVED, now, old, False, old.notified_at is not None, False))
        elif old.notified_at is None:  # an earlier call could not deliver it: try again
            writes.append(_Write(old, OPEN, None, old, True, False, False))
    return writes


def _distinct(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _summary(spec: CheckSpec, severity: str, dates: Sequence[dt.date], detail: str, key_count: int, shown: int) -> str:
    text = f"{spec.label} ({spec.check}, {severity}) failed"
    if dates:
        text += f" on {_dates_text(dates)}"
    if detail:
        text += f": {detail}"
    if key_count > shown:
        text += f" [{key_count} failing keys, {shown} shown]"
    return text[:_SUMMARY_CHARS]


def _dates_text(dates: Sequence[dt.date]) -> str:
    if len(dates) <= 3:
        return ", ".join(d.isoformat() for d in dates)
    return f"{len(dates)} dates, {dates[0].isoformat()} .. {dates[-1].isoformat()}"


# --------------------------------------------------------------------------- state and delivery


class _StateMoved(Exception):
    """Another writer changed an ``alert_state`` row this call read: read again and redo."""


# The stored row is still the one read (an open row), or still not open (a new or reopened
# alert): otherwise the MERGE leaves it alone and the call starts over.
_STILL_AS_READ = (
    "(NOT s.read_open AND t.state = 'resolved') OR (s.read_open AND t.state = 'open'"
    " AND t.last_seen <=> s.read_last_seen AND t.notified_at <=> s.read_notified_at"
    " AND t.occurrences <=> s.read_occurrences)"
)
_SOURCE_SCHEMA = T.StructType(
    [
        *ALERT_STATE_SCHEMA.fields,
        T.StructField("read_open", T.BooleanType(), False),
        T.StructField("read_last_seen", T.TimestampType()),
        T.StructField("read_notified_at", T.TimestampType()),
        T.StructField("read_occurrences", T.LongType()),
    ]
)
_TIMES = ("first_seen", "last_seen", "notified_at")


def _apply(
    spark: SparkSession,
    config: Config,
    failures: dict[str, _Failure],
    passing: set[tuple[str, str]],
    sender: _Sender,
    *,
    job: str,
    run_id: str,
    now: dt.datetime,
) -> AlertOutcome:
    """One attempt: read the open alerts, plan, notify, MERGE."""
    writes = _plan(config, failures, passing, _read_open(spark, config), job=job, now=now)
    done: list[tuple[_Write, Alert]] = []
    for write in writes:
        alert = write.alert
        if write.notify:
            sent_at = sender.notify(alert, run_id)
            if sent_at is not None:
                alert = dataclasses.replace(alert, notified_at=sent_at, new=True)
            elif not write.failing:
                continue  # a retry that failed again changes nothing
        if write.announce:
            sender.announce_resolved(alert, run_id, now)
        done.append((write, alert))
    if done:
        written = _merge(spark, config, done, run_id)
        if written < len(done):
            raise _StateMoved(f"{len(done) - written} of {len(done)} alert rows changed since they were read")
    for write, alert in done:
        if write.state == RESOLVED:
            log.info("alert resolved: %s (%s), open since %s", alert.label, alert.cause, f"{alert.first_seen:%F %T}")
        elif not alert.new and write.failing:
            log.info("alert still open: %s (%s), %d occurrences", alert.label, alert.cause, alert.occurrences)
    return AlertOutcome(
        raised=tuple(alert for _, alert in done if alert.new),
        still_open=tuple(alert for write, alert in done if write.state == OPEN and write.failing and not alert.new),
        resolved=tuple(alert.fingerprint for write, alert in done if write.state == RESOLVED),
    )


def _read_open(spark: SparkSession, config: Config) -> dict[str, Alert]:
    """The open alerts by fingerprint (one small collect: a row per open alert)."""
    state = delta.read_table(spark, config, ALERT_STATE)
    if state is None:
        return {}
    # Instants as epoch microseconds: a collected timestamp is a naive local time, ambiguous in
    # the hour a zone's clocks go back, and the MERGE compares them exactly.
    rows = (
        state.filter(F.col("state") == F.lit(OPEN))
        .select(
            *(name for name in ALERT_STATE_SCHEMA.names if name not in _TIMES),
            *(F.unix_micros(name).alias(name) for name in _TIMES),
        )
        .collect()
    )
    severities = {(c.table, c.name): c.severity for c in (*config.quality.daily, *config.quality.stream)}
    return {row["fingerprint"]: _stored_alert(row, severities) for row in rows}


def _stored_alert(row: Row, severities: dict[tuple[str, str], str]) -> Alert:
    first_seen, last_seen = _instant(row["first_seen"]), _instant(row["last_seen"])
    if first_seen is None or last_seen is None:  # NOT NULL columns
        raise ValueError(f"alert_state row {row['fingerprint']} has no first_seen/last_seen")
    return Alert(
        fingerprint=row["fingerprint"],
        level=row["level"],
        job=row["job"],
        table=row["table_name"],
        check=row["check_name"],
        cause=row["cause"],
        summary=row["summary"],
        runbook=row["runbook"],
        affected_dates=tuple(row["affected_dates"]),
        sample_keys=tuple(row["sample_keys"]),
        new=False,
        # Checks outside the quality config (the SLO burn rates) block nothing: warn.
        severity=severities.get((row["table_name"], row["check_name"]), "warn"),
        key_count=len(row["sample_keys"]),
        occurrences=int(row["occurrences"]),
        first_seen=first_seen,
        last_seen=last_seen,
        notified_at=_instant(row["notified_at"]),
    )


def _instant(micros: int | None) -> dt.datetime | None:
    if micros is None:
        return None
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)


def _merge(spark: SparkSession, config: Config, done: Sequence[tuple[_Write, Alert]], run_id: str) -> int:
    """MERGE the rows into ``alert_state``; returns how many the MERGE inserted or replaced."""
    rows = []
    for write, alert in done:
        read = write.read
        rows.append(
            (
                alert.fingerprint,
                write.state,
                alert.level,
                alert.job,
                alert.table,
                alert.check,
                alert.cause,
                alert.summary,
                alert.runbook,
                list(alert.affected_dates),
                list(alert.sample_keys),
                alert.occurrences,
                alert.first_seen,
                alert.last_seen,
                alert.notified_at,
                write.resolved_at,
                run_id,
                read is not None,
                None if read is None else read.last_seen,
                None if read is None else read.notified_at,
                None if read is None else read.occurrences,
            )
        )
    delta.ensure_table(spark, config, ALERT_STATE)
    return delta.merge_upsert(
        spark.createDataFrame(rows, _SOURCE_SCHEMA),
        ALERT_STATE.path(config),
        key="fingerprint",
        columns=ALERT_STATE_SCHEMA.names,
        replace_when=_STILL_AS_READ,
        # unique per attempt: the MERGE's commit is found by it
        note=f"{run_id} alerts {uuid.uuid4().hex}",
    )


class _Sender:
    """Delivers one call's notifications: SNS by level, else one log line.

    Remembers what it sent, so a retried attempt does not send it twice, and what SNS refused,
    so it does not try again within the call. Once SNS cannot be reached at all (no connection,
    a timeout, no credentials), the rest of the call does not wait on it again.
    """

    def __init__(self, settings: AlertsConfig) -> None:
        self._settings = settings
        self._client: Any = None
        self._unreachable = ""
        self._sent: dict[str, dt.datetime] = {}
        self._refused: set[str] = set()
        self._announced: set[str] = set()

    def notify(self, alert: Alert, run_id: str) -> dt.datetime | None:
        """Send ``alert``; when it was sent (now, or earlier in this call), None if it was not."""
        key = alert.fingerprint
        if key in self._sent:
            return self._sent[key]
        if key in self._refused:
            return None
        topic = self._settings.topic(alert.level)
        if not topic:
            log.warning("ALERT %s", _log_line(alert))
        elif self._publish(
            topic,
            _subject(alert),
            json.dumps(alert_message(alert, run_id)),
            f"alert {alert.label} ({alert.cause}) not sent to {topic}",
            "; the next run tries again",
        ):
            log.info("alert %s (%s) sent to %s", alert.label, alert.cause, topic)
        else:
            self._refused.add(key)
            return None
        self._sent[key] = dt.datetime.now(dt.UTC)
        return self._sent[key]

    def announce_resolved(self, alert: Alert, run_id: str, resolved_at: dt.datetime) -> None:
        """Tell the alert's topic it resolved (once; nothing for a level without a topic)."""
        topic = self._settings.topic(alert.level)
        if topic and alert.fingerprint not in self._announced:
            self._announced.add(alert.fingerprint)
            message = json.dumps(resolution_message(alert, run_id, resolved_at))
            what = f"resolution of alert {alert.label} ({alert.cause}) not sent to {topic}"
            self._publish(topic, _subject(alert, resolved=True), message, what, "")

    def _publish(self, topic: str, subject: str, message: str, what: str, then: str) -> bool:
        """Publish; on failure log ``what`` (and ``then``, what happens next) and return False."""
        if self._unreachable:
            log.warning("%s: SNS unreachable (%s)%s", what, self._unreachable, then)
            return False
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._sns().publish(TopicArn=topic, Subject=subject, Message=message)
        except BotoCoreError as exc:  # no connection, a timeout, no credentials: skip SNS from now on
            self._unreachable = describe(exc, 300)
            log.warning("%s: %s%s", what, self._unreachable, then)
            return False
        except ClientError as exc:  # SNS refused this one (no such topic, not authorized)
            log.warning("%s: %s%s", what, describe(exc, 300), then)
            return False
        return True

    def _sns(self) -> Any:
        if self._client is None:
            # boto3 only where SNS is called (EMR and Glue bring it), as for CloudWatch.
            import boto3
            from botocore.config import Config as BotoConfig

            self._client = boto3.client(
                "sns",
                region_name=self._settings.region or None,
                endpoint_url=self._settings.endpoint_url or None,
                # An SNS outage must not hold the run for boto3's default minutes of retries.
                config=BotoConfig(
                    connect_timeout=_SNS_TIMEOUT_SECONDS,
                    read_timeout=_SNS_TIMEOUT_SECONDS,
                    retries={"mode": "standard", "max_attempts": 2},
                ),
            )
        return self._client


# --------------------------------------------------------------------------- what people read


def alert_message(alert: Alert, run_id: str) -> dict[str, Any]:
    """The JSON body of an alert's SNS notification."""
    return {
        "state": OPEN,
        "level": alert.level,
        "severity": alert.severity,
        "fingerprint": alert.fingerprint,
        "job": alert.job,
        "run_id": run_id,
        "table": alert.table,
        "check": alert.check,
        "cause": alert.cause,
        "summary": alert.summary,
        "affected_dates": [d.isoformat() for d in alert.affected_dates],
        "sample_keys": list(alert.sample_keys),
        "sample_count": alert.key_count,
        "occurrences": alert.occurrences,
        "first_seen": alert.first_seen.isoformat(),
        "runbook": alert.runbook,
    }


def resolution_message(alert: Alert, run_id: str, resolved_at: dt.datetime) -> dict[str, Any]:
    """The JSON body of the notification that an alert resolved."""
    return {
        "state": RESOLVED,
        "level": alert.level,
        "fingerprint": alert.fingerprint,
        "job": alert.job,
        "run_id": run_id,
        "table": alert.table,
        "check": alert.check,
        "cause": alert.cause,
        "summary": f"{alert.label} passes again; it failed on: {alert.summary}"[:_SUMMARY_CHARS],
        "affected_dates": [d.isoformat() for d in alert.affected_dates],
        "first_seen": alert.first_seen.isoformat(),
        "resolved_at": resolved_at.isoformat(),
    }


def _subject(alert: Alert, *, resolved: bool = False) -> str:
    """An SNS Subject: printable ASCII, at most 99 characters, the dates kept when shortened."""
    if resolved:
        head, tail = f"[RESOLVED] {alert.label}: {alert.cause}", ""
    else:
        head = f"[{alert.level.upper()}] {alert.label} failed: {alert.cause or 'see summary'}"
        dates = alert.affected_dates
        tail = f" ({dates[0].isoformat()})" if len(dates) == 1 else f" ({len(dates)} dates)" if dates else ""
    if len(head) + len(tail) > _SUBJECT_CHARS:
        head = head[: _SUBJECT_CHARS - len(tail) - 3] + "..."
    return "".join(c if " " <= c <= "~" else "?" for c in head + tail)


def _log_line(alert: Alert) -> str:
    return (
        f"[{alert.level}] {alert.label} ({alert.cause}): {alert.summary}"
        f"{' | samples: ' + ', '.join(alert.sample_keys) if alert.sample_keys else ''}"
        f" | next step: {alert.runbook} | fingerprint {alert.fingerprint[:12]}"
    )
