"""spark-submit / EMR step entry point for the daily job.

    spark-submit jobs/daily_totals.py --date 2026-11-02 --conf emr.yaml

Arguments are those of ``shipments daily``; the same function runs as on the command line.
"""

from __future__ import annotations

import sys

from shipments.cli import main

if __name__ == "__main__":
    sys.exit(main(["daily", *sys.argv[1:]]))
