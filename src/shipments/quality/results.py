"""A check's outcome, and the ``dq_results`` table that keeps every one."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from pyspark.sql import SparkSession

from shipments.config import Config
from shipments.model.tables import DQ_RESULTS, DQ_RESULTS_SCHEMA
from shipments.ops_config import CheckSpec
from shipments.storage import delta, driver_rows


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One check judged once (for one run date, or one micro-batch).

    ``cause`` is a short, stable description of what failed (``vanished:created_at``,
    ``below_baseline``): with the check and table it makes an alert's fingerprint, so it never
    holds a date, a count or a file name. ``detail`` says it in words with the numbers.
    """

    spec: CheckSpec
    passed: bool
    observed: float | None
    threshold: float | None
    detail: str = ""
    cause: str = ""
    sample_keys: tuple[str, ...] = ()
    run_date: dt.date | None = None

    @property
    def blocks(self) -> bool:
        """A failed ``fail`` check: the day is not published."""
        return not self.passed and self.spec.severity == "fail"

    def describe(self) -> str:
        """One line for the run summary and the log."""
        state = "ok" if self.passed else f"FAILED ({self.spec.severity})"
        return f"{self.spec.label} {state}: {self.detail}"


def failures(results: Sequence[CheckResult]) -> list[CheckResult]:
    return [r for r in results if not r.passed]


def write_results(
    spark: SparkSession,
    config: Config,
    results: Sequence[CheckResult],
    *,
    job: str,
    run_id: str,
    checked_at: dt.datetime,
    batch_id: int | None = None,
) -> None:
    """Append ``results`` to ``dq_results`` in one commit (a blind append: never conflicts)."""
    if not results:
        return
    rows = [
        (
            run_id,
            job,
            r.spec.table,
            r.run_date,
            batch_id,
            r.spec.name,
            r.spec.check,
            r.spec.severity,
            None if r.observed is None else float(r.observed),
            None if r.threshold is None else float(r.threshold),
            r.passed,
            r.detail,
            list(r.sample_keys),
            checked_at,
        )
        for r in results
    ]
    delta.ensure_table(spark, config, DQ_RESULTS)
    delta.append_rows(driver_rows.to_frame(spark, rows, DQ_RESULTS_SCHEMA), DQ_RESULTS.path(config), key=run_id)
