"""Configuration of operations: data-quality checks, run metrics, alerts, SLOs and lineage.

Each section of the config file (``quality``, ``metrics``, ``alerts``, ``slo``, ``lineage``) is
one frozen dataclass here, validated when loaded, so a typo in a check is a one-line error before
any run, never a check that silently does nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from shipments.errors import ConfigError

SEVERITIES = ("warn", "quarantine", "fail")
ALERT_LEVELS = ("page", "ticket", "log")
# What a check's failure tells people when its config does not say.
DEFAULT_ALERT = {"fail": "page", "quarantine": "ticket", "warn": "log"}

# Check kinds, and the tables each may be declared on.
RECORDS = "shipments"  # the raw shipment records a daily run reads (valid ones, for row rules)
TOTALS = "shipment_daily_totals"
STATUS_EVENTS = "shipment_status"  # a micro-batch of the status stream
SLO = "slo"  # the service levels (a pseudo-table: burn-rate checks)
ROW_RULES = ("not_null", "accepted_values", "range")
CHECK_TABLES: dict[str, tuple[str, ...]] = {
    "schema": (RECORDS,),
    "not_null": (RECORDS, TOTALS),
    "accepted_values": (RECORDS, TOTALS),
    "range": (RECORDS, TOTALS),
    "unique": (TOTALS,),
    "invalid_share": (RECORDS,),
    "unknown_customers": (TOTALS,),
    "min_rows": (TOTALS,),
    "volume": (TOTALS,),
    "shrink": (TOTALS,),
    "dlq_share": (STATUS_EVENTS,),
    "late_share": (STATUS_EVENTS,),
    # Not declared under quality: observe.slo.burn_rate_results builds these from the slo section,
    # on a pseudo-table, so burn-rate breaches go through the same alerts as data checks.
    "slo_burn": (SLO,),
}
# Kinds that come from other config sections, never from quality.daily / quality.stream.
DERIVED_CHECKS = ("slo_burn",)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_COLUMN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclasses.dataclass(frozen=True)
class CheckSpec:
    """One data-quality check, as declared under ``quality.daily`` or ``quality.stream``.

    ``severity`` says what a failure does: ``warn`` (recorded and alerted, the run goes on),
    ``quarantine`` (row rules on ``shipments`` only: failing records go to quarantine with
    reason ``check:<name>``, the run goes on) or ``fail`` (nothing is published). ``alert``
    (page / ticket / log) says whom a failure tells; by default page for fail, ticket for
    quarantine, log for warn. Kinds and their arguments:

    - ``schema``: every required field present by name in every input file (a field missing
      from all records of a file fails); new fields are reported.
    - ``not_null`` / ``accepted_values`` (``values``) / ``range`` (``min``, ``max``): a row rule
      on ``column``; fails when more than ``max_share`` of the rows break it.
    - ``unique``: ``columns`` identify a row of the table.
    - ``invalid_share``: share of records read that were invalid, at most ``max``.
    - ``unknown_customers``: share of D's shipments whose customer is not in the dimension.
    - ``min_rows``: D's shipments at least ``min``.
    - ``volume``: D's shipments against the same weekday of the trailing ``weeks`` weeks in
      ``pipeline_runs``: anomalous when further from the median than both ``tolerance`` x the
      median and ``sigmas`` x the robust spread (1.4826 x median absolute deviation); fewer than
      ``min_history`` such days warns, never fails.
    - ``shrink``: a rerun may not shrink D's published shipments by more than ``max`` (a share)
      unless ``--allow-shrink``.
    - ``dlq_share`` / ``late_share``: share of a micro-batch's events dead-lettered / late, at
      most ``max``, judged on batches of at least ``min_rows`` events.
    - ``slo_burn`` (on the pseudo-table ``slo``): an error budget burning too fast; built by
      ``observe.slo.burn_rate_results`` from the ``slo`` section, never declared under quality.
    """

    name: str
    check: str
    table: str = ""
    severity: str = "fail"
    alert: str = ""
    runbook: str = ""
    column: str = ""
    columns: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    max_share: float = 0.0
    min_rows: int = 0
    weeks: int = 4
    min_history: int = 3
    tolerance: float = 0.3
    sigmas: float = 4.0

    def __post_init__(self) -> None:
        where = f"quality check {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"quality check name must be 1-64 of a-z 0-9 _ starting with a letter, got {self.name!r}")
        if self.check not in CHECK_TABLES:
            raise ConfigError(f"{where}: check must be one of {', '.join(CHECK_TABLES)}, got {self.check!r}")
        tables = CHECK_TABLES[self.check]
        if not self.table:
            object.__setattr__(self, "table", tables[0])
        if self.table not in tables:
            raise ConfigError(f"{where}: a {self.check} check applies to {', '.join(tables)}, not {self.table!r}")
        if self.severity not in SEVERITIES:
            raise ConfigError(f"{where}: severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}")
        if self.severity == "quarantine" and not (self.check in ROW_RULES and self.table == RECORDS):
            raise ConfigError(f"{where}: severity quarantine is for row rules on {RECORDS} only")
        if not self.alert:
            object.__setattr__(self, "alert", DEFAULT_ALERT[self.severity])
        if self.alert not in ALERT_LEVELS:
            raise ConfigError(f"{where}: alert must be one of {', '.join(ALERT_LEVELS)}, got {self.alert!r}")
        for name in ("columns", "values"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise ConfigError(f"{where}: {name} must be a list")
            object.__setattr__(self, name, tuple(str(v) for v in value))
        for name in ("min", "max", "max_share", "tolerance", "sigmas"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ConfigError(f"{where}: {name} must be a number, got {value!r}")
        for name in ("min_rows", "weeks", "min_history"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{where}: {name} must be a whole number >= 0, got {value!r}")
        self._check_arguments(where)

    def _check_arguments(self, where: str) -> None:
        needs_column = self.check in ROW_RULES
        if needs_column and not _COLUMN.match(self.column):
            raise ConfigError(f"{where}: a {self.check} check needs column: <name>")
        if self.check == "accepted_values" and not self.values:
            raise ConfigError(f"{where}: an accepted_values check needs values: [...]")
        if self.check == "range" and self.min is None and self.max is None:
            raise ConfigError(f"{where}: a range check needs min and/or max")
        if self.check == "unique" and (not self.columns or not all(_COLUMN.match(c) for c in self.columns)):
            raise ConfigError(f"{where}: a unique check needs columns: [<name>, ...]")
        shares = ("invalid_share", "unknown_customers", "shrink", "dlq_share", "late_share")
        if self.check in shares and (self.max is None or not 0 <= self.max <= 1):
            raise ConfigError(f"{where}: a {self.check} check needs max: a share from 0 to 1")
        if self.check == "min_rows" and self.min is None:
            raise ConfigError(f"{where}: a min_rows check needs min")
        if not 0 <= self.max_share <= 1:
            raise ConfigError(f"{where}: max_share must be a share from 0 to 1")
        if self.check == "volume" and (self.weeks < 1 or self.tolerance < 0 or self.sigmas < 0):
            raise ConfigError(f"{where}: a volume check needs weeks >= 1, tolerance >= 0 and sigmas >= 0")

    @property
    def label(self) -> str:
        """How results and alerts name the check: ``<table>.<name>``."""
        return f"{self.table}.{self.name}"


def _checks(items: object, section: str) -> tuple[CheckSpec, ...]:
    if items is None:
        return ()
    if isinstance(items, tuple) and all(isinstance(i, CheckSpec) for i in items):
        return items
    if not isinstance(items, list):
        raise ConfigError(f"quality.{section} must be a list of checks")
    known = {f.name for f in dataclasses.fields(CheckSpec)}
    checks = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ConfigError(f"quality.{section}: each check must be a mapping, got {item!r}")
        unknown = sorted(set(item) - known)
        if unknown:
            raise ConfigError(f"quality.{section} check {item.get('name')!r}: unknown key(s) {', '.join(unknown)}")
        checks.append(CheckSpec(**item))
    names = [c.name for c in checks]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"quality.{section}: check name(s) used twice: {', '.join(repeated)}")
    return tuple(checks)


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    """The checks of the daily job (``daily``) and of the status stream's micro-batches
    (``stream``)."""

    daily: tuple[CheckSpec, ...] = ()
    stream: tuple[CheckSpec, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "daily", _checks(self.daily, "daily"))
        object.__setattr__(self, "stream", _checks(self.stream, "stream"))
        for check in (*self.daily, *self.stream):
            if check.check in DERIVED_CHECKS:
                raise ConfigError(f"quality check {check.name!r}: {check.check} checks come from the slo section")
        for check in self.daily:
            if check.table == STATUS_EVENTS:
                raise ConfigError(f"quality.daily check {check.name!r} is a stream check (quality.stream)")
        for check in self.stream:
            if check.table != STATUS_EVENTS:
                raise ConfigError(f"quality.stream check {check.name!r} is a daily check (quality.daily)")


_ENDPOINT = re.compile(r"^https?://[^\s/]+/?$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_LABEL = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
CLOUDWATCH_MODES = ("off", "emf", "put_metric_data")


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
    """Where run metrics go besides the ``pipeline_metrics`` table.

    ``pushgateway``: a Prometheus Pushgateway (``http://host:port``), empty = off.
    ``cloudwatch``: ``emf`` (Embedded Metric Format lines on the job's log, which CloudWatch
    Logs turns into metrics on EMR and Glue), ``put_metric_data`` (the API, boto3) or ``off``.
    ``endpoint_url`` only for a local stand-in (moto on 127.0.0.1).
    """

    environment: str = "local"
    pushgateway: str = ""
    cloudwatch: str = "off"
    namespace: str = "Shipments"
    region: str = ""
    endpoint_url: str = ""

    def __post_init__(self) -> None:
        if not _LABEL.match(str(self.environment)):
            raise ConfigError(f"metrics.environment must be 1-64 of A-Z a-z 0-9 _ . -, got {self.environment!r}")
        if self.pushgateway and not _ENDPOINT.match(self.pushgateway):
            raise ConfigError(f"metrics.pushgateway must be an http(s)://host:port URL, got {self.pushgateway!r}")
        if self.cloudwatch not in CLOUDWATCH_MODES:
            modes = ", ".join(CLOUDWATCH_MODES)
            raise ConfigError(f"metrics.cloudwatch must be one of {modes}, got {self.cloudwatch!r}")
        if not re.fullmatch(r"[A-Za-z0-9_./#:-]{1,255}", str(self.namespace)):
            raise ConfigError(f"metrics.namespace must be a CloudWatch namespace, got {self.namespace!r}")
        _aws_target("metrics", self.region, self.endpoint_url, needed=self.cloudwatch == "put_metric_data")


def _aws_target(section: str, region: str, endpoint_url: str, *, needed: bool) -> None:
    if region and not _REGION.match(region):
        raise ConfigError(f"{section}.region must be an AWS region like eu-west-1, got {region!r}")
    if needed and not region:
        raise ConfigError(f"{section}.region is required when {section} calls AWS")
    if endpoint_url and not _ENDPOINT.match(endpoint_url):
        raise ConfigError(f"{section}.endpoint_url must be an http(s)://host:port URL, got {endpoint_url!r}")


_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z]{2}(-[a-z]+)+-\d:\d{12}:[A-Za-z0-9_-]{1,256}$")


@dataclasses.dataclass(frozen=True)
class AlertsConfig:
    """Where alerts go: an SNS topic per alert level (page, ticket), empty = the job's log only.
    ``log`` alerts are always only logged."""

    page_topic: str = ""
    ticket_topic: str = ""
    region: str = ""
    endpoint_url: str = ""
    # Alert samples: how many failing keys (shipment ids, files, dates) an alert shows.
    samples: int = 5

    def __post_init__(self) -> None:
        for name in ("page_topic", "ticket_topic"):
            value = getattr(self, name)
            if value and not _TOPIC_ARN.match(value):
                raise ConfigError(f"alerts.{name} must be an SNS topic ARN, got {value!r}")
        _aws_target("alerts", self.region, self.endpoint_url, needed=bool(self.page_topic or self.ticket_topic))
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or not 1 <= self.samples <= 100:
            raise ConfigError(f"alerts.samples must be a whole number from 1 to 100, got {self.samples!r}")

    def topic(self, level: str) -> str:
        """The SNS topic of an alert level ('' for log)."""
        return {"page": self.page_topic, "ticket": self.ticket_topic}.get(level, "")


_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclasses.dataclass(frozen=True)
class SloConfig:
    """Service levels.

    Daily publication: partition D is published (its daily run SUCCEEDED) by ``daily_sla``
    (external promise) and by ``daily_slo`` (internal objective, on ``daily_target`` of days),
    both UTC clock times on day D + ``daily_offset_days``. Stream: the ``stream_percentile``
    event -> visible latency of a micro-batch at most ``stream_latency_seconds`` on
    ``stream_target`` of batches. Burn rate: alert when the error budget burns faster than
    ``fast_burn`` times the sustainable rate over the last ``fast_window_days`` days, or
    ``slow_burn`` over ``slow_window_days``.
    """

    daily_sla: str = "09:00"
    daily_slo: str = "08:30"
    daily_offset_days: int = 1
    daily_target: float = 0.99
    stream_percentile: int = 95
    stream_latency_seconds: float = 5.0
    stream_target: float = 0.99
    fast_window_days: int = 1
    fast_burn: float = 14.4
    slow_window_days: int = 7
    slow_burn: float = 2.0

    def __post_init__(self) -> None:
        for name in ("daily_sla", "daily_slo"):
            if not _CLOCK.match(str(getattr(self, name))):
                raise ConfigError(f"slo.{name} must be a UTC clock time HH:MM, got {getattr(self, name)!r}")
        for name in ("daily_target", "stream_target"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
                raise ConfigError(f"slo.{name} must be a share between 0 and 1 (e.g. 0.99), got {value!r}")
        ints = {"daily_offset_days": (0, 31), "stream_percentile": (1, 100), "fast_window_days": (1, 28)}
        for name, (low, high) in {**ints, "slow_window_days": (1, 28)}.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"slo.{name} must be a whole number from {low} to {high}, got {value!r}")
        for name in ("stream_latency_seconds", "fast_burn", "slow_burn"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"slo.{name} must be a positive number, got {value!r}")


@dataclasses.dataclass(frozen=True)
class LineageConfig:
    """OpenLineage (off by default): the Spark listener writes run events to ``output`` (a local
    file, one JSON event per line) for Marquez or DataZone to ingest."""

    enabled: bool = False
    output: str = ""
    namespace: str = "shipments"

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"lineage.enabled must be true or false, got {self.enabled!r}")
        if self.enabled and not self.output:
            raise ConfigError("lineage.output (a file for the lineage events) is required when lineage is enabled")
        if not _LABEL.match(str(self.namespace)):
            raise ConfigError(f"lineage.namespace must be 1-64 of A-Z a-z 0-9 _ . -, got {self.namespace!r}")


def section(data: Mapping[str, Any], name: str, cls: type) -> Any:
    """A config section as its dataclass; an unknown key is an error."""
    values = data.get(name) or {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"config section {name!r} must be a mapping")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) in config section {name!r}: {', '.join(unknown)}")
    return cls(**values)
