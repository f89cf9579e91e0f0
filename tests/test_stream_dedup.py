"""An event_id reused for different content: the winner does not depend on arrival order, and the
reuse is counted in the batch's progress line. The whole plan runs (files source, dedup state,
sink) in-process with ``--available-now`` semantics, one micro-batch per run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from shipments.config import load_config
from shipments.storage import streams
from shipments.stream.job import StreamRequest, run_stream
from tests.stream_fixtures import ROOT, at_minute, event, progress_lines, read_rows, read_status

pytestmark = pytest.mark.slow

IN_TRANSIT = event("e1", "S1", "IN_TRANSIT", 10)
DELIVERED = event("e1", "S1", "DELIVERED", 10, location="Hof")
# An exact re-delivery is a duplicate, not a reuse: dropped by the dedup state, not counted.
CREATED = event("e2", "S2", "CREATED", 0)


@pytest.fixture
def no_data_batches_off(spark: SparkSession) -> Iterator[None]:
    # As `shipments stream` does (stream_session_settings): one micro-batch per run here.
    spark.conf.set("spark.sql.streaming.noDataMicroBatches.enabled", "false")
    yield
    spark.conf.unset("spark.sql.streaming.noDataMicroBatches.enabled")


ORDERS = {
    "in_transit_first": [IN_TRANSIT, CREATED, DELIVERED, CREATED],
    "delivered_first": [DELIVERED, CREATED, IN_TRANSIT, CREATED],
}


@pytest.mark.parametrize("lines", ORDERS.values(), ids=ORDERS.keys())
def test_an_event_id_reused_for_other_content_gives_the_same_status_in_either_order_and_is_counted(
    spark: SparkSession,
    tmp_path: Path,
    lines: list[str],
    no_data_batches_off: None,
) -> None:
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "part-0.jsonl").write_text("\n".join(lines) + "\n")
    config = load_config(ROOT / "conf" / "local.yaml", raw=str(tmp_path / "raw"), lake=str(tmp_path / "lake"))

    with progress_lines() as progress:
        request = StreamRequest("files", str(tmp_path / "checkpoint"), True, input=str(folder))
        result = run_stream(spark, config, request)

    # Same event_time and event_id: the fixed order decides, greater status first ("IN_TRANSIT").
    assert read_status(spark, tmp_path / "lake") == {
        "S1": ("IN_TRANSIT", at_minute(10), "e1"),
        "S2": ("CREATED", at_minute(0), "e2"),
    }
    assert sorted(result.batches) == [0]
    assert result.batches[0].reused_event_ids == 1
    assert result.batches[0].on_time == 3  # both versions of e1 reached the sink, one e2
    assert [(p["batch_id"], p["reused_event_ids"]) for p in progress] == [(0, 1)]


def test_the_files_source_counts_every_rejected_line_and_keeps_one_dead_letter_per_file_and_text(
    spark: SparkSession, tmp_path: Path, no_data_batches_off: None
) -> None:
    # A line of a file has no position: through the dedup state, identical bad lines of one file
    # (a file of blank lines) would be one record and hide from the batch's dead-letter share. So
    # the files source keeps the plan that routes rejected records around the state.
    folder = tmp_path / "events"
    folder.mkdir()
    broken, other = '{"event_id": "e9", "shipment_id": ', "not json"
    (folder / "part-0.jsonl").write_text("\n".join([broken, CREATED, other, broken, broken]) + "\n")
    (folder / "part-1.jsonl").write_text(broken + "\n")  # the same text in another file
    config = load_config(ROOT / "conf" / "local.yaml", raw=str(tmp_path / "raw"), lake=str(tmp_path / "lake"))

    with progress_lines() as progress:
        request = StreamRequest("files", str(tmp_path / "checkpoint"), True, input=str(folder))
        result = run_stream(spark, config, request)

    # Every bad line counted (5 of 6 records); the table holds one row per file and text.
    assert [(p["records"], p["on_time_rows"], p["dlq_rows"], p["duplicates_dropped"]) for p in progress] == [
        (6, 1, 5, 0)
    ]
    assert (result.batches[0].on_time, result.batches[0].dlq) == (1, 5)
    dlq = read_rows(spark, tmp_path / "lake" / "shipment_status_dlq")
    assert sorted((r["source_file"].rsplit("/", 1)[-1], r["raw_value"], r["error"]) for r in dlq) == sorted(
        [
            ("part-0.jsonl", broken, "malformed_json"),
            ("part-0.jsonl", other, "malformed_json"),
            ("part-1.jsonl", broken, "malformed_json"),
        ]
    )
    assert read_status(spark, tmp_path / "lake") == {"S2": ("CREATED", at_minute(0), "e2")}
    assert streams.checkpoint_sources(spark, request.checkpoint) == 2  # the source, read twice
