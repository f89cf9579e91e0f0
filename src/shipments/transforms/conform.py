"""Shape a DataFrame to a declared schema: the last stage before a write."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T


def conform(frame: DataFrame, schema: T.StructType) -> DataFrame:
    """Exactly the columns of ``schema``, in its order and types (a literal int is not a long).

    Requires every column of ``schema`` by name; other columns are dropped.
    """
    return frame.select(*[F.col(field.name).cast(field.dataType).alias(field.name) for field in schema])
