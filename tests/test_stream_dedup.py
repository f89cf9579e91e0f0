"""An event_id reused for different content: the winner does not depend on arrival order, and the
reuse is counted in the batch's progress line. The whole plan runs (files source, dedup state,
sink) in-process with ``--available-now`` semantics, one micro-batch per run."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from shipments.config import load_config
from shipments.stream.job import StreamRequest, run_stream
from tests.stream_fixtures import ROOT, at_minute, event, read_status

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


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def progress_lines() -> Iterator[list[str]]:
    """What the progress listener logs on ``shipments.metrics`` during the test."""
    metrics, handler = logging.getLogger("shipments.metrics"), _Lines()
    level = metrics.level
    metrics.addHandler(handler)
    metrics.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        metrics.setLevel(level)
        metrics.removeHandler(handler)


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
    progress_lines: list[str],
) -> None:
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "part-0.jsonl").write_text("\n".join(lines) + "\n")
    config = load_config(ROOT / "conf" / "local.yaml", raw=str(tmp_path / "raw"), lake=str(tmp_path / "lake"))

    result = run_stream(spark, config, StreamRequest("files", str(tmp_path / "checkpoint"), True, input=str(folder)))

    # Same event_time and event_id: the fixed order decides, greater status first ("IN_TRANSIT").
    assert read_status(spark, tmp_path / "lake") == {
        "S1": ("IN_TRANSIT", at_minute(10), "e1"),
        "S2": ("CREATED", at_minute(0), "e2"),
    }
    assert sorted(result.batches) == [0]
    assert result.batches[0].reused_event_ids == 1
    assert result.batches[0].on_time == 3  # both versions of e1 reached the sink, one e2
    progress = [json.loads(line) for line in progress_lines if '"stream_progress"' in line]
    assert [(p["batch_id"], p["reused_event_ids"]) for p in progress] == [(0, 1)]
