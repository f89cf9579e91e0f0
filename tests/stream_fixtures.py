"""Fixtures and helpers of the streaming tests: a real Kafka broker, a moto DynamoDB server,
subprocess runs of the job, and an independent model of what the tables must hold.

Import the fixtures a module needs from here (``from tests.stream_fixtures import kafka``).
Every process started here is stopped by its pid in a finalizer.

Run as a module, it is ``shipments`` with a pause point, so a test can SIGKILL the job exactly
there (see ``install_pause``)::

    python -m tests.stream_fixtures MARKER_FILE POINT shipments-args...
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipments.devtools.kafka_broker import KafkaBroker, free_port

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
UTC = dt.UTC


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker.start(tmp_path_factory.mktemp("kafka"))
    try:
        yield broker
    finally:
        broker.stop()


@dataclasses.dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    endpoint_url: str
    region: str = "eu-west-1"

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client("dynamodb", region_name=self.region, endpoint_url=self.endpoint_url)


MOTO_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}


@contextlib.contextmanager
def local_service(
    command: list[str], folder: Path, name: str, ready_url: str, timeout: float
) -> Iterator[subprocess.Popen[bytes]]:
    """A service process (its log in ``folder``), awaited until ``ready_url`` answers; stopped by
    its pid on the way out."""
    log = folder / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:

        def up() -> bool:
            assert process.poll() is None, f"{name} exited: {log.read_text()[-500:]}"
            try:
                with urllib.request.urlopen(ready_url, timeout=1) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_for(up, timeout, name)
        yield process
    finally:
        stop_process(process)


@contextlib.contextmanager
def moto_server(folder: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """moto's server mode on a free 127.0.0.1 port (its log in ``folder``): (process, endpoint).
    Waits until it answers; stops it by its pid on the way out."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    command = [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", endpoint.rsplit(":", 1)[1]]
    with local_service(command, folder, "moto", f"{endpoint}/moto-api/", 60) as process:
        yield process, endpoint


@pytest.fixture(scope="session")
def moto_dynamodb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's server mode on 127.0.0.1: the accepted stand-in for DynamoDB here."""
    with moto_server(tmp_path_factory.mktemp("moto")) as (process, endpoint), _env(MOTO_ENV):
        yield MotoServer(process, endpoint)


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def stop_process(process: subprocess.Popen[Any], grace: float = 20) -> None:
    """Stop a process we started, by its pid: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def write_conf(path: Path, lake: Path, stream: dict[str, Any]) -> Path:
    """A config extending the project's local.yaml with test stream settings."""
    data = {
        "extends": str(ROOT / "conf" / "local.yaml"),
        "paths": {"raw": str(path.parent / "raw"), "lake": str(lake)},
        "spark": {
            "settings": {
                "spark.driver.memory": "1g",
                "spark.sql.shuffle.partitions": "2",
                "spark.default.parallelism": "2",
            }
        },
        "stream": stream,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def shipments_cmd(conf: Path, *args: str) -> list[str]:
    return [PYTHON, "-m", "shipments", *args[:1], "--conf", str(conf), *args[1:]]


# --------------------------------------------------------------------------- sink input rows

ARRIVED = dt.datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)


class _ProgressLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = json.loads(record.getMessage())
        if line.get("event") == "stream_progress":
            self.lines.append(line)


@contextlib.contextmanager
def progress_lines() -> Iterator[list[dict[str, Any]]]:
    """The stream's progress lines (one per micro-batch, on ``shipments.metrics``) logged in the
    block, parsed; the list fills as they come."""
    metrics, handler = logging.getLogger("shipments.metrics"), _ProgressLines()
    level = metrics.level
    metrics.addHandler(handler)
    metrics.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        metrics.setLevel(level)
        metrics.removeHandler(handler)


def nov20(hh: int, mm: int = 0) -> dt.datetime:
    """2026-11-20 hh:mm UTC."""
    return dt.datetime(2026, 11, 20, hh, mm, tzinfo=UTC)


def event_row(
    event_id: str, shipment: str, status: str, when: dt.datetime, offset: int, location: str | None = None
) -> tuple[Any, ...]:
    """A valid event as the sink receives it (``STREAM_RECORD_SCHEMA``), from Kafka topic "events"."""
    return (None, None, event_id, shipment, status, when, when, location, ARRIVED, "events", 0, offset, None)


def rejected_row(raw: str | None, error: str, offset: int) -> tuple[Any, ...]:
    """A malformed Kafka record as the sink receives it."""
    return (error, raw, None, None, None, None, None, None, ARRIVED, "events", 0, offset, None)


def rejected_line(raw: str, error: str, source_file: str) -> tuple[Any, ...]:
    """A malformed line of a file (the files source) as the sink receives it."""
    return (error, raw, None, None, None, None, None, None, ARRIVED, None, None, None, source_file)


def record_batch(spark: Any, *rows: tuple[Any, ...]) -> Any:
    """A micro-batch of the given rows, as the plan hands it to the sink."""
    from shipments.model.events import STREAM_RECORD_SCHEMA

    return spark.createDataFrame(list(rows), STREAM_RECORD_SCHEMA)


@pytest.fixture
def dynamodb_workers(spark: Any, moto_dynamodb: MotoServer) -> Iterator[None]:
    """Python workers of the test session that can run the sink's DynamoDB writes against moto.

    The workers are started by the JVM with the environment the test session was launched with,
    before ``moto_dynamodb`` set its test credentials; Spark passes ``SparkContext.environment``
    to the workers it starts (on AWS the instance or job role provides credentials).
    """
    context = spark.sparkContext
    saved_env = dict(context.environment)
    context.environment.update(MOTO_ENV)
    try:
        yield
    finally:
        context.environment.clear()
        context.environment.update(saved_env)


# --------------------------------------------------------------------------- events and the model


BASE = dt.datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def event(
    event_id: str, shipment_id: str, status: str, minutes: float, *, offset: str = "Z", location: str | None = "Leipzig"
) -> str:
    """An event JSON line whose event_time is BASE + minutes, written in the given offset."""
    instant = BASE + dt.timedelta(minutes=minutes)
    if offset == "Z":
        text = instant.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    else:
        sign = 1 if offset[0] == "+" else -1
        delta = dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
        text = (instant + sign * delta).strftime("%Y-%m-%dT%H:%M:%S") + offset
    body: dict[str, Any] = {"event_id": event_id, "shipment_id": shipment_id, "status": status, "event_time": text}
    if location is not None:
        body["location"] = location
    return json.dumps(body, separators=(",", ":"))


def at_minute(minutes: float) -> dt.datetime:
    """BASE + minutes (aware, UTC)."""
    return BASE + dt.timedelta(minutes=minutes)


def utc(value: Any) -> Any:
    """A collected timestamp as an aware UTC datetime.

    PySpark hands timestamps to Python as naive datetimes in the Python process's local zone
    (the tests run it in America/Los_Angeles on purpose), not in the session's UTC.
    """
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC) if value.tzinfo is None else value
    return value


REQUIRED = ("event_id", "shipment_id", "status", "event_time")
STATUSES = {"CREATED", "PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED", "EXCEPTION", "CANCELLED", "RETURNED"}


def model_parse(line: str) -> dict[str, Any] | None:
    """The contract's validity rule, written independently of the code under test."""
    try:
        body = json.loads(line)
    except ValueError:
        return None
    if not isinstance(body, dict) or any(not isinstance(body.get(k), str) or not body[k].strip() for k in REQUIRED):
        return None
    if body["status"] not in STATUSES:
        return None
    try:
        when = dt.datetime.fromisoformat(body["event_time"].replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return {**body, "event_time": when.astimezone(UTC)}


@dataclasses.dataclass
class Expected:
    status: dict[str, tuple[str, dt.datetime, str]]  # shipment -> (status, event_time, event_id)
    late_event_ids: list[str]
    dlq_values: list[str]


def model_tables(batches: Iterable[Iterable[str]], lateness: dt.timedelta) -> Expected:
    """What the tables must hold after the given batches (each processed as one micro-batch).

    Per batch: malformed -> DLQ; an event seen before (same event_id and content) is dropped; an
    event older than (max event_time of earlier batches - lateness) is late, and stored once per
    event_id; of the rest, each shipment's newest by (event_time, event_id), then status, then
    location (none smallest: the documented order for an event_id reused with other content)
    replaces the stored status when its (event_time, event_id) is greater.
    """
    seen: set[tuple[str, tuple[Any, ...]]] = set()
    max_time: dt.datetime | None = None
    status: dict[str, tuple[str, dt.datetime, str]] = {}
    late: set[str] = set()
    dlq: list[str] = []
    for batch in batches:
        watermark = max_time - lateness if max_time else None
        batch_max = max_time
        newest: dict[str, tuple[Any, ...]] = {}
        for line in batch:
            parsed = model_parse(line)
            if parsed is None:
                dlq.append(line)
                continue
            location = parsed.get("location")
            content = (parsed["shipment_id"], parsed["status"], parsed["event_time"], location)
            if (parsed["event_id"], content) in seen:
                continue
            seen.add((parsed["event_id"], content))
            when = parsed["event_time"]
            batch_max = when if batch_max is None else max(batch_max, when)
            if watermark is not None and when < watermark:
                late.add(parsed["event_id"])
                continue
            candidate = (when, parsed["event_id"], parsed["status"], location is not None, location or "")
            newest[parsed["shipment_id"]] = max(candidate, newest.get(parsed["shipment_id"], candidate))
        for shipment, (when, event_id, state, *_) in newest.items():
            current = status.get(shipment)
            if current is None or (when, event_id) > (current[1], current[2]):
                status[shipment] = (state, when, event_id)
        max_time = batch_max
    return Expected(status, sorted(late), sorted(dlq))


def read_status(spark: Any, lake: Path) -> dict[str, tuple[str, dt.datetime, str]]:
    rows = spark.read.format("delta").load(str(lake / "shipment_status")).collect()
    return {r["shipment_id"]: (r["status"], utc(r["event_time"]), r["event_id"]) for r in rows}


def read_rows(spark: Any, path: Path) -> list[dict[str, Any]]:
    return [{k: utc(v) for k, v in r.asDict().items()} for r in spark.read.format("delta").load(str(path)).collect()]


# --------------------------------------------------------------------------- pause points

PAUSE_AT_SINK_START = "sink_start"
PAUSE_AFTER_INSERT = "after_insert:"  # + a table name: shipment_status_dlq, shipment_status_late


def install_pause(point: str, marker: Path) -> None:
    """Make this process's stream stop for good at ``point``, announcing it in ``marker``.

    ``sink_start``: when a micro-batch reaches the sink, before it writes anything.
    ``after_insert:<table>``: right after a batch's insert into ``<table>`` returned (committed),
    before the batch's next write and its commit in the checkpoint.
    The first time the point is reached, ``marker`` is written whole (``{"point", "batch_id"}``)
    and the ``foreachBatch`` call blocks until the process is killed.
    """
    import threading

    from shipments.storage import delta
    from shipments.storage.driver_merge import DriverMerge
    from shipments.stream.sink import StatusBatchSink

    def pause(batch_id: int) -> None:
        temporary = marker.with_name(marker.name + ".tmp")
        temporary.write_text(json.dumps({"point": point, "batch_id": batch_id}))
        temporary.replace(marker)
        threading.Event().wait()

    if point == PAUSE_AT_SINK_START:
        sink_call = StatusBatchSink.__call__

        def call(self: StatusBatchSink, batch: Any, batch_id: int) -> None:
            pause(batch_id)
            sink_call(self, batch, batch_id)

        StatusBatchSink.__call__ = call  # type: ignore[method-assign]
    elif point.startswith(PAUSE_AFTER_INSERT):
        table = point.removeprefix(PAUSE_AFTER_INSERT)
        insert = delta.merge_insert_new
        driver_insert = DriverMerge.insert_new

        def insert_then_pause(source: Any, path: str, *, keys: Any, note: str) -> None:
            insert(source, path, keys=keys, note=note)
            if Path(path).name == table:
                pause(int(note.rsplit(" ", 1)[1]))  # the note is "shipment_status batch <id>"

        def driver_insert_then_pause(self: DriverMerge, source: Any, *, keys: Any, note: str) -> bool:
            if not driver_insert(self, source, keys=keys, note=note):
                return False  # over the cap: Spark's insert follows, and pauses
            if Path(self.path).name == table:
                pause(int(note.rsplit(" ", 1)[1]))
            return True

        # the insert is Spark's or delta-rs's (storage.driver_merge), whichever the table gets
        delta.merge_insert_new = insert_then_pause
        DriverMerge.insert_new = driver_insert_then_pause  # type: ignore[method-assign]
    else:
        raise ValueError(f"unknown pause point {point!r}")


def paused_cmd(marker: Path, point: str, conf: Path, *args: str) -> list[str]:
    """``shipments_cmd`` that stops for good at ``point`` (run it with cwd=ROOT)."""
    return [PYTHON, "-m", "tests.stream_fixtures", str(marker), point, *shipments_cmd(conf, *args)[3:]]


if __name__ == "__main__":
    from shipments.cli import main

    install_pause(sys.argv[2], Path(sys.argv[1]))
    sys.exit(main(sys.argv[3:]))
