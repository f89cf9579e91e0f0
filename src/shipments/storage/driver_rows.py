"""Small DataFrames from rows the driver holds (a ledger row, a run's check results, metrics).

One row becomes literals of one local relation, built in the JVM, so writing it costs only the
write: ``SparkSession.createDataFrame`` ships rows through a Python RDD, a job that starts Python
workers. Literals do not scale, though: every value is a Column built over py4j and the analyzer
folds the whole array, so 63 rows (a daily run's checks) cost 4-5 s that way and 1,900 rows (a
backfill pass's) 100 s, against 1.0-1.3 s through ``createDataFrame`` whatever the count
(bench/README.md, "Backfill in passes"). More than one row goes that way, each value first made
the Python type the field's type takes.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T


def to_frame(spark: SparkSession, rows: Sequence[Sequence[object]], schema: T.StructType) -> DataFrame:
    """``rows`` (tuples in ``schema``'s field order) as a DataFrame with ``schema``'s columns and
    types. A None in a non-nullable field is refused: by the Delta write that follows for one row
    (a NOT NULL column), by ``createDataFrame`` for more. Values must be of their field's kind
    (a number for a number, text for text): one row casts them, more rows need them as such
    (ints and floats are converted between numeric types).

    Raises:
        ValueError: a row does not have one value per field.
    """
    width = len(schema.fields)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a row has {len(row)} value(s), the schema {width} field(s): {row!r}")
    if not rows:
        return spark.range(0).select(*[F.lit(None).cast(f.dataType).alias(f.name) for f in schema.fields])
    if len(rows) > 1:
        typed = [tuple(_python(value, f.dataType) for value, f in zip(row, schema.fields, strict=True)) for row in rows]
        # One partition: one file per append, as the literal relation wrote (the appended
        # tables compact about one append in 50, counting on a small file each).
        return spark.createDataFrame(typed, schema).coalesce(1)
    structs = [
        F.struct(*[_literal(value, f.dataType).alias(f.name) for value, f in zip(row, schema.fields, strict=True)])
        for row in rows
    ]
    return spark.range(1).select(F.inline(F.array(*structs)))


def _python(value: object, data_type: T.DataType) -> object:
    """``value`` as the Python type ``createDataFrame`` takes for ``data_type`` (an int for a
    double, a float for a decimal), as the cast of a literal would make it."""
    if value is None:
        return None
    if isinstance(data_type, T.DoubleType | T.FloatType) and isinstance(value, int | decimal.Decimal):
        return float(value)
    if isinstance(data_type, T.DecimalType) and isinstance(value, int | float):
        return decimal.Decimal(str(value))
    if isinstance(data_type, T.ArrayType):
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list for {data_type.simpleString()}, got {value!r}")
        return [_python(item, data_type.elementType) for item in value]
    return value


def _literal(value: object, data_type: T.DataType) -> Column:
    if isinstance(data_type, T.ArrayType) and value is not None:
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list for {data_type.simpleString()}, got {value!r}")
        return F.array(*[_literal(item, data_type.elementType) for item in value]).cast(data_type)
    return F.lit(value).cast(data_type)
