"""MERGE a micro-batch into a small Delta table from the driver, with delta-rs: no Spark job.

Spark's MERGE costs about 2 s a micro-batch before any data (a snapshot, three small scans to
find the touched files, the rewrite, and the driver time between six jobs; bench/README.md), which
alone is the stream's latency goal. delta-rs runs the same MERGE in-process on the driver in
0.1 s for a 1 MB table and 1.9 s for 135 MB (2,000 updates; Spark's took 1.7 and 10.7 s on 2
cores), so the stream's sink uses it for its three tables (the status upsert, the late and
dead-letter inserts), each while it holds at most ``stream.driver_merge_max_mb``, and Spark's
MERGE above: each MERGE reads the whole table on one driver core.

What it keeps: the table's protocol (reader 1, writer 2: delta-rs writes no new feature), so
Spark, Athena, Trino and delta-rs read it as before; the commit's userMetadata; Spark's cadence
of a checkpoint every 10 commits; and compaction, which Spark's auto compaction did after its own
MERGEs into ``shipment_status`` and delta-rs does not do by itself: once a table holds
``_COMPACT_AT_FILES`` files, its small files are rewritten into few (a commit with ``dataChange``
false).

One writer per table: delta-rs commits on S3 with S3's conditional writes, Spark's with its
LogStore, and the two do not see each other's in-flight commits. The stream's tables have one
writer, the stream job (docs/streaming.md); nothing else must write them while the job runs.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame

from shipments.config import S3Config

if TYPE_CHECKING:
    import pyarrow as pa
    from deltalake import DeltaTable

# Spark's auto compaction starts at 50 small files (spark.databricks.delta.autoCompact.minNumFiles).
_COMPACT_AT_FILES = 50
_COMPACT_TARGET_BYTES = 128 * 1024 * 1024
# Spark writes a checkpoint every 10 commits (delta.checkpointInterval); delta-rs every 100.
_CHECKPOINT_EVERY = 10
_MB = 1024 * 1024

log = logging.getLogger(__name__)


def available() -> bool:
    """Whether delta-rs (``deltalake``) and pyarrow are installed (``shipments[stream]``)."""
    return all(importlib.util.find_spec(name) is not None for name in ("deltalake", "pyarrow"))


def storage_options(
    path: str, s3: S3Config, environ: Mapping[str, str] | None = None, *, default_region: str = ""
) -> dict[str, str]:
    """delta-rs options for the table at ``path``: none for local paths; for ``s3://`` and
    ``s3a://``, the endpoint and addressing style the Spark session's S3A uses, and a region
    (``spark.s3.region``, else the environment's, else ``default_region``: on EMR and Glue the
    deploy region, where S3A needs none). Credentials are never passed: delta-rs reads the same
    chain as S3A (environment, instance profile)."""
    if not path.startswith(("s3://", "s3a://")):
        return {}
    environ = os.environ if environ is None else environ
    options: dict[str, str] = {}
    endpoint = s3.endpoint_in(environ)
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    # S3A addresses buckets virtual-hosted unless told otherwise; delta-rs's default is the opposite.
    options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false" if s3.path_style else "true"
    region = s3.region_in(environ) or default_region
    if region:
        options["AWS_REGION"] = region
    return options


def collect_arrow(frame: DataFrame) -> pa.Table:
    """``frame`` on the driver as an Arrow table. Timestamps stay instants (Arrow's UTC
    microseconds), where ``collect()`` would turn them into naive times of the Python process's
    zone. PySpark 4 names this ``toArrow``; 3.5 has it as ``_collect_as_arrow``, which returns no
    batch at all for an empty frame."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    to_arrow = getattr(frame, "toArrow", None)
    if to_arrow is not None:
        return to_arrow()
    return pa.Table.from_batches(frame._collect_as_arrow(), schema=to_arrow_schema(frame.schema))


class DriverMerge:
    """The Delta table at ``path`` as delta-rs sees it, kept open across micro-batches (each
    MERGE first reads only the commits since the last one)."""

    def __init__(self, path: str, *, max_mb: int, options: Mapping[str, str]) -> None:
        self.path = path
        self.max_bytes = max_mb * _MB
        self.options = dict(options)
        self._table: DeltaTable | None = None

    def _current(self) -> DeltaTable | None:
        """The table as of its newest commit (Spark may have written it since), read once per
        write; None when it holds more than the cap (Spark's MERGE writes it then)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        from deltalake import DeltaTable

        if self.max_bytes <= 0:
            return None
        if self._table is None:
            self._table = DeltaTable(self.path, storage_options=self.options)
        else:
            self._table.update_incremental()
        actions = pa.table(self._table.get_add_actions(flatten=True))
        return self._table if int(pc.sum(actions.column("size_bytes")).as_py() or 0) <= self.max_bytes else None

    def merge_newer(self, source: DataFrame, *, key: str, newer: str, note: str) -> bool:
        """Insert the keys of ``source`` the table lacks; replace a stored row where the SQL
        condition ``newer`` holds (``s`` the new row, ``t`` the stored one): the same contract as
        ``delta.merge_newer``, with ``source`` (the table's columns, one row per ``key``)
        collected to the driver. ``note`` becomes the commit's userMetadata. False, writing
        nothing, when the table is over the cap. A cap of 0 MB fits nothing."""
        return self._merge(lambda: collect_arrow(source), f"t.{key} = s.{key}", note, replace_when=newer)

    def merge_rows(self, rows: pa.Table, *, key: str, newer: str, note: str) -> bool:
        """``merge_newer`` of rows already on the driver."""
        return self._merge(lambda: rows, f"t.{key} = s.{key}", note, replace_when=newer)

    def insert_new(self, source: DataFrame, *, keys: Sequence[str], note: str) -> bool:
        """Insert the rows of ``source`` whose ``keys`` the table does not hold yet, keys compared
        null-safely: the same contract as ``delta.merge_insert_new`` (no commit when nothing is
        new), with ``source`` collected to the driver. False, writing nothing, when the table is
        over the cap."""
        if not keys:
            raise ValueError("insert_new needs at least one key column")
        matched = " AND ".join(f"(t.{key} IS NOT DISTINCT FROM s.{key})" for key in keys)
        return self._merge(lambda: collect_arrow(source), matched, note)

    def _merge(self, rows: Callable[[], pa.Table], on: str, note: str, *, replace_when: str | None = None) -> bool:
        """Insert the ``rows`` (collected only when the table is under the cap) that ``on``
        matches nothing; with ``replace_when``, also replace the matched rows where it holds.
        Then the table's upkeep. False, writing nothing, when the table is over the cap."""
        from deltalake.transaction import CommitProperties

        table = self._current()
        if table is None:
            return False
        builder = table.merge(
            rows(),
            on,
            source_alias="s",
            target_alias="t",
            commit_properties=CommitProperties(custom_metadata={"userMetadata": note}),
        )
        if replace_when is not None:
            builder = builder.when_matched_update_all(predicate=replace_when)
        self._maintain(table, note, builder.when_not_matched_insert_all().execute())
        return True

    def _maintain(self, table: DeltaTable, note: str, metrics: Mapping[str, object]) -> None:
        """After a MERGE that committed (``metrics`` counts what it changed): compact once the
        table has many small files, checkpoint every ``_CHECKPOINT_EVERY`` commits. The batch's
        data is committed by then: a failure here is logged, not raised (the next batch tries
        again), so upkeep can never stop the stream."""
        from deltalake.exceptions import DeltaError
        from deltalake.transaction import CommitProperties

        if not any(metrics.get(name) for name in ("num_target_rows_inserted", "num_target_rows_updated")):
            return  # nothing changed, nothing committed (a replay)
        try:
            self._checkpoint_due(table)
            if len(table.file_uris()) >= _COMPACT_AT_FILES:
                table.optimize.compact(
                    target_size=_COMPACT_TARGET_BYTES,
                    commit_properties=CommitProperties(custom_metadata={"userMetadata": f"compaction after {note}"}),
                )
                self._checkpoint_due(table)
        except (DeltaError, OSError) as exc:
            log.warning("%s: upkeep of %s failed, tried again after the next batch: %s", note, self.path, exc)

    @staticmethod
    def _checkpoint_due(table: DeltaTable) -> None:
        if table.version() % _CHECKPOINT_EVERY == 0:
            table.create_checkpoint()
