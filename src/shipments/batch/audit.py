"""Audits that let the daily job's conservation identity fail in production.

``read == kept + other_dates + duplicates + quarantined (+ deleted)`` only proves something when
its ends are measured apart from the code they check:

- what was read is counted from the landed files without the readers that parse them
  (``storage.landed``), file by file, and compared with the rows the parse gave each file
  before anything is written;
- what was written is checked from the written data after the totals commit: the commit's own
  ``numOutputRows`` and partition D as that version holds it (rows and ``sum(shipment_count)``).
  On a mismatch the partition is put back as it was at the version before (one more commit, as
  ``shipments restore`` does) and the run fails.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.batch.plan import raw_layout
from shipments.config import Config
from shipments.errors import DataQualityError
from shipments.model.tables import DAILY_TOTALS
from shipments.storage import delta, landed
from shipments.storage.raw import RawFile

log = logging.getLogger(__name__)


def landed_records(spark: SparkSession, config: Config, files: Sequence[RawFile]) -> dict[str, int]:
    """The records each input file holds, by the name the job's readers give it in
    ``source_file``, counted without those readers; files of a format with no such count
    (Firehose JSON records) are left out."""
    formats = {kind.name: kind.format for kind in raw_layout(config).kinds}
    counts: dict[str, int] = {}
    for file_format in sorted({formats[f.kind] for f in files}):
        paths = [f.path for f in files if formats[f.kind] == file_format]
        counted = landed.count_records(spark, paths, file_format)
        if counted is None:
            log.info("%d %s file(s): no record count independent of their parser", len(paths), file_format)
            continue
        counts.update(counted)
    return counts


def check_read(landed_counts: dict[str, int], parsed: dict[str, int], run_date: dt.date) -> None:
    """Compare the records landed in each counted file with the rows the parse gave it
    (``parsed``: rows per ``source_file``, files without rows absent).

    Raises:
        DataQualityError: a file's parse lost or gained records (named, with both counts).
    """
    differ = sorted(
        (path, count, parsed.get(path, 0)) for path, count in landed_counts.items() if parsed.get(path, 0) != count
    )
    if not differ:
        return
    path, count, got = differ[0]
    more = f" (and {len(differ) - 1} more file(s))" if len(differ) > 1 else ""
    raise DataQualityError(
        f"records lost or gained between the files and the parse for {run_date}: {path} holds {count} record(s), "
        f"the reader gave {got}{more}; nothing was written (a malformed file, e.g. an unterminated CSV quote, "
        f"or a reader bug: fix the file or the reader, then rerun)"
    )


def verify_written(
    spark: SparkSession, config: Config, version: int, written: Mapping[dt.date, tuple[int, int]], *, run_id: str
) -> None:
    """Check the totals commit ``version`` wrote each partition of ``written`` whole: date ->
    (customer rows, shipments they hold), by the commit's ``numOutputRows`` (when Delta recorded
    it) and by the partitions as ``version`` holds them (one read for every date).

    Raises:
        DataQualityError: the written data does not match; the partitions were put back as they
            were at ``version - 1`` first (one commit tagged ``<run_id>:put-back``).
    """
    path = DAILY_TOTALS.path(config)
    found = []
    metrics = delta.commit_metrics(spark, path, version)
    rows = sum(expected_rows for expected_rows, _ in written.values())
    if "numOutputRows" in metrics and int(metrics["numOutputRows"]) != rows:
        found.append(f"the commit wrote {metrics['numOutputRows']} row(s), not {rows}")
    held = {
        row["ship_date"]: (int(row["rows"]), int(row["shipments"]))
        for row in delta.read_version(spark, config, DAILY_TOTALS, version)
        .filter(F.col("ship_date").isin(*written))
        .groupBy("ship_date")
        .agg(F.count(F.lit(1)).alias("rows"), F.sum("shipment_count").alias("shipments"))
        .collect()
    }
    for run_date, expected in sorted(written.items()):
        got = held.get(run_date, (0, 0))
        if got != expected:
            found.append(
                f"version {version} holds {got[0]} row(s) with {got[1]} shipment(s) for {run_date}, "
                f"not {expected[0]} with {expected[1]}"
            )
    if not found:
        return
    note = f"{run_id}:put-back"
    delta.put_back_partitions(spark, path, "ship_date", list(written), version=version - 1, note=note)
    restored = delta.committed_version(spark, path, note)
    dates = ", ".join(d.isoformat() for d in sorted(written))
    raise DataQualityError(
        f"the write of {dates} to {path} lost or gained rows: {'; '.join(found)}; the partition(s) were put back "
        f"as they were at version {version - 1} (committed as version {restored}): rerun the date(s)"
    )
