"""Small DataFrames from rows the driver holds (a ledger row, a run's check results, metrics).

``SparkSession.createDataFrame(rows, schema)`` ships the rows through a Python RDD: a Spark job
that starts Python workers, about 0.5 s a frame on this machine even for one row, paid three
times a daily run (dq_results, pipeline_runs, pipeline_metrics). Here the rows become literals
of one local relation, built in the JVM, so writing them costs only the write
(bench/README.md, "Daily job: performance notes").
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T


def to_frame(spark: SparkSession, rows: Sequence[Sequence[object]], schema: T.StructType) -> DataFrame:
    """``rows`` (tuples in ``schema``'s field order) as a DataFrame with ``schema``'s columns and
    types. A None in a non-nullable field is not checked here: the Delta write that follows
    refuses it (a NOT NULL column), as it would any other writer's.

    Raises:
        ValueError: a row does not have one value per field.
    """
    width = len(schema.fields)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a row has {len(row)} value(s), the schema {width} field(s): {row!r}")
    if not rows:
        return spark.range(0).select(*[F.lit(None).cast(f.dataType).alias(f.name) for f in schema.fields])
    structs = [
        F.struct(*[_literal(value, f.dataType).alias(f.name) for value, f in zip(row, schema.fields, strict=True)])
        for row in rows
    ]
    return spark.range(1).select(F.inline(F.array(*structs)))


def _literal(value: object, data_type: T.DataType) -> Column:
    if isinstance(data_type, T.ArrayType) and value is not None:
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list for {data_type.simpleString()}, got {value!r}")
        return F.array(*[_literal(item, data_type.elementType) for item in value]).cast(data_type)
    return F.lit(value).cast(data_type)
