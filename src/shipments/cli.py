"""The ``shipments`` command line (also ``python -m shipments``).

Arguments are validated before any Spark session starts, so a bad one costs nothing and
changes nothing. Every failure ends in one line on stderr and a non-zero exit status; a
traceback is printed only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Protocol

from shipments.config import Config, is_uri, load_config
from shipments.dates import parse_date
from shipments.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ConfigError,
    InputError,
    ShipmentsError,
    describe,
)
from shipments.model.layouts import LAYOUTS
from shipments.redaction import install_log_redaction, redact

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from shipments.devtools.generate import GenerateResult
    from shipments.stream.job import StreamRequest

log = logging.getLogger("shipments")

_BOOTSTRAP = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}(,[A-Za-z0-9.\-\[\]:]+:\d{1,5})*$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class Result(Protocol):
    """What every command returns: a summary line (or JSON object) for stdout and an exit code."""

    @property
    def exit_code(self) -> int: ...

    def summary(self) -> str: ...


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (not usage text plus a message)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _date(text: str) -> dt.date:
    try:
        return parse_date(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ranged(kind: Callable[[str], float], low: float, high: float | None, expected: str) -> Callable[[str], float]:
    """An argparse type: ``kind(text)`` within ``low..high``, else a one-line usage error."""

    def parse(text: str) -> float:
        try:
            value: float | None = kind(text)
        except ValueError:
            value = None
        if value is None or value != value or value < low or (high is not None and value > high):  # NaN too
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _ranged(int, 1, None, "a whole number of at least 1")
_non_negative_int = _ranged(int, 0, None, "a whole number of at least 0")
_share = _ranged(float, 0.0, 1.0, "a share from 0 to 1")


def _instant(text: str) -> dt.datetime:
    """An ISO-8601 instant with an offset (``2026-11-03T02:30:00Z``), as a scheduler passes it."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"expected an ISO-8601 time with Z or +hh:mm, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--conf", default="conf/local.yaml", help="config file (default: %(default)s)")
    common.add_argument("--raw", help="raw zone folder or URI, overrides paths.raw")
    common.add_argument("--lake", help="lake folder or URI, overrides paths.lake")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")

    parser = _Parser(prog="shipments", description="Shipment pipelines on Spark + Delta Lake.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=help_text, description=help_text)

    daily = command("daily", "the daily batch job for one ship date")
    daily.add_argument("--date", type=_date, required=True, help="ship date, YYYY-MM-DD")
    shrink_help = "a rerun may replace a published day with fewer shipments than the shrink check allows"
    daily.add_argument("--allow-shrink", action="store_true", help=shrink_help)

    backfill = command("backfill", "one isolated daily run per date, N at a time")
    backfill.add_argument("--start", type=_date, required=True, help="first date, YYYY-MM-DD")
    backfill.add_argument("--end", type=_date, required=True, help="last date (inclusive), YYYY-MM-DD")
    backfill.add_argument("--parallelism", type=_positive_int, default=1, help="dates run at once (default 1)")
    backfill.add_argument("--force", action="store_true", help="re-run dates that already succeeded on the same input")
    backfill.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    backfill.add_argument("--allow-shrink", action="store_true", help=shrink_help)

    restore = command("restore", "put partition D of shipment_daily_totals back as of a table version")
    restore.add_argument("--date", type=_date, required=True, help="ship date, YYYY-MM-DD")
    restore.add_argument("--to-version", type=_non_negative_int, required=True, help="table version to restore from")

    stream = command("stream", "the status stream: events -> shipment_status")
    stream.add_argument("--source", choices=("kafka", "files"), required=True)
    stream.add_argument("--input", help="folder of JSON-lines event files (--source files)")
    stream.add_argument("--bootstrap-servers", help="Kafka bootstrap servers HOST:PORT (--source kafka)")
    stream.add_argument("--topic", help="Kafka topic (--source kafka)")
    stream.add_argument("--checkpoint", help="checkpoint folder or URI (default: stream.checkpoint in the config)")
    stream.add_argument("--available-now", action="store_true", help="process what is there, then stop")

    status = command("status", "print a shipment's current status as JSON")
    status.add_argument("shipment_id")

    reconcile = command("reconcile", "compare raw vs table for a date and explain differences")
    reconcile.add_argument("--date", type=_date, required=True, help="ship date, YYYY-MM-DD")

    generate = command("generate", "write a realistic raw zone (and status events) to try things on")
    generate.add_argument("--out", required=True, help="folder to write the raw zone into")
    generate.add_argument("--start", type=_date, required=True, help="first ingest date, YYYY-MM-DD")
    generate.add_argument("--days", type=_positive_int, required=True, help="number of days")
    generate.add_argument("--shipments-per-day", type=_positive_int, default=2000, help="default %(default)s")
    generate.add_argument("--customers", type=_positive_int, default=200, help="default %(default)s")
    generate.add_argument("--seed", type=int, default=7, help="default %(default)s")
    generate.add_argument(
        "--deletes", type=_share, default=0.0, help="dms-* layouts: share of records also landed as deletes"
    )
    generate.add_argument(
        "--events-per-day", type=_non_negative_int, default=None, help="status events (default: 2 per shipment)"
    )
    for sub in (daily, backfill, reconcile, generate):
        sub.add_argument(
            "--layout", choices=LAYOUTS, help="how <raw>/shipments/ is laid out (default: daily.layout in the config)"
        )
    _add_cloud_commands(command)
    _add_observe_commands(command)
    return parser


def _add_observe_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """``slo`` and ``report`` (read the ledger, metrics and alerts; write nothing to the lake)."""
    days = _ranged(int, 1, 366, "a whole number of days from 1 to 366")
    slo = command("slo", "service levels now: daily publication and stream latency, error budgets, burn rates")
    report = command("report", "one self-contained HTML page: volume, quarantine, freshness, durations, alerts")
    report.add_argument("--out", required=True, help="the HTML file to write")
    for sub in (slo, report):
        sub.add_argument("--now", type=_instant, help="as of this instant, e.g. 2026-11-03T10:00:00Z (default: now)")
        sub.add_argument("--days", type=days, default=28, help="days looked back (default %(default)s)")
    slo.add_argument("--json", action="store_true", help="print one JSON object instead of one line per objective")
    slo.add_argument("--alert", action="store_true", help="raise (or resolve) the burn-rate alerts (run it hourly)")


def _observe_command(args: argparse.Namespace, config: Config) -> Callable[[SparkSession | None], Result]:
    """``slo`` / ``report``: flags checked here, before the session starts."""
    if args.command == "slo":
        from shipments.observe.slo import SloRequest, run_slo

        slo = SloRequest(args.now, int(args.days), args.json, args.alert)
        return lambda spark: run_slo(_session(spark), config, slo)
    from shipments.observe.report import ReportRequest, run_report

    out = Path(args.out).expanduser().resolve()
    _require_local_folder(str(out.parent), "report folder")
    report = ReportRequest(out, int(args.days), args.now)
    return lambda spark: run_report(_session(spark), config, report)


def _add_cloud_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """``scheduled``, ``deploy``, ``catalog`` and ``iam-policy`` (cloud control: boto3, no Spark)."""
    scheduled = command("scheduled", "the daily job as a scheduler starts it: the UTC day before --time")
    scheduled.add_argument("--time", type=_instant, required=True, help="the fire time, e.g. 2026-11-03T02:30:00Z")

    deploy = command("deploy", "upload the package and create or update jobs and schedules on AWS (boto3)")
    deploy.add_argument("--target", choices=("emr", "emr-serverless", "glue"), required=True)
    deploy.add_argument("--dry-run", action="store_true", help="print every AWS call, change nothing")
    deploy.add_argument("--dist", default="dist", help="output of `make package` (default %(default)s)")
    deploy.add_argument("--date", type=_date, action="append", default=[], help="also run the daily job for D now")
    deploy.add_argument("--backfill-start", type=_date, help="also run a backfill from this date")
    deploy.add_argument("--backfill-end", type=_date, help="... to this date (inclusive)")
    deploy.add_argument("--parallelism", type=_positive_int, default=1, help="dates at once in one backfill driver")
    deploy.add_argument("--cluster-id", help="EMR cluster (default: the active one named deploy.emr_cluster_name)")

    catalog = command("catalog", "register every Delta table in the Glue Data Catalog (native Delta)")
    catalog.add_argument("action", choices=("sync",))
    catalog.add_argument("--database", help="Glue database (default deploy.catalog_database)")
    catalog.add_argument("--dry-run", action="store_true", help="print every AWS call, change nothing")

    policy = command("iam-policy", "print a job role's IAM policy plus what the config's alerts and metrics need")
    policy.add_argument("--policy", required=True, help="the role's policy file, e.g. emr/iam/glue-job-policy.json")


def _cloud_command(args: argparse.Namespace, config: Config) -> Callable[[SparkSession | None], Result]:
    """``deploy`` / ``catalog`` / ``iam-policy``: flags checked here; they run without Spark."""
    from shipments.cloud.catalog import CatalogRequest, run_catalog_sync
    from shipments.cloud.deploy import DeployRequest, run_deploy
    from shipments.cloud.iam import PolicyRequest, run_iam_policy

    if args.command == "iam-policy":
        policy = PolicyRequest(Path(args.policy))
        return lambda spark: run_iam_policy(spark, config, policy)
    if args.command == "catalog":
        catalog = CatalogRequest(args.database or "", args.dry_run)
        return lambda spark: run_catalog_sync(spark, config, catalog)
    if (args.backfill_start is None) != (args.backfill_end is None):
        raise ConfigError("--backfill-start and --backfill-end go together")
    backfill = (args.backfill_start, args.backfill_end) if args.backfill_start else None
    deploy = DeployRequest(
        args.target, Path(args.conf), Path(args.dist), args.dry_run, tuple(args.date), backfill, args.parallelism,
        args.cluster_id or "",
    )  # fmt: skip
    return lambda spark: run_deploy(spark, config, deploy)


def _config(args: argparse.Namespace) -> Config:
    config = load_config(args.conf, raw=args.raw, lake=args.lake)
    if getattr(args, "layout", None):
        config = dataclasses.replace(config, daily=dataclasses.replace(config.daily, layout=args.layout))
    return config


def _require_local_folder(path: str, what: str) -> None:
    """Fail fast (before Spark starts) when a local input folder is missing."""
    if not is_uri(path) and not Path(path).is_dir():
        raise InputError(f"{what} {path} does not exist")


def _stream_request(config: Config, args: argparse.Namespace) -> StreamRequest:
    """Check ``shipments stream``'s flags.

    Raises:
        ConfigError: a required flag is missing or malformed, or no checkpoint is given.
        InputError: the local input folder does not exist.
    """
    from shipments.stream.job import StreamRequest

    checkpoint = args.checkpoint or config.stream.checkpoint
    if not checkpoint:
        raise ConfigError("a checkpoint is required: pass --checkpoint DIR or set stream.checkpoint in the config")
    if not is_uri(checkpoint):
        checkpoint = str(Path(checkpoint).expanduser().resolve())
    if args.source == "kafka":
        if not args.bootstrap_servers or not args.topic:
            raise ConfigError("--source kafka needs --bootstrap-servers HOST:PORT and --topic T")
        if not _BOOTSTRAP.match(args.bootstrap_servers):
            raise ConfigError(
                f"--bootstrap-servers must look like HOST:PORT[,HOST:PORT], got {args.bootstrap_servers!r}"
            )
        if not _TOPIC.match(args.topic):
            raise ConfigError(f"--topic must be a Kafka topic name (letters, digits, . _ -), got {args.topic!r}")
        return StreamRequest("kafka", checkpoint, args.available_now, None, args.bootstrap_servers, args.topic)
    if not args.input:
        raise ConfigError("--source files needs --input DIR")
    folder = args.input
    if not is_uri(folder):
        _require_local_folder(folder, "event folder")
        folder = str(Path(folder).resolve())
    return StreamRequest("files", checkpoint, args.available_now, folder)


def _command(
    args: argparse.Namespace, config: Config
) -> tuple[Callable[[SparkSession | None], Result], dict[str, str] | None]:
    """The command's run function (given the session, or None when it needs none) and the extra
    session settings it needs. Every flag is checked here, before any session starts."""
    if args.command in ("deploy", "catalog", "iam-policy"):
        return _cloud_command(args, config), None
    if args.command in ("slo", "report"):
        return _observe_command(args, config), {}
    # Imported here: a usage error or `--help` must not wait for (or need) PySpark.
    from shipments.batch.backfill import BackfillRequest, run_backfill
    from shipments.batch.daily import DailyRequest, run_daily
    from shipments.batch.reconcile import ReconcileRequest, run_reconcile
    from shipments.batch.restore import RestoreRequest, run_restore
    from shipments.stream.job import run_stream, stream_session_settings
    from shipments.stream.lookup import StatusRequest, needs_spark, run_status
    from shipments.stream.metrics import enable_json_lines

    if args.command == "daily":
        _require_local_folder(config.raw, "raw folder")
        daily = DailyRequest(args.date, allow_shrink=args.allow_shrink)
        return (lambda spark: run_daily(_session(spark), config, daily)), {}
    if args.command == "backfill":
        backfill = BackfillRequest(
            args.start, args.end, args.parallelism, args.force, args.dry_run, allow_shrink=args.allow_shrink
        )
        _require_local_folder(config.raw, "raw folder")
        return (lambda spark: run_backfill(_session(spark), config, backfill)), {}
    if args.command == "restore":
        restore = RestoreRequest(args.date, args.to_version)
        return (lambda spark: run_restore(_session(spark), config, restore)), {}
    if args.command == "reconcile":
        _require_local_folder(config.raw, "raw folder")
        reconcile = ReconcileRequest(args.date)
        return (lambda spark: run_reconcile(_session(spark), config, reconcile)), {}
    if args.command == "stream":
        stream = _stream_request(config, args)
        enable_json_lines()
        settings = stream_session_settings(config.stream, stream.checkpoint, config.spark.platform)
        return (lambda spark: run_stream(_session(spark), config, stream)), settings
    if args.command == "status":
        status = StatusRequest(args.shipment_id)
        return (lambda spark: run_status(spark, config, status)), ({} if needs_spark(config) else None)
    if args.command == "scheduled":
        _require_local_folder(config.raw, "raw folder")
        scheduled = DailyRequest(args.time.astimezone(dt.UTC).date() - dt.timedelta(days=1))
        return (lambda spark: run_daily(_session(spark), config, scheduled)), {}
    raise ConfigError(f"unknown command {args.command!r}")


def _session(spark: SparkSession | None) -> SparkSession:
    if spark is None:
        raise ValueError("this command needs a SparkSession")
    return spark


def _generate(args: argparse.Namespace) -> GenerateResult:
    from shipments.devtools.generate import generate_raw_zone

    return generate_raw_zone(
        Path(args.out),
        args.start,
        args.days,
        shipments_per_day=args.shipments_per_day,
        customers=args.customers,
        seed=args.seed,
        events_per_day=args.events_per_day,
        layout=args.layout or _configured_layout(args),
        deletes=args.deletes,
    )


def _configured_layout(args: argparse.Namespace) -> str:
    """``daily.layout`` of the config when there is one (generate works without a config)."""
    return _config(args).daily.layout if Path(args.conf).is_file() else "default"


def _run(args: argparse.Namespace) -> int:
    if args.command == "generate":
        result: Result = _generate(args)
    else:
        config = _config(args)
        run, session_settings = _command(args, config)
        spark = None
        if session_settings is not None:
            from shipments.session import build_spark

            spark = build_spark(config.spark, f"shipments-{args.command}", session_settings, lineage=config.lineage)
        result = run(spark)
    print(result.summary())
    return result.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    install_log_redaction()
    try:
        return _run(args)
    except ShipmentsError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"shipments {args.command}: error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"shipments {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the one broad handler: anything unexpected becomes one line
        if args.verbose:
            traceback.print_exc()
        print(
            f"shipments {args.command}: failed: {describe(exc, 500)} (rerun with --verbose for details)",
            file=sys.stderr,
        )
        return EXIT_FAILED
