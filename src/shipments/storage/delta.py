"""Delta tables: create from a ``TableSpec``, replace a partition, append once, MERGE, read.

Every Delta read and write of the project goes through here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipments.background import Background
from shipments.config import Config
from shipments.errors import TableError, describe
from shipments.model.tables import TableSpec
from shipments.storage import fs

# The MERGE builder takes no writer options: a commit's userMetadata goes through the session.
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
# About one append in this many compacts the table it appended to (``append_rows``).
_COMPACT_ONE_IN = 50

log = logging.getLogger(__name__)


def is_table(spark: SparkSession, path: str) -> bool:
    return bool(DeltaTable.isDeltaTable(spark, path))


def ensure_table(spark: SparkSession, config: Config, spec: TableSpec) -> None:
    """Create the table of ``spec`` with its declared schema, partitioning and properties when it
    does not exist.

    Creating it before the first write matters: Delta only checks that written rows match a
    ``replaceWhere`` predicate when the table already exists.
    """
    path = spec.path(config)
    if is_table(spark, path):
        return
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(spec.schema)
    if spec.partition_by:
        builder = builder.partitionedBy(*spec.partition_by)
    for key, value in spec.properties.items():
        builder = builder.property(key, value)
    try:
        builder.execute()
    except Exception:
        # Another run (a parallel backfill day, the stream) may have created it first: fine.
        if not is_table(spark, path):
            raise


def ensure_tables(spark: SparkSession, config: Config, specs: Iterable[TableSpec]) -> None:
    """Create every missing table of ``specs``, all at once: a creation is one commit that waits
    mostly on the driver (5 tables of a new lake: 1.1 s one by one, 0.6 s at once, bench/README.md)."""
    creations = [
        Background(functools.partial(ensure_table, spark, config, spec), f"create-{spec.name}") for spec in specs
    ]
    errors = []
    for creation in creations:  # every one waited for before the first error is raised
        try:
            creation.result()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def read_table(spark: SparkSession, config: Config, spec: TableSpec) -> DataFrame | None:
    """The current snapshot of the table, or None when it does not exist yet."""
    path = spec.path(config)
    return spark.read.format("delta").load(path) if is_table(spark, path) else None


def read_version(spark: SparkSession, config: Config, spec: TableSpec, version: int) -> DataFrame:
    """The table as of ``version`` (time travel)."""
    return spark.read.format("delta").option("versionAsOf", version).load(spec.path(config))


def version_range(spark: SparkSession, config: Config, spec: TableSpec) -> tuple[int, int]:
    """(oldest, latest) version still in the table's history."""
    history = DeltaTable.forPath(spark, spec.path(config)).history()
    row = history.agg(F.min("version").alias("oldest"), F.max("version").alias("latest")).first()
    if row is None or row["latest"] is None:
        raise TableError(f"{spec.path(config)} has no history")
    return int(row["oldest"]), int(row["latest"])


def replace_partition(frame: DataFrame, path: str, column: str, value: dt.date, *, run_id: str) -> None:
    """Atomically replace partition ``column = value`` of the Delta table at ``path``.

    The predicate is built from a ``datetime.date`` only, never from argument text, and Delta
    checks that every written row matches it. Readers see the old partition or the new one,
    never a mix; a failed or killed write commits nothing. The commit is tagged with ``run_id``
    (``committed_version`` finds it, for callers that need the version).
    """
    replace_partitions(frame, path, column, [value], run_id=run_id)


def replace_partitions(frame: DataFrame, path: str, column: str, values: Sequence[dt.date], *, run_id: str) -> None:
    """``replace_partition`` for several dates at once (a backfill pass): one atomic commit
    replaces every partition ``column = value`` of ``values``, and no other."""
    _replace_where(frame, path, column, values, note=run_id)


def _replace_where(frame: DataFrame, path: str, column: str, values: Sequence[dt.date], *, note: str) -> None:
    """Write ``frame`` over the partitions ``column`` in ``values``, its rows first rebalanced by
    ``column``: each partition's rows go to few tasks (adaptive execution packs small partitions
    and splits a large one), so a partition gets one file, not one per task of ``frame``. Without
    it a 30-date backfill pass wrote a file per task and date (4 x 30) and took 1.7 s longer at
    1,000 shipments a day (bench/README.md, "Backfill: one scan, one file per partition")."""
    # The hint goes through SQL (PySpark's hint() takes no column). The query reads a projection
    # of ``frame``: dropping the temporary view PySpark makes for it would uncache ``frame``
    # itself if it were cached.
    rebalanced = frame.sparkSession.sql(
        "SELECT /*+ REBALANCE({column}) */ * FROM {frame}", frame=frame.select("*"), column=F.col(column)
    )
    (
        rebalanced.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", partition_predicate(column, values))
        .option("userMetadata", note)
        .save(path)
    )


def partition_predicate(column: str, values: Sequence[dt.date]) -> str:
    """``column IN (DATE'...', ...)``, built from ``datetime.date`` values only (never from text)."""
    if not values:
        raise ValueError("no partition to replace")
    if not all(isinstance(value, dt.date) for value in values):
        raise TypeError("partition values must be datetime.date")
    dates = ", ".join(f"DATE'{value.isoformat()}'" for value in sorted(set(values)))
    return f"{column} IN ({dates})"


def append_rows(frame: DataFrame, path: str, *, key: str, add_columns: bool = False) -> None:
    """Blind append (never conflicts with concurrent writers of other rows). With
    ``add_columns``, columns the table lacks (a table created by an older release) are added.

    Each append adds a small file. About one append in ``_COMPACT_ONE_IN`` then compacts the
    table (``compaction_due``: decided by a hash of the table and ``key``, what the rows record,
    e.g. the run id), so a table appended to by every run holds some 50 small files on average,
    and no run reads anything to decide. Delta's auto compaction did this before, but its counts
    of small files live in the Spark session: in a process per run it rewrote the whole table at
    every run's first append (an extra commit and about 2 s of a cold run, bench/README.md)."""
    writer = frame.write.format("delta").mode("append")
    if add_columns:
        writer = writer.option("mergeSchema", "true")
    writer.save(path)
    if compaction_due(path, key):
        compact(frame.sparkSession, path)


def compaction_due(path: str, key: str, one_in: int = _COMPACT_ONE_IN) -> bool:
    """Whether the append of ``key`` to the table at ``path`` compacts it: true for about one
    key in ``one_in``, the same answer every time (a rerun of the same append decides alike)."""
    digest = hashlib.sha256(f"{path}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % one_in == 0


def compact(spark: SparkSession, path: str) -> None:
    """Rewrite the small files of the table at ``path`` into few (an OPTIMIZE commit; the data
    does not change, and readers of older versions still find their files until a VACUUM).
    Upkeep after a committed write: a failure (e.g. a concurrent compaction of the same files)
    is logged, not raised, and a later append compacts."""
    try:
        DeltaTable.forPath(spark, path).optimize().executeCompaction()
    except Exception as exc:  # upkeep must never fail the write it follows
        log.warning("compaction of %s failed, a later append compacts it: %s", path, describe(exc, 300))


def merge_newer(source: DataFrame, path: str, *, key: str, newer: str, note: str) -> None:
    """MERGE ``source`` (one row per ``key``, the table's columns) into the table at ``path``:
    insert new keys, and replace a stored row only where the SQL condition ``newer`` holds
    (``s`` is the source row, ``t`` the stored one). ``note`` becomes the commit's userMetadata.
    """
    _merge_by_key(source, path, key=key, columns=source.columns, replace_when=newer, note=note)


def _merge_by_key(
    source: DataFrame, path: str, *, key: str, columns: Sequence[str], replace_when: str, note: str
) -> None:
    """Insert new keys; replace the ``columns`` of a stored row where ``replace_when`` holds."""
    values: dict[str, str | Column] = {name: f"s.{name}" for name in columns}
    spark = source.sparkSession
    with _commit_note(spark, note):
        (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(source.alias("s"), f"t.{key} = s.{key}")
            .whenMatchedUpdate(condition=replace_when, set=values)
            .whenNotMatchedInsert(values=values)
            .execute()
        )


def merge_insert_new(source: DataFrame, path: str, *, keys: Sequence[str], note: str) -> None:
    """Insert the rows of ``source`` whose ``keys`` the table at ``path`` does not hold yet.

    An insert-only MERGE: stored rows never change, so a row delivered again, in a later batch
    or a replay of the same one, inserts nothing (and Delta records no commit when nothing is
    inserted). Keys compare null-safely (``<=>``): a null key part matches a null. ``source``
    holds the table's columns and at most one row per key: Delta would insert every duplicate.
    ``note`` becomes the commit's userMetadata.
    """
    if not keys:
        raise ValueError("merge_insert_new needs at least one key column")
    columns: dict[str, str | Column] = {name: f"s.{name}" for name in source.columns}
    matched = " AND ".join(f"t.{key} <=> s.{key}" for key in keys)
    spark = source.sparkSession
    with _commit_note(spark, note):
        (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(source.alias("s"), matched)
            .whenNotMatchedInsert(values=columns)
            .execute()
        )


def merge_upsert(
    source: DataFrame, path: str, *, key: str, columns: Sequence[str], replace_when: str, note: str
) -> int:
    """MERGE ``source`` into the table at ``path`` by ``key``: insert new keys, and replace a
    stored row (its ``columns``) only where the SQL condition ``replace_when`` holds (``s`` is
    the source row, ``t`` the stored one), e.g. "the stored row is still the one the caller
    read". ``source`` holds ``columns`` plus the columns the condition compares (not written),
    and at most one row per key.

    Returns the rows inserted or replaced, from the commit's metrics: fewer than ``source``
    holds means the condition refused some (another writer changed them). ``note`` becomes the
    commit's userMetadata and finds the commit again, so it must be unique to the call.
    """
    _merge_by_key(source, path, key=key, columns=columns, replace_when=replace_when, note=note)
    try:
        version = committed_version(source.sparkSession, path, note)
    except TableError:  # a MERGE that changed nothing committed nothing
        return 0
    metrics = commit_metrics(source.sparkSession, path, version)
    return int(metrics.get("numTargetRowsInserted", 0)) + int(metrics.get("numTargetRowsUpdated", 0))


@contextlib.contextmanager
def _commit_note(spark: SparkSession, note: str) -> Iterator[None]:
    """Tag the commits made inside with ``note`` (their userMetadata), for MERGEs, whose
    builder takes no writer options."""
    spark.conf.set(_USER_METADATA, note)
    try:
        yield
    finally:
        spark.conf.unset(_USER_METADATA)


# How far back from the newest commit a run's own commit is looked for (parallel runs for other
# dates commit in between; Delta's history(100) looked as far).
_COMMITS_LOOKED_AT = 100


def _commit_info(spark: SparkSession, path: str, version: int) -> dict[str, Any] | None:
    """The ``commitInfo`` action of commit ``version`` (its JSON file in ``_delta_log``), or None
    when that file is gone (cleaned up after a checkpoint) or holds none."""
    text = fs.read_text(spark, f"{path.rstrip('/')}/_delta_log/{version:020d}.json")
    for line in (text or "").splitlines():
        if '"commitInfo"' in line:
            action = json.loads(line)
            if isinstance(action, dict) and isinstance(action.get("commitInfo"), dict):
                return dict(action["commitInfo"])
    return None


def _log_versions(spark: SparkSession, path: str) -> list[int]:
    """The versions whose commit files are in the table's log, newest first."""
    names = (status.name for status in fs.list_folder(spark, f"{path.rstrip('/')}/_delta_log"))
    return sorted((int(found.group(1)) for name in names if (found := _COMMIT_FILE.match(name))), reverse=True)


def committed_version(spark: SparkSession, path: str, run_id: str) -> int:
    """The table version committed by the write tagged with ``run_id``.

    Looked up by tag rather than taken as the latest version, because parallel runs for other
    dates commit to the same table. Read from the commit files themselves, newest first (one
    listing and usually one small file read): ``DeltaTable.history()`` cost three Spark jobs,
    about a second a run (bench/README.md).
    """
    for version in _log_versions(spark, path)[:_COMMITS_LOOKED_AT]:
        info = _commit_info(spark, path, version)
        if info is not None and info.get("userMetadata") == run_id:
            return version
    raise TableError(f"could not find the commit of run {run_id} in the history of {path}")


def commit_metrics(spark: SparkSession, path: str, version: int) -> dict[str, str]:
    """The ``operationMetrics`` Delta recorded for commit ``version`` of the table at ``path``
    (e.g. ``numOutputRows``: rows the commit wrote); empty when it recorded none. Read from the
    commit file, as ``committed_version`` does.
    """
    info = _commit_info(spark, path, version)
    if info is None:
        raise TableError(f"could not find version {version} in the history of {path}")
    return {str(key): str(value) for key, value in (info.get("operationMetrics") or {}).items()}


def put_back_partitions(
    spark: SparkSession, path: str, column: str, values: Sequence[dt.date], *, version: int, note: str
) -> None:
    """Replace the partitions ``column = value`` of ``values`` of the table at ``path`` with their
    content at ``version`` (time travel; empty there empties it): one atomic commit tagged
    ``note``, other partitions untouched, as ``shipments restore`` does for one."""
    previous = spark.read.format("delta").option("versionAsOf", version).load(path)
    _replace_where(previous.filter(F.col(column).isin(*values)), path, column, values, note=note)


@dataclasses.dataclass(frozen=True)
class Commit:
    """A commit of a Delta table: its version, when (epoch milliseconds), the operation and the
    userMetadata it was tagged with (the run id of this project's writes)."""

    version: int
    timestamp_ms: int
    operation: str
    note: str | None


# The few fields of the Delta log's actions (protocol: Add File, Remove File, Commit Provenance
# Information) that say which partition a commit changed, and who made it.
_FILE_ACTION = T.StructType(
    [
        T.StructField("partitionValues", T.MapType(T.StringType(), T.StringType())),
        T.StructField("dataChange", T.BooleanType()),
    ]
)
_LOG_ACTIONS = T.StructType(
    [
        T.StructField("add", _FILE_ACTION),
        T.StructField("remove", _FILE_ACTION),
        T.StructField(
            "commitInfo",
            T.StructType(
                [
                    T.StructField("timestamp", T.LongType()),
                    T.StructField("operation", T.StringType()),
                    T.StructField("userMetadata", T.StringType()),
                ]
            ),
        ),
    ]
)
_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


def partition_commits(spark: SparkSession, path: str, column: str, value: dt.date, *, since: int = 0) -> list[Commit]:
    """The commits from version ``since`` on that changed partition ``column = value`` of the
    table at ``path`` (added or removed its data files), oldest first.

    Read from the commit files still in the log (the history does not say which partitions a
    commit touched). Rewrites that change no data (OPTIMIZE: ``dataChange`` false) do not count;
    commits older than the log's retention are gone, so the list may start later than ``since``.
    """
    commit_files = [
        status.path
        for status in fs.list_folder(spark, f"{path.rstrip('/')}/_delta_log")
        if (found := _COMMIT_FILE.match(status.name)) and int(found.group(1)) >= since
    ]
    if not commit_files:
        return []
    actions = spark.read.schema(_LOG_ACTIONS).json([fs.literal(p) for p in commit_files])
    changed = F.coalesce(F.col("add"), F.col("remove"))
    touches = (changed.partitionValues[column] == F.lit(value.isoformat())) & F.coalesce(
        changed.dataChange, F.lit(True)
    )
    version = F.regexp_extract(F.col("_metadata.file_path"), r"(\d{20})\.json$", 1).cast("long")
    rows = (
        actions.groupBy(version.alias("version"))
        .agg(
            F.max("commitInfo.timestamp").alias("timestamp_ms"),
            F.max("commitInfo.operation").alias("operation"),
            F.max("commitInfo.userMetadata").alias("note"),
            F.max(F.when(touches, True)).alias("touches"),
        )
        .filter(F.col("touches"))
        .orderBy("version")
        .collect()
    )
    return [Commit(int(r["version"]), int(r["timestamp_ms"] or 0), str(r["operation"]), r["note"]) for r in rows]
