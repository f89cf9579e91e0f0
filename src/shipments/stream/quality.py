"""The status stream's data-quality checks, judged per micro-batch from the sink's own counts.

The sink counts a batch in the one aggregation it makes anyway (``StatusBatchSink._extract``);
judging those counts is plain Python: no Spark, the same numbers the progress line shows.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from shipments.ops_config import CheckSpec
from shipments.quality.results import CheckResult
from shipments.stream.stats import BatchStats


def population(spec: CheckSpec, counts: BatchStats) -> int:
    """What a check's share is taken of: every record for ``dlq_share``, the valid events for
    ``late_share`` (only a valid event can be late, so a burst of dead letters does not dilute it)."""
    return counts.records if spec.check == "dlq_share" else counts.records - counts.dlq


def is_judged(spec: CheckSpec, counts: BatchStats) -> bool:
    """A batch smaller than the check's ``min_rows`` passes without being judged."""
    return population(spec, counts) >= spec.min_rows


def judge_batch(specs: Sequence[CheckSpec], counts: BatchStats) -> list[CheckResult]:
    """Every check of ``specs`` judged on one micro-batch, in declaration order.

    Each result holds the observed share and the ``max`` allowed; a batch below ``min_rows``
    passes with "not judged" in its detail. ``cause`` is the check kind itself (``dlq_share``,
    ``late_share``): a stable fingerprint, so consecutive bad batches make one alert, whatever
    mix of reasons each one has. ``sample_keys`` of ``dlq_share`` are a few of the batch's
    distinct dead-letter reasons (``reason:<r>``); its dead letters are in
    ``shipment_status_dlq`` under the batch id.
    """
    results = []
    for spec in specs:
        if spec.check not in ("dlq_share", "late_share"):
            raise ValueError(f"{spec.label}: a {spec.check} check is not a stream check")
        part = counts.dlq if spec.check == "dlq_share" else counts.late
        whole = population(spec, counts)
        share = part / whole if whole else 0.0
        limit = float(spec.max or 0.0)
        what, of = ("dead-lettered", "records") if spec.check == "dlq_share" else ("late", "valid events")
        detail = f"{part} of {whole} {of} of the micro-batch {what} ({share:.2%}, at most {limit:.2%})"
        samples = counts.dlq_samples if spec.check == "dlq_share" and part else ()
        if samples:
            detail += f"; {', '.join(samples)}"
        if not is_judged(spec, counts):
            results.append(CheckResult(spec, True, share, limit, f"{detail}; not judged below {spec.min_rows} {of}"))
            continue
        results.append(CheckResult(spec, share <= limit, share, limit, detail, spec.check, samples))
    return results


def to_report(results: Sequence[CheckResult], counts: BatchStats, unsettled: Collection[str]) -> list[CheckResult]:
    """The results worth a ``dq_results`` row and a call to the alerts: every failure, and a
    judged pass of a check in ``unsettled`` (it failed earlier, or its state is unknown since the
    process started), which resolves its open alert. A pass of a check not judged (a batch below
    ``min_rows``) resolves nothing: it says nothing about the source."""
    return [r for r in results if not r.passed or (r.spec.name in unsettled and is_judged(r.spec, counts))]
