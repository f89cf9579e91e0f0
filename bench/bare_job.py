"""A bare Spark job as a process of its own (``bench_cold``): build the session from
conf/local.yaml, read the raw zone's files for the benchmarked day with the fixed schema, write
Parquet. The floor of any Spark job over that input, start-up and shutdown included.

    python -m bench.bare_job RAW OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.bench_daily import _bare, _files
from bench.common import spark_session


def main(argv: list[str]) -> int:
    raw, out = Path(argv[0]), Path(argv[1])
    spark = spark_session("shipments-bench-bare")
    try:
        _bare(spark, raw, out)
        print(f"bare: {len(_files(spark, raw))} files -> {out}")
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
