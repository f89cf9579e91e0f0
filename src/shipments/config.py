"""Configuration: ``conf/base.yaml`` plus one file per environment, loaded once into frozen,
self-validating dataclasses. Command-line flags override the paths.

An environment file names the file it builds on with ``extends:`` (resolved next to it) and
overrides keys of it; mappings merge key by key. Relative paths in a file are resolved against
the folder that holds that file, so a config means the same thing from any working directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from shipments.errors import ConfigError
from shipments.model.layouts import DMS_DATE_FOLDERS, LAYOUTS
from shipments.ops_config import AlertsConfig, LineageConfig, MetricsConfig, QualityConfig, SloConfig, section

PLATFORMS = ("local", "emr", "glue")
RAW_FORMATS = ("json", "csv")
# A scheme and a slash: s3a://bucket/key, file:///tmp/x, and file:/tmp/x, the form Hadoop's Path
# prints (in Spark's logs and errors) and a user copies from there.
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/")
_DURATION = re.compile(r"^(\d+)\s*(second|minute|hour|day)s?$")
_DAY = 86400


def is_uri(path: str) -> bool:
    """Whether ``path`` names its file system (``s3a://...``, ``file:/...``); else a local path."""
    return bool(_URI.match(path))


def join_path(base: str, *parts: str) -> str:
    """Join path parts onto a local path or a URI (``s3://``, ``s3a://``, ``file://``)."""
    return "/".join([base.rstrip("/"), *parts])


@dataclasses.dataclass(frozen=True)
class S3Config:
    """How a local session reaches S3 (or an S3 stand-in) through ``s3a://`` and ``s3://``.

    Only ``spark.platform: local`` uses it: EMR and Glue bring their own connector and their
    role's credentials. Credentials are never set here: S3A's default chain reads
    ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` from the
    environment (or an instance profile). An empty ``endpoint`` falls back to the environment's
    ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (as boto3 does), else AWS itself.
    """

    jars_dir: str = ""  # hadoop-aws + aws-java-sdk-bundle (``make setup`` fills jars/s3a)
    endpoint: str = ""
    path_style: bool = False
    region: str = ""

    def __post_init__(self) -> None:
        if self.endpoint and not re.match(r"^https?://[^\s/]+/?$", self.endpoint):
            raise ConfigError(f"spark.s3.endpoint must be an http(s)://host[:port] URL, got {self.endpoint!r}")
        if not isinstance(self.path_style, bool):
            raise ConfigError(f"spark.s3.path_style must be true or false, got {self.path_style!r}")
        if self.region and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", self.region):
            raise ConfigError(f"spark.s3.region must be an AWS region like eu-west-1, got {self.region!r}")

    def endpoint_in(self, environ: Mapping[str, str]) -> str:
        """The endpoint, else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (as boto3 reads them)."""
        return self.endpoint or environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or ""

    def region_in(self, environ: Mapping[str, str]) -> str:
        """The region, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` (as boto3 reads them)."""
        return self.region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or ""


@dataclasses.dataclass(frozen=True)
class SparkConfig:
    """How the SparkSession is built.

    ``platform: local`` builds its own session with the project's pinned jars; ``emr`` and
    ``glue`` use the session and the Delta Lake that the platform provides.
    """

    platform: str = "local"
    master: str = "local[2]"
    jars_dir: str = ""
    log_config: str = ""
    settings: Mapping[str, str] = dataclasses.field(default_factory=dict)
    s3: S3Config = dataclasses.field(default_factory=S3Config)

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ConfigError(f"spark.platform must be one of {', '.join(PLATFORMS)}, got {self.platform!r}")
        if self.platform == "local" and not self.jars_dir:
            raise ConfigError("spark.jars_dir is required when spark.platform is local")
        if isinstance(self.s3, Mapping):
            object.__setattr__(self, "s3", _subsection(self.s3, "spark.s3", S3Config))
        elif not isinstance(self.s3, S3Config):
            raise ConfigError("config section 'spark.s3' must be a mapping")


@dataclasses.dataclass(frozen=True)
class DailyConfig:
    """The daily batch job. The run for D reads ingest dates D-lookbehind .. D+lookback."""

    lookback_days: int = 1
    lookbehind_days: int = 1
    # How <raw>/shipments/ is laid out (contract 1.4): default, dms-csv, dms-parquet, firehose.
    layout: str = "default"
    # The default layout's file format: json (JSON lines) or csv (with a header row).
    raw_format: str = "json"
    # DMS's DatePartitionSequence (date folders of the dms-* layouts).
    dms_date_folder: str = "YYYY/MM/DD"
    # The zone DMS timestamps (written without an offset, as the database holds them) are in.
    source_timezone: str = "UTC"
    # A backfill computes consecutive dates in one pass over their folders while the pass's
    # input stays under this many MB (0: one isolated run per date).
    backfill_pass_mb: float = 1024

    def __post_init__(self) -> None:
        for name in ("lookback_days", "lookbehind_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 31:
                raise ConfigError(f"daily.{name} must be a whole number from 0 to 31, got {value!r}")
        pass_mb = self.backfill_pass_mb
        if not isinstance(pass_mb, int | float) or isinstance(pass_mb, bool) or not 0 <= pass_mb < float("inf"):
            raise ConfigError(f"daily.backfill_pass_mb must be a number of MB, 0 or more, got {pass_mb!r}")
        if self.raw_format not in RAW_FORMATS:
            raise ConfigError(f"daily.raw_format must be one of {', '.join(RAW_FORMATS)}, got {self.raw_format!r}")
        _one_of("daily.layout", self.layout, LAYOUTS)
        _one_of("daily.dms_date_folder", self.dms_date_folder, tuple(DMS_DATE_FOLDERS))
        try:
            zoneinfo.ZoneInfo(self.source_timezone)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            raise ConfigError(
                "daily.source_timezone must be an IANA zone name such as UTC or Europe/Berlin, "
                f"got {self.source_timezone!r}"
            ) from None


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class DynamoDBConfig:
    """The optional DynamoDB serving table of the status stream (off while ``table`` is empty).

    ``endpoint_url`` is for a local stand-in (moto on 127.0.0.1); on AWS leave it empty and let
    the instance / job role provide credentials.
    """

    table: str = ""
    region: str = ""
    endpoint_url: str = ""

    def __post_init__(self) -> None:
        if self.table and not re.fullmatch(r"[a-zA-Z0-9_.-]{3,255}", self.table):
            raise ConfigError(
                f"stream.dynamodb.table must be a DynamoDB table name (3-255 of a-z A-Z 0-9 _ . -), got {self.table!r}"
            )
        if self.table and not self.region:
            raise ConfigError("stream.dynamodb.region is required when stream.dynamodb.table is set")
        if self.endpoint_url and not re.match(r"^https?://[^\s/]+", self.endpoint_url):
            raise ConfigError(f"stream.dynamodb.endpoint_url must be an http(s) URL, got {self.endpoint_url!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.table)


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    """The status stream."""

    allowed_lateness: str = "1 hour"
    max_future_skew: str = "5 minutes"
    trigger_interval: str = "2 seconds"
    max_offsets_per_trigger: int = 100000
    checkpoint: str = ""
    # How long (processing time) an event_id is remembered to drop re-deliveries; the state
    # holds one to two windows' worth of event ids.
    dedup_window: str = "10 minutes"
    # State partitions, fixed by the first run of a checkpoint: size them for the cluster.
    state_partitions: int = 4
    # Each stream table is MERGEd on the driver with delta-rs while it holds at most this many MB
    # (0.1-1.9 s a batch up to 135 MB, where Spark's MERGE took 1.7-10.7 s on 2 cores), with
    # Spark's above; 0: always Spark's.
    driver_merge_max_mb: int = 256
    # The batches' pipeline_metrics rows are appended (then exported) once per this interval, or
    # sooner once 50 batches are waiting, in one commit: an append costs about as much as a
    # small batch's read, whatever it holds. "0 seconds": as soon as the append before is done
    # (batches a failed append left wait at least 5 s). At most 1 day.
    metrics_interval: str = "30 seconds"
    dynamodb: DynamoDBConfig = dataclasses.field(default_factory=DynamoDBConfig)

    def __post_init__(self) -> None:
        for name in ("allowed_lateness", "max_future_skew", "trigger_interval", "dedup_window", "metrics_interval"):
            duration_seconds(getattr(self, name), name=f"stream.{name}")
        if duration_seconds(self.metrics_interval) > _DAY:
            raise ConfigError(f"stream.metrics_interval must be at most 1 day, got {self.metrics_interval!r}")
        if duration_seconds(self.dedup_window) < 1:
            raise ConfigError("stream.dedup_window must be at least 1 second")
        if not isinstance(self.max_offsets_per_trigger, int) or self.max_offsets_per_trigger < 1:
            raise ConfigError("stream.max_offsets_per_trigger must be a positive whole number")
        if not isinstance(self.state_partitions, int) or not 1 <= self.state_partitions <= 10000:
            raise ConfigError(
                f"stream.state_partitions must be a whole number from 1 to 10000, got {self.state_partitions!r}"
            )
        if (
            not isinstance(self.driver_merge_max_mb, int)
            or isinstance(self.driver_merge_max_mb, bool)
            or not (0 <= self.driver_merge_max_mb <= 65536)
        ):
            raise ConfigError(
                f"stream.driver_merge_max_mb must be a whole number from 0 to 65536, got {self.driver_merge_max_mb!r}"
            )
        if isinstance(self.dynamodb, Mapping):
            known = {f.name for f in dataclasses.fields(DynamoDBConfig)}
            unknown = sorted(set(self.dynamodb) - known)
            if unknown:
                raise ConfigError(f"unknown key(s) in config section 'stream.dynamodb': {', '.join(unknown)}")
            object.__setattr__(self, "dynamodb", DynamoDBConfig(**{k: str(v) for k, v in self.dynamodb.items()}))
        elif not isinstance(self.dynamodb, DynamoDBConfig):
            raise ConfigError("config section 'stream.dynamodb' must be a mapping")


_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SCHEDULE = re.compile(r"^(cron\([^()]+\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\))$")


@dataclasses.dataclass(frozen=True)
class DeployConfig:
    """Where ``shipments deploy`` puts the artifacts and what it creates (no credentials: the
    deploy role's come from the environment). Empty role ARNs fail the targets that need them."""

    region: str = ""
    artifacts: str = ""  # s3://bucket/prefix: written only by the deploy role, read by job roles
    logs: str = ""  # s3://bucket/prefix for EMR / EMR Serverless logs, outside the artifacts prefix
    emr_cluster_name: str = "shipments"
    emr_release: str = "emr-7.12.0"
    emr_serverless_application: str = "shipments"
    emr_serverless_role: str = ""
    glue_role: str = ""
    glue_worker_type: str = "G.1X"
    glue_workers: int = 4
    scheduler_role: str = ""
    daily_schedule: str = "cron(30 2 * * ? *)"  # UTC; the run at T processes ship date (T - 1 day)
    stream_schedule: str = "rate(1 hour)"  # the status stream with --available-now
    stream_input: str = ""  # event files for the scheduled stream (default <raw>/events)
    # DynamoDB table of Delta's S3DynamoDBLogStore: required before two drivers write one table
    delta_log_table: str = ""
    catalog_database: str = "shipments"

    def __post_init__(self) -> None:
        if self.region and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", self.region):
            raise ConfigError(f"deploy.region must be an AWS region like eu-west-1, got {self.region!r}")
        for name in ("artifacts", "logs"):
            value = getattr(self, name)
            if value and not _S3_URI.match(value):
                raise ConfigError(f"deploy.{name} must be an s3://bucket/prefix URI, got {value!r}")
        for name in ("emr_serverless_role", "glue_role", "scheduler_role"):
            value = getattr(self, name)
            if value and not _ROLE_ARN.match(value):
                raise ConfigError(f"deploy.{name} must be an IAM role ARN, got {value!r}")
        for name in ("emr_cluster_name", "emr_serverless_application", "catalog_database", "emr_release"):
            if not _NAME.match(str(getattr(self, name))):
                raise ConfigError(f"deploy.{name} must be 1-64 of A-Z a-z 0-9 _ . -, got {getattr(self, name)!r}")
        if self.delta_log_table and not re.fullmatch(r"[a-zA-Z0-9_.-]{3,255}", self.delta_log_table):
            raise ConfigError(f"deploy.delta_log_table must be a DynamoDB table name, got {self.delta_log_table!r}")
        for name in ("daily_schedule", "stream_schedule"):
            if not _SCHEDULE.match(str(getattr(self, name))):
                raise ConfigError(
                    f"deploy.{name} must be cron(...) or rate(N minutes|hours|days), got {getattr(self, name)!r}"
                )
        if not isinstance(self.glue_workers, int) or isinstance(self.glue_workers, bool) or self.glue_workers < 2:
            raise ConfigError(f"deploy.glue_workers must be a whole number of at least 2, got {self.glue_workers!r}")
        if not re.fullmatch(r"G\.(1|2|4|8)X|G\.025X", self.glue_worker_type):
            raise ConfigError(
                f"deploy.glue_worker_type must be G.1X, G.2X, G.4X or G.8X, got {self.glue_worker_type!r}"
            )


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a command needs to know about its environment."""

    raw: str
    lake: str
    spark: SparkConfig
    daily: DailyConfig = dataclasses.field(default_factory=DailyConfig)
    stream: StreamConfig = dataclasses.field(default_factory=StreamConfig)
    deploy: DeployConfig = dataclasses.field(default_factory=DeployConfig)
    quality: QualityConfig = dataclasses.field(default_factory=QualityConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    alerts: AlertsConfig = dataclasses.field(default_factory=AlertsConfig)
    slo: SloConfig = dataclasses.field(default_factory=SloConfig)
    lineage: LineageConfig = dataclasses.field(default_factory=LineageConfig)

    def __post_init__(self) -> None:
        for name in ("raw", "lake"):
            if not getattr(self, name):
                raise ConfigError(f"paths.{name} is required (set it in the config or pass --{name})")

    def with_paths(self, raw: str | None = None, lake: str | None = None) -> Config:
        """A copy with the raw zone and/or lake replaced (command-line overrides)."""
        return dataclasses.replace(
            self,
            raw=_absolute(raw) if raw else self.raw,
            lake=_absolute(lake) if lake else self.lake,
        )

    def table(self, name: str) -> str:
        """Location of a Delta table under the lake, e.g. ``table("pipeline_runs")``."""
        return join_path(self.lake, name)


def duration_seconds(text: str, *, name: str = "duration") -> int:
    """``"90 seconds"``, ``"1 hour"``, ``"2 days"`` -> seconds."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ConfigError(f"{name} must look like '30 seconds', '10 minutes' or '1 hour', got {text!r}")
    unit = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}[match.group(2)]
    return int(match.group(1)) * unit


def _absolute(path: str, base: Path | None = None) -> str:
    if is_uri(path):
        return path
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = (base or Path.cwd()) / p
    return str(p.resolve())


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read one file and what it extends, paths resolved against each file's own folder."""
    if path in seen:
        raise ConfigError(f"config {path} extends itself")
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config {path} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")

    folder = path.parent
    paths = data.get("paths") or {}
    for key in ("raw", "lake"):
        if paths.get(key):
            paths[key] = _absolute(str(paths[key]), folder)
    spark = data.get("spark") or {}
    for key in ("jars_dir", "log_config"):
        if spark.get(key):
            spark[key] = _absolute(str(spark[key]), folder)
    s3 = spark.get("s3") or {}
    if isinstance(s3, dict) and s3.get("jars_dir"):
        s3["jars_dir"] = _absolute(str(s3["jars_dir"]), folder)
    stream = data.get("stream") or {}
    if stream.get("checkpoint"):
        stream["checkpoint"] = _absolute(str(stream["checkpoint"]), folder)
    lineage = data.get("lineage") or {}
    if isinstance(lineage, dict) and lineage.get("output"):
        lineage["output"] = _absolute(str(lineage["output"]), folder)

    parent_name = data.pop("extends", None)
    if parent_name is None:
        return data
    parent = _read_yaml((folder / str(parent_name)).resolve(), (*seen, path))
    return _merge(parent, data)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _subsection(section: Mapping[str, Any], name: str, cls: type) -> Any:
    """A nested mapping (e.g. ``spark.s3``) as its dataclass; an unknown key is an error."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) in config section {name!r}: {', '.join(unknown)}")
    return cls(**section)


def load_config(path: str | os.PathLike[str], *, raw: str | None = None, lake: str | None = None) -> Config:
    """Load a config file (and what it extends) and apply command-line path overrides.

    Raises:
        ConfigError: the file is missing, unreadable, not YAML, or holds an invalid value.
    """
    config_path = Path(path).expanduser().resolve()
    data = _read_yaml(config_path)
    sections = {"paths", "spark", "daily", "stream", "deploy", "quality", "metrics", "alerts", "slo", "lineage"}
    unknown = sorted(set(data) - sections)
    if unknown:
        raise ConfigError(f"unknown top-level key(s) in config {config_path}: {', '.join(unknown)}")
    spark_data = dict(data.get("spark") or {})
    spark_data["settings"] = {str(k): str(v) for k, v in (spark_data.get("settings") or {}).items()}
    paths = data.get("paths") or {}
    return Config(
        raw=_absolute(raw) if raw else str(paths.get("raw") or ""),
        lake=_absolute(lake) if lake else str(paths.get("lake") or ""),
        spark=section({"spark": spark_data}, "spark", SparkConfig),
        daily=section(data, "daily", DailyConfig),
        stream=section(data, "stream", StreamConfig),
        deploy=section(data, "deploy", DeployConfig),
        quality=section(data, "quality", QualityConfig),
        metrics=section(data, "metrics", MetricsConfig),
        alerts=section(data, "alerts", AlertsConfig),
        slo=section(data, "slo", SloConfig),
        lineage=section(data, "lineage", LineageConfig),
    )
