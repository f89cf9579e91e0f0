"""The ``shipments`` command line (also ``python -m shipments``).

Arguments are validated before any Spark session starts, so a bad one costs nothing and
changes nothing. Every failure ends in one line on stderr and a non-zero exit status; a
traceback is printed only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from shipments.config import Config, load_config
from shipments.dates import parse_date
from shipments.errors import ConfigError, InputError, ShipmentsError, describe

log = logging.getLogger("shipments")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (not usage text plus a message)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _date(text: str) -> dt.date:
    try:
        return parse_date(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--conf", default="conf/local.yaml", help="config file (default: %(default)s)")
    common.add_argument("--raw", help="raw zone folder or URI, overrides paths.raw")
    common.add_argument("--lake", help="lake folder or URI, overrides paths.lake")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")

    parser = _Parser(prog="shipments", description="Shipment pipelines on Spark + Delta Lake.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    daily = command("daily", "the daily batch job for one ship date", _daily)
    daily.add_argument("--date", type=_date, required=True, help="ship date, YYYY-MM-DD")

    backfill = command("backfill", "one isolated daily run per date, N at a time", _backfill)
    backfill.add_argument("--start", type=_date, required=True, help="first date, YYYY-MM-DD")
    backfill.add_argument("--end", type=_date, required=True, help="last date (inclusive), YYYY-MM-DD")
    backfill.add_argument("--parallelism", type=_positive_int, default=1, help="dates run at once (default 1)")
    backfill.add_argument("--force", action="store_true", help="re-run dates that already succeeded on the same input")
    backfill.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")

    restore = command("restore", "put partition D of shipment_daily_totals back as of a table version", _restore)
    restore.add_argument("--date", type=_date, required=True, help="ship date, YYYY-MM-DD")
    restore.add_argument("--to-version", type=_non_negative_int, required=True, help="table version to restore from")

    stream = command("stream", "the status stream: events -> shipment_status", _stream)
    stream.add_argument("--source", choices=("kafka", "files"), required=True)
    stream.add_argument("--input", help="folder of JSON-lines event files (--source files)")
    stream.add_argument("--bootstrap-servers", help="Kafka bootstrap servers HOST:PORT (--source kafka)")
    stream.add_argument("--topic", help="Kafka topic (--source kafka)")
    stream.add_argument("--checkpoint", help="checkpoint folder or URI (default: stream.checkpoint in the config)")
    stream.add_argument("--available-now", action="store_true", help="process what is there, then stop")

    status = command("status", "print a shipment's current status as JSON", _status)
    status.add_argument("shipment_id")

    reconcile = command("reconcile", "compare raw vs table for a date and explain differences", _reconcile)
    reconcile.add_argument("--date", type=_date, required=True, help="ship date, YYYY-MM-DD")

    generate = command("generate", "write a realistic raw zone (and status events) to try things on", _generate)
    generate.add_argument("--out", required=True, help="folder to write the raw zone into")
    generate.add_argument("--start", type=_date, required=True, help="first ingest date, YYYY-MM-DD")
    generate.add_argument("--days", type=_positive_int, required=True, help="number of days")
    generate.add_argument("--shipments-per-day", type=_positive_int, default=2000, help="default %(default)s")
    generate.add_argument("--customers", type=_positive_int, default=200, help="default %(default)s")
    generate.add_argument("--seed", type=int, default=7, help="default %(default)s")
    generate.add_argument("--events-per-day", type=_non_negative_int, default=None, help="status events (default: 2 per shipment)")
    return parser


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.conf, raw=args.raw, lake=args.lake)


def _require_local_folder(path: str, what: str) -> None:
    """Fail fast (before Spark starts) when a local input folder is missing."""
    if "://" not in path and not Path(path).is_dir():
        raise InputError(f"{what} {path} does not exist")


def _spark(config: Config, app: str):  # type: ignore[no-untyped-def]
    from shipments.session import build_spark

    return build_spark(config.spark, app)


def _daily(args: argparse.Namespace) -> int:
    from shipments.daily import run_daily

    config = _config(args)
    _require_local_folder(config.raw, "raw folder")
    result = run_daily(_spark(config, f"shipments-daily-{args.date}"), config, args.date)
    print(result.summary())
    return EXIT_OK


def _backfill(args: argparse.Namespace) -> int:
    from shipments.backfill import run_backfill_command

    if args.end < args.start:
        raise ConfigError(f"--end {args.end} is before --start {args.start}")
    config = _config(args)
    _require_local_folder(config.raw, "raw folder")
    return run_backfill_command(
        lambda: _spark(config, f"shipments-backfill-{args.start}-{args.end}"),
        config,
        args.start,
        args.end,
        parallelism=args.parallelism,
        force=args.force,
        dry_run=args.dry_run,
    )


def _restore(args: argparse.Namespace) -> int:
    from shipments.restore import run_restore

    config = _config(args)
    print(run_restore(_spark(config, "shipments-restore"), config, args.date, args.to_version).summary())
    return EXIT_OK


def _stream(args: argparse.Namespace) -> int:
    from shipments.stream import run_stream_command

    config = _config(args)
    return run_stream_command(lambda: _spark(config, "shipments-status-stream"), config, args)


def _status(args: argparse.Namespace) -> int:
    from shipments.status import run_status_command

    config = _config(args)
    return run_status_command(lambda: _spark(config, "shipments-status"), config, args.shipment_id)


def _reconcile(args: argparse.Namespace) -> int:
    from shipments.reconcile import run_reconcile_command

    config = _config(args)
    _require_local_folder(config.raw, "raw folder")
    return run_reconcile_command(_spark(config, f"shipments-reconcile-{args.date}"), config, args.date)


def _generate(args: argparse.Namespace) -> int:
    from shipments.generate import generate_raw_zone

    summary = generate_raw_zone(
        Path(args.out),
        args.start,
        args.days,
        shipments_per_day=args.shipments_per_day,
        customers=args.customers,
        seed=args.seed,
        events_per_day=args.events_per_day,
    )
    print(summary)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        return int(args.handler(args))
    except ShipmentsError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"shipments {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"shipments {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the one broad handler: anything unexpected becomes one line
        if args.verbose:
            traceback.print_exc()
        print(f"shipments {args.command}: failed: {describe(exc, 500)} (rerun with --verbose for details)", file=sys.stderr)
        return EXIT_FAILED
