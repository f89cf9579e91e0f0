"""Run ``shipments`` with the daily write made to hang mid-way, so a test can SIGKILL it there.

Usage: python -m tests.helpers.hang_in_write MARKER_FILE shipments-args...

Once Spark is executing the write of shipment_daily_totals (its tasks are running), the first
row processed creates MARKER_FILE and then blocks forever.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pyspark.sql import functions as F
from pyspark.sql import types as T

from shipments.cli import main
from shipments.storage import delta

marker = sys.argv[1]
real_replace = delta.replace_partitions


def _block(value: str) -> str:
    Path(marker).touch()
    while True:
        time.sleep(1)


def hanging_replace(frame, path, column, values, *, run_id):  # type: ignore[no-untyped-def]
    if "shipment_daily_totals" in path:
        frame = frame.withColumn("customer_id", F.udf(_block, T.StringType())(F.col("customer_id")))
    return real_replace(frame, path, column, values, run_id=run_id)


delta.replace_partitions = hanging_replace
sys.exit(main(sys.argv[2:]))
