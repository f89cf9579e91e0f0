"""What a micro-batch of the status stream reports once its writes are done: its data-quality
checks (``dq_results`` and alerts) and its metrics (``pipeline_metrics``, and the Pushgateway or
CloudWatch when configured).

Cost: the checks are judged from the counts the sink's one aggregation made (no Spark job). A
batch records its checks and calls the alerts only when there is something to say: a check
fails, or a check passes, judged, while it is *unsettled* (it failed earlier in this process,
or nothing is known of it yet because the process just started: an alert an earlier run left
open is resolved by the first judged pass). A steady clean stream thus pays no commit for its
checks. Its metrics are published by a thread of their own, in batch order, while the next
batches run: one ``pipeline_metrics`` append (about as long as a small batch's read, measured
here) for the batches of each ``stream.metrics_interval``, which keeps it off the path from one
batch to the next and off the CPUs the batches need; ``flush`` publishes what is queued.

Exactly once: every row a batch reports carries the run id ``<query id>:<batch id>`` (the query
id lives in the checkpoint and survives restarts). Spark replays only the batch a crash
interrupted, as the first batch of the next run; so a batch that may be a replay (the first this
reporter sees, or an id not above the last one, when the sink is called directly) first looks
for what it already reported: its ``dq_results`` rows, the ``alert_state`` rows it wrote last,
its ``pipeline_metrics`` rows. What is there is not written again. What a replay may still
repeat is the alerts' own at-least-once delivery: a crash between an SNS publish and the
``alert_state`` commit sends that notification again (see ``observe.alerts``). What a crash can
lose is the metrics of the batches still queued for publication (those of the last
``metrics_interval`` or so) or waiting after a failed append or lookup; a clean stop publishes
them when the append then succeeds, and logs the batches it drops.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Iterable

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.config import Config, duration_seconds
from shipments.errors import describe
from shipments.model.tables import ALERT_STATE, DQ_RESULTS, PIPELINE_METRICS, SHIPMENT_STATUS, TableSpec
from shipments.observe.alerts import process_alerts
from shipments.observe.metrics import RunMetrics, export_metrics, write_metrics
from shipments.quality.results import CheckResult, failures, write_results
from shipments.storage import delta, streams
from shipments.stream.metrics import batch_metrics
from shipments.stream.quality import judge_batch, to_report
from shipments.stream.stats import BatchStats

log = logging.getLogger(__name__)

JOB = "stream"
# Batches whose metrics may wait for publication; a full queue makes the next batch wait.
_QUEUED_METRICS = 100
# Batches gathered into one publication at most; a failed append keeps as many for the next.
_PER_COMMIT = 50
# Queued behind the batches' metrics: _FLUSH publishes them without waiting for the interval,
# None also ends the thread.
_FLUSH = "flush"
# Batches left by a failure are tried again after the interval, and never sooner than this.
_RETRY_AFTER = 5.0
_Queued = tuple[RunMetrics, bool] | str | None


@dataclasses.dataclass
class BatchReporter:
    """Judges each batch's ``config.quality.stream`` checks and publishes its metrics.

    ``stream_id`` names the stream in run ids when the sink runs outside a streaming query
    (called directly, as the tests do); inside one, the query's id is used. ``close`` (or
    ``flush``) when the query ends: metrics still queued are published then.
    """

    config: Config
    stream_id: str = "unattached"
    # check names whose alert state this process has not settled yet (see the module docstring)
    unsettled: set[str] = dataclasses.field(init=False)
    last_batch: int | None = dataclasses.field(init=False, default=None)
    _publisher: _MetricsPublisher = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.unsettled = {spec.name for spec in self.config.quality.stream}
        self._publisher = _MetricsPublisher(self.config)

    def flush(self) -> None:
        """Wait until the metrics of every batch reported so far are published."""
        self._publisher.flush()

    def close(self) -> None:
        """Publish what is queued and stop the publishing thread."""
        self._publisher.close()

    def report(self, spark: SparkSession, stats: BatchStats) -> None:
        """Record the checks of the batch ``stats`` describes (when worth it) and its metrics;
        sets ``stats.checks_failed`` and ``stats.metrics``. An empty batch reports nothing."""
        if not stats.records:
            return
        batch_id = stats.batch_id
        run_id = f"{streams.current_query_id(spark) or self.stream_id}:{batch_id}"
        maybe_replay = self.last_batch is None or batch_id <= self.last_batch
        results = judge_batch(self.config.quality.stream, stats)
        stats.checks_failed = tuple(r.spec.label for r in failures(results))
        for result in failures(results):
            log.warning("micro-batch %d: %s", batch_id, result.describe())
        reported = to_report(results, stats, self.unsettled)
        if reported:
            self._record_checks(spark, reported, run_id, batch_id, maybe_replay=maybe_replay)
            for result in reported:
                (self.unsettled.discard if result.passed else self.unsettled.add)(result.spec.name)
        now = dt.datetime.now(dt.UTC)
        stats.metrics = batch_metrics(stats, now)
        metrics = RunMetrics(run_id, JOB, SHIPMENT_STATUS.name, None, batch_id, True, now, stats.metrics)
        self._publisher.submit(spark, metrics, maybe_replay=maybe_replay)
        self.last_batch = batch_id if self.last_batch is None else max(self.last_batch, batch_id)

    def _record_checks(
        self, spark: SparkSession, reported: list[CheckResult], run_id: str, batch_id: int, *, maybe_replay: bool
    ) -> None:
        """``dq_results`` first (the record), then the alerts; on a possible replay, each only
        when the first attempt did not get to it."""
        config = self.config
        if not (maybe_replay and _recorded(spark, config, DQ_RESULTS, "run_id", run_id)):
            checked_at = dt.datetime.now(dt.UTC)
            write_results(spark, config, reported, job=JOB, run_id=run_id, checked_at=checked_at, batch_id=batch_id)
        # One MERGE commits every alert_state row of a call, each with last_run_id = run_id; a
        # call that had nothing to change left no trace, and doing it again changes nothing.
        if not (maybe_replay and _recorded(spark, config, ALERT_STATE, "last_run_id", run_id)):
            process_alerts(spark, config, reported, job=JOB, run_id=run_id)


class _MetricsPublisher:
    """Publishes batches' metrics on one thread of its own, in the order submitted.

    A publication appends the rows of the batches reported since the one before to
    ``pipeline_metrics`` in one commit, then exports each batch's metrics. The next starts
    ``stream.metrics_interval`` after it ended (or tried to), or as soon as ``_PER_COMMIT``
    batches are waiting; ``flush`` and ``close`` do not wait for that. Why: a Delta append costs about as much as a
    small batch's read whatever it holds (1.3-1.8 s here), and one per batch kept a CPU busy
    beside the stream (bench/README.md, "Stream: the metrics append").

    An append that fails is logged and its batches are tried again with the next publication,
    an interval (at least ``_RETRY_AFTER``) later, a flush or a stop (looked for first: an
    append that failed after its commit is not written twice, but exported then); so a passing
    failure loses nothing, up to ``_PER_COMMIT`` batches waiting (older ones are no longer
    tried, logged as errors). When the table cannot be searched, the batches from the first
    that needed it on wait the same way, so the table and the exports keep batch order (while
    batches wait, every publication needs the lookup: a table that stays unreadable while
    appends would work gets no metrics, with an error line per 50 batches). A clean stop tries
    once more.

    It writes through a session of its own (``newSession``: same SparkContext, own settings),
    so the commit note the sink sets on the stream's session for its MERGEs never tags these
    commits. One publication at a time and in order, so a batch that may be a replay is looked
    for in ``pipeline_metrics`` only after every earlier publication is written (and skipped
    when its run id is already in its own).
    """

    def __init__(self, config: Config) -> None:
        self._config = config
        self._interval = duration_seconds(config.stream.metrics_interval)
        self._queue: queue.Queue[_Queued] = queue.Queue(maxsize=_QUEUED_METRICS)
        # batches to try again: after a failed append, or held back by a failed lookup; with
        # whether they were certainly never exported
        self._retry: list[tuple[RunMetrics, bool]] = []
        self._thread: threading.Thread | None = None
        self._spark: SparkSession | None = None

    def submit(self, spark: SparkSession, metrics: RunMetrics, *, maybe_replay: bool) -> None:
        if self._thread is None:
            self._spark = spark.newSession()
            self._thread = threading.Thread(target=self._run, name="shipments-batch-metrics", daemon=True)
            self._thread.start()
        self._queue.put((metrics, maybe_replay))

    def flush(self) -> None:
        """Publish what was submitted before now, without waiting for the interval."""
        if self._thread is not None:
            self._queue.put(_FLUSH)
            self._queue.join()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        due = 0.0  # time.monotonic() at which the next publication may start
        while True:
            items: list[_Queued] = []
            try:
                self._gather(items, due)
                attempted = self._publish([item for item in items if isinstance(item, tuple)])
            except Exception as exc:  # a metrics failure must never stop the stream
                attempted = True
                log.warning("metrics of micro-batches not published: %s", describe(exc, 500))
            finally:
                for _ in items:
                    self._queue.task_done()
            if attempted:
                # batches waiting after a failure: again after max(interval, _RETRY_AFTER), unless a
                # flush, the stop or _PER_COMMIT new batches come first
                wait = max(self._interval, _RETRY_AFTER) if self._retry else self._interval
                due = time.monotonic() + wait
            if items and items[-1] is None:
                if self._retry:
                    log.error(
                        "metrics of micro-batch(es) %s no longer tried at the stop (they may be in pipeline_metrics)",
                        _ids(m for m, _ in self._retry),
                    )
                    self._retry = []
                return

    def _gather(self, items: list[_Queued], due: float) -> None:
        """Into ``items``: the next thing queued, then what follows it until ``due``, a flush or
        close (queued behind what was submitted before them), or ``_PER_COMMIT`` batches. With
        batches to try again, the first wait ends at ``due`` too."""
        try:
            items.append(self._queue.get(timeout=max(due - time.monotonic(), 0) if self._retry else None))
            while isinstance(items[-1], tuple) and len(items) < _PER_COMMIT:
                items.append(self._queue.get(timeout=max(due - time.monotonic(), 0)))
        except queue.Empty:
            return

    def _publish(self, submitted: list[tuple[RunMetrics, bool]]) -> bool:
        """Append, then export, the batches waiting (looked for in the table first) and those
        of ``submitted`` (looked for when possible replays), in order; False when there was
        nothing to publish."""
        spark, config = self._spark, self._config
        if spark is None:
            raise RuntimeError("metrics submitted without a session")
        # by run id, the first report of each: (metrics, to look for, certainly never exported)
        candidates: dict[str, tuple[RunMetrics, bool, bool]] = {}
        for metrics, unexported in self._retry:
            candidates.setdefault(metrics.run_id, (metrics, True, unexported))
        for metrics, maybe_replay in submitted:
            candidates.setdefault(metrics.run_id, (metrics, maybe_replay, not maybe_replay))
        if not candidates:
            return False
        ready = list(candidates.values())
        held: list[tuple[RunMetrics, bool]] = []
        lookups = [metrics.run_id for metrics, look, _ in ready if look]
        found: set[str] = set()
        try:
            if lookups:
                found = _recorded_ids(spark, config, PIPELINE_METRICS, "run_id", lookups)
        except Exception as exc:  # from the first batch that needed the lookup on, all wait: order kept
            first = next(i for i, (_, look, _) in enumerate(ready) if look)
            ready, held = ready[:first], [(metrics, unexported) for metrics, _, unexported in ready[first:]]
            log.warning("pipeline_metrics not readable, %d batch(es) wait: %s", len(held), describe(exc, 500))
        new = [metrics for metrics, _, _ in ready if metrics.run_id not in found]
        # found after a failed append: in the table, but never exported
        exports = [metrics for metrics, _, unexported in ready if metrics.run_id not in found or unexported]
        try:
            if new:
                write_metrics(spark, config, *new)
        except Exception as exc:  # tried again later: the stream goes on
            log.warning("metrics of micro-batch(es) %s not appended yet: %s", _ids(new), describe(exc, 500))
            held = [(metrics, True) for metrics in new] + held  # not in the table: never exported
            exports = [metrics for metrics in exports if metrics.run_id in found]
        self._retry = held[-_PER_COMMIT:]
        if len(held) > _PER_COMMIT:
            dropped = (metrics for metrics, _ in held[:-_PER_COMMIT])
            log.error("metrics of micro-batch(es) %s no longer tried (they may be in pipeline_metrics)", _ids(dropped))
        export_metrics(config, *exports)
        return True


def _ids(runs: Iterable[RunMetrics]) -> str:
    return ", ".join(str(run.batch_id) for run in runs)


def _recorded(spark: SparkSession, config: Config, spec: TableSpec, column: str, run_id: str) -> bool:
    """True when the table of ``spec`` has a row whose ``column`` is ``run_id``."""
    return run_id in _recorded_ids(spark, config, spec, column, [run_id])


def _recorded_ids(spark: SparkSession, config: Config, spec: TableSpec, column: str, values: list[str]) -> set[str]:
    """Those of ``values`` that the table of ``spec`` holds in ``column``."""
    table = delta.read_table(spark, config, spec)
    if table is None:
        return set()
    return {row[0] for row in table.filter(F.col(column).isin(values)).select(column).distinct().collect()}
