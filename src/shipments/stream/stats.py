"""What one micro-batch of the status stream did: its counts, event times and timings.

Filled by the sink (``stream.sink``), read by the checks (``stream.quality``), the metrics
(``stream.metrics``) and the progress line.
"""

from __future__ import annotations

import dataclasses
import datetime as dt


@dataclasses.dataclass
class BatchStats:
    """What one batch did, for the progress log, the checks and the metrics."""

    batch_id: int
    records: int = 0
    on_time: int = 0
    late: int = 0
    dlq: int = 0
    # event_ids that came with more than one content in this batch (a producer reusing ids): all
    # versions reached the sink, the fixed order of ``to_latest_per_shipment`` picked one
    reused_event_ids: int = 0
    # a few of the batch's distinct dead-letter reasons, as ``reason:<r>``
    dlq_samples: tuple[str, ...] = ()
    watermark: dt.datetime | None = None
    # the greatest event time seen so far (this batch and every one before): the newest event
    # time ``shipment_status`` holds (a late event is never newer than it)
    max_event_time: dt.datetime | None = None
    # event times of the batch's on-time events (one per event_id; approximate percentiles)
    event_time_min: dt.datetime | None = None
    event_time_p05: dt.datetime | None = None
    event_time_p50: dt.datetime | None = None
    # when the sink was called, and when the MERGE into shipment_status committed (None when
    # the batch had no on-time event)
    started_at: dt.datetime | None = None
    visible_at: dt.datetime | None = None
    # milliseconds spent per step of the sink
    timings: dict[str, int] = dataclasses.field(default_factory=dict)
    # what was published for the batch (``stream.metrics.batch_metrics``), and the checks it failed
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    checks_failed: tuple[str, ...] = ()
