"""End to end through a real Kafka broker: duplicates, out-of-order, late and malformed events,
exact table contents, and a replay of the last batch from the checkpoint.

The stream runs in-process on the test session with ``--available-now`` semantics; each run
is one micro-batch, so the independent model in ``stream_fixtures`` knows the batch borders.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable as RsTable
from pyspark.sql import SparkSession

from shipments.config import Config, load_config
from shipments.storage import streams
from shipments.stream.job import StreamRequest, run_stream
from tests.stream_fixtures import (  # noqa: F401
    ROOT,
    at_minute,
    event,
    kafka,
    model_tables,
    progress_lines,
    read_rows,
    read_status,
)

pytestmark = pytest.mark.slow

TOPIC = "status-e2e"
LATENESS = dt.timedelta(hours=1)

PHASE_1 = [
    event("e101", "S1", "CREATED", 0),
    event("e102", "S1", "PICKED_UP", 10, offset="+05:30"),
    event("e102", "S1", "PICKED_UP", 10, offset="+05:30"),  # delivered twice
    event("e201", "S2", "CREATED", 5, offset="-08:00"),
    event("e203", "S2", "IN_TRANSIT", 30),
    event("e202", "S2", "PICKED_UP", 20),  # out of order within the batch
    event("e301", "S3", "CREATED", 50, location=None),  # the greatest event time: watermark -> minute -10
    '{"event_id": "broken", "shipment_id": ',
    "not json at all",
    "not json at all",  # the same bad payload again: a record of its own (its own offset)
    '{"event_id":"e901","shipment_id":"S9","status":"CREATED"}',
    '{"event_id":"e902","shipment_id":"S9","status":"TELEPORTED","event_time":"2026-11-20T10:00:00Z"}',
]
PHASE_2 = [
    event("e104", "S1", "IN_TRANSIT", 40),  # newer: replaces e102
    event("e200", "S2", "CREATED", 25),  # on time, but older than S2's stored event: no change
    event("e102", "S1", "PICKED_UP", 10, offset="+05:30"),  # re-delivered in a later batch
    event("e401", "S4", "CREATED", -30),  # older than the watermark: late
    event("e401", "S4", "CREATED", -30),  # ... and delivered twice
    event("e099", "S1", "CREATED", -11),  # late as well, must not touch S1
    event("e302", "S3", "DELIVERED", 50),  # same time as e301, greater event_id: wins
    event("e501", "S5", "CREATED", -10),  # exactly at the watermark: on time
    "",
    '{"event_id":"e903","shipment_id":"S9","status":"CREATED","event_time":"2026-11-20T10:00:00"}',
]


def _key(line: str) -> str | None:
    import json

    try:
        body = json.loads(line)
        return body.get("shipment_id") if isinstance(body, dict) else None
    except ValueError:
        return None


@pytest.fixture(scope="module")
def no_data_batches_off(spark: SparkSession) -> Iterator[None]:
    # As `shipments stream` does (configure_stream_session): one micro-batch per run here.
    spark.conf.set("spark.sql.streaming.noDataMicroBatches.enabled", "false")
    yield
    spark.conf.unset("spark.sql.streaming.noDataMicroBatches.enabled")


@pytest.fixture(scope="module")
def e2e(
    spark: SparkSession,
    kafka: Any,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    no_data_batches_off: None,
) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("stream-e2e")
    config: Config = load_config(ROOT / "conf" / "local.yaml", raw=str(work / "raw"), lake=str(work / "lake"))
    request = StreamRequest("kafka", str(work / "checkpoint"), True, None, kafka.bootstrap_servers, TOPIC)
    kafka.create_topic(TOPIC, partitions=2)
    coordinates: dict[str, list[tuple[int, int]]] = {}
    with progress_lines() as progress:
        for phase, lines in (("1", PHASE_1), ("2", PHASE_2)):
            sent = kafka.produce(TOPIC, [(_key(line), line) for line in lines])
            coordinates[phase] = sent
            result = run_stream(spark, config, request)
            assert len(result.batches) == 1, f"phase {phase} ran {sorted(result.batches)} batches"
    return {"config": config, "work": work, "request": request, "coordinates": coordinates, "progress": progress}


def test_each_batch_reads_its_kafka_records_once(spark: SparkSession, e2e: dict[str, Any]) -> None:
    # Rejected records pass the dedup operator with valid events, so one plan reads the source
    # once; a union of a valid and a rejected branch read every record twice (2 x input_rows).
    got = [
        (line["batch_id"], line["input_rows"], line["duplicates_dropped"], line["records"]) for line in e2e["progress"]
    ]
    # Phase 1: e102's copy dropped (the copy of a bad payload is a record of its own); phase 2:
    # e102 again (within the 10-minute dedup window of processing time) and e401's copy.
    assert got == [(0, len(PHASE_1), 1, len(PHASE_1) - 1), (1, len(PHASE_2), 2, len(PHASE_2) - 2)]
    assert streams.checkpoint_sources(spark, e2e["request"].checkpoint) == 1


def test_kafka_end_to_end_exact_table_contents(spark: SparkSession, e2e: dict[str, Any]) -> None:
    lake = Path(e2e["config"].lake)
    expected = model_tables([PHASE_1, PHASE_2], LATENESS)
    # The model, spelled out, so a wrong model cannot hide a wrong job.
    assert expected.status == {
        "S1": ("IN_TRANSIT", at_minute(40), "e104"),
        "S2": ("IN_TRANSIT", at_minute(30), "e203"),
        "S3": ("DELIVERED", at_minute(50), "e302"),
        "S5": ("CREATED", at_minute(-10), "e501"),
    }
    assert expected.late_event_ids == ["e099", "e401"]

    assert read_status(spark, lake) == expected.status

    late = read_rows(spark, lake / "shipment_status_late")
    assert sorted(r["event_id"] for r in late) == expected.late_event_ids
    assert {r["watermark"] for r in late} == {at_minute(50) - LATENESS}
    assert {r["batch_id"] for r in late} == {1}

    dlq = read_rows(spark, lake / "shipment_status_dlq")
    assert sorted(r["raw_value"] or "" for r in dlq) == sorted(expected.dlq_values)
    assert all(r["source_topic"] == TOPIC and r["error"] for r in dlq)
    # Each dead letter points at its own Kafka record.
    produced = {
        (p, o): line
        for phase, lines in (("1", PHASE_1), ("2", PHASE_2))
        for line, (p, o) in zip(lines, e2e["coordinates"][phase], strict=True)
    }
    for r in dlq:
        assert produced[(r["source_partition"], r["source_offset"])] == (r["raw_value"] or "")
    errors = sorted(r["error"] for r in dlq)
    assert errors == sorted(
        [
            "malformed_json",
            "malformed_json",
            "malformed_json",
            "malformed_json",
            "missing_field:event_time",
            "bad_value:status",
            "bad_timestamp:event_time",
        ]
    )


def _snapshot(spark: SparkSession, lake: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {
        name: sorted((tuple(r) for r in spark.read.format("delta").load(str(lake / name)).collect()), key=repr)
        for name in ("shipment_status", "shipment_status_late", "shipment_status_dlq")
    }


def test_replaying_the_last_batch_changes_nothing(spark: SparkSession, e2e: dict[str, Any]) -> None:
    lake = Path(e2e["config"].lake)
    checkpoint = Path(e2e["request"].checkpoint)
    before = _snapshot(spark, lake)
    last = max(int(p.name) for p in (checkpoint / "commits").iterdir() if p.name.isdigit())
    assert last == 1
    # As if the job died after the batch's writes but before Spark recorded it as committed.
    (checkpoint / "commits" / str(last)).unlink()
    (checkpoint / "commits" / f".{last}.crc").unlink(missing_ok=True)

    result = run_stream(spark, e2e["config"], e2e["request"])

    assert sorted(result.batches) == [last], "the last batch was replayed, and only it"
    assert result.batches[last].late == 2 and result.batches[last].dlq == 2
    assert _snapshot(spark, lake) == before


def test_a_checkpoint_of_the_plan_that_read_twice_restarts_with_that_plan(
    spark: SparkSession,
    kafka: Any,  # noqa: F811
    tmp_path: Path,
    no_data_batches_off: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Until 2026-12 the plan was a union over the source, and its checkpoints record two sources;
    # Spark refuses to restart one with a plan of one source ("There are [2] sources in the
    # checkpoint offsets and now there are [1]"), so such a checkpoint keeps its plan.
    topic = "status-two-reads"
    kafka.create_topic(topic, partitions=1)
    config = load_config(ROOT / "conf" / "local.yaml", raw=str(tmp_path / "raw"), lake=str(tmp_path / "lake"))
    request = StreamRequest("kafka", str(tmp_path / "checkpoint"), True, None, kafka.bootstrap_servers, topic)
    created = event("e1", "S1", "CREATED", 0)
    kafka.produce(topic, [(_key(line), line) for line in (created, "not json")])
    with monkeypatch.context() as patch:  # the first run writes a checkpoint as the old plan did
        patch.setattr(streams, "checkpoint_sources", lambda spark, checkpoint: 2)
        run_stream(spark, config, request)
    assert streams.checkpoint_sources(spark, request.checkpoint) == 2

    second = (created, event("e2", "S1", "PICKED_UP", 10), "not json")
    kafka.produce(topic, [(_key(line), line) for line in second])
    with progress_lines() as progress:
        result = run_stream(spark, config, request)

    assert sorted(result.batches) == [1]
    # The source read twice (2 x 3 records); `created` again is a re-delivery the state drops.
    assert [(p["input_rows"], p["duplicates_dropped"], p["on_time_rows"], p["dlq_rows"]) for p in progress] == [
        (6, 1, 1, 1)
    ]
    assert read_status(spark, tmp_path / "lake") == {"S1": ("PICKED_UP", at_minute(10), "e2")}
    dlq = read_rows(spark, tmp_path / "lake" / "shipment_status_dlq")
    assert sorted((r["source_offset"], r["raw_value"]) for r in dlq) == [(1, "not json"), (4, "not json")]


def test_tombstones_and_repeated_bad_payloads_are_each_a_dead_letter_of_their_own(
    spark: SparkSession,
    kafka: Any,  # noqa: F811
    tmp_path: Path,
    no_data_batches_off: None,
) -> None:
    # As other producers write a topic: tombstones (null value, as log compaction and CDC tools
    # send for a delete), the same bad payload twice, Windows line ends inside a valid JSON value.
    # Each malformed record passes the dedup state under its own offset, so none is merged away.
    topic = "status-real-world"
    kafka.create_topic(topic, partitions=1)
    config = load_config(ROOT / "conf" / "local.yaml", raw=str(tmp_path / "raw"), lake=str(tmp_path / "lake"))
    request = StreamRequest("kafka", str(tmp_path / "checkpoint"), True, None, kafka.bootstrap_servers, topic)
    crlf = event("e1", "S1", "CREATED", 0).replace(",", ",\r\n") + "\r\n"  # pretty-printed on Windows
    records: list[tuple[str | None, str | None]] = [
        ("S1", crlf),
        ("S1", None),
        ("S1", None),
        (None, "<html>502 Bad Gateway</html>"),
        (None, "<html>502 Bad Gateway</html>"),
    ]
    kafka.produce(topic, records)
    with progress_lines() as progress:
        run_stream(spark, config, request)

    assert [(p["input_rows"], p["duplicates_dropped"], p["on_time_rows"], p["dlq_rows"]) for p in progress] == [
        (5, 0, 1, 4)
    ]
    assert read_status(spark, tmp_path / "lake") == {"S1": ("CREATED", at_minute(0), "e1")}
    dlq = read_rows(spark, tmp_path / "lake" / "shipment_status_dlq")
    assert sorted((r["source_offset"], r["raw_value"], r["error"]) for r in dlq) == [
        (1, None, "malformed_json"),
        (2, None, "malformed_json"),
        (3, "<html>502 Bad Gateway</html>", "malformed_json"),
        (4, "<html>502 Bad Gateway</html>", "malformed_json"),
    ]


def test_bytes_that_are_not_utf8_become_replacement_characters_and_every_table_stays_readable(
    spark: SparkSession,
    kafka: Any,  # noqa: F811
    tmp_path: Path,
    no_data_batches_off: None,
) -> None:
    """Producers send Latin-1 and binary garbage too. Kept as they came, such bytes make the
    Parquet file unreadable to a reader that checks UTF-8 (delta-rs, so the driver MERGE: one bad
    payload in the DLQ would fail every later insert into it). They arrive as U+FFFD."""
    topic = "status-not-utf8"
    kafka.create_topic(topic, partitions=1)
    config = load_config(ROOT / "conf" / "local.yaml", raw=str(tmp_path / "raw"), lake=str(tmp_path / "lake"))
    request = StreamRequest("kafka", str(tmp_path / "checkpoint"), True, None, kafka.bootstrap_servers, topic)
    # json.dumps escapes the ü (ASCII out); a Latin-1 producer sends it as the one byte 0xFC
    latin1 = event("e1", "S1", "CREATED", 0, location="M\u00fcnchen").replace("\\u00fc", "\u00fc").encode("latin-1")
    assert b"M\xfcnchen" in latin1
    kafka.produce(topic, [(None, b"\xff\xfe{binary"), ("S1", latin1)])
    run_stream(spark, config, request)
    # a second run inserts into the DLQ again, through whatever reads the first run's rows
    kafka.produce(topic, [(None, b"\xc3(not json")])
    run_stream(spark, config, request)

    lake = tmp_path / "lake"
    status = {r["shipment_id"]: r["location"] for r in read_rows(spark, lake / "shipment_status")}
    assert status == {"S1": "M\ufffdnchen"}
    dlq = read_rows(spark, lake / "shipment_status_dlq")
    assert sorted((r["source_offset"], r["raw_value"]) for r in dlq) == [
        (0, "\ufffd\ufffd{binary"),
        (2, "\ufffd(not json"),
    ]
    for table in ("shipment_status", "shipment_status_dlq"):
        assert RsTable(str(lake / table)).to_pyarrow_table().num_rows == len(
            status if table == "shipment_status" else dlq
        )
