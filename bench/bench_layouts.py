"""The daily job on DMS Parquet vs the default JSON-lines layout (issue 12's benchmark).

The same generated days (same seed) are landed in both layouts; ``run_daily`` for the middle
day runs on each, interleaved, on a fresh lake every time; the median of the repeats is
reported with their ratio. Parquet carries typed columns, so the job skips JSON parsing there:
it should be the faster input. Totals are checked to agree before any number is reported.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

from bench.common import config, load_average, median, repeats, scale, spark_session, table, timed
from shipments.batch.daily import DailyRequest, run_daily
from shipments.devtools.generate import generate_raw_zone

RUN_DATE = dt.date(2026, 11, 2)
SHIPMENTS_PER_DAY = 1_000_000
LAYOUTS = ("default", "dms-parquet")


def _raw(workdir: Path, layout: str, per_day: int) -> Path:
    folder = workdir / f"raw-{layout}-{per_day}"
    marker = folder / ".complete"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        generate_raw_zone(
            folder,
            RUN_DATE - dt.timedelta(days=1),
            3,
            shipments_per_day=per_day,
            customers=2000,
            seed=11,
            events_per_day=0,
            layout=layout,
        )
        marker.touch()
    return folder


def run(workdir: Path) -> str:
    per_day = max(1000, int(SHIPMENTS_PER_DAY * scale()))
    spark = spark_session()
    raws = {layout: _raw(workdir, layout, per_day) for layout in LAYOUTS}
    seconds: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
    totals: dict[str, list[tuple[object, ...]]] = {}
    loads = []
    for _ in range(repeats()):
        for layout in LAYOUTS:
            lake = workdir / f"lake-{layout}"
            shutil.rmtree(lake, ignore_errors=True)
            settings = config(raws[layout], lake)
            settings = dataclasses.replace(settings, daily=dataclasses.replace(settings.daily, layout=layout))
            elapsed, _ = timed(lambda settings=settings: run_daily(spark, settings, DailyRequest(RUN_DATE)))
            seconds[layout].append(elapsed)
            loads.append(load_average())
            rows = spark.read.format("delta").load(str(lake / "shipment_daily_totals")).collect()
            totals[layout] = sorted(tuple(r) for r in rows)
    if totals["default"] != totals["dms-parquet"]:
        raise RuntimeError("the two layouts' totals differ: no timing is reported")
    json_s, parquet_s = median(seconds["default"]), median(seconds["dms-parquet"])
    rows_out = [
        ["default (JSON lines)", f"{json_s:.1f} s", "1.00"],
        ["dms-parquet", f"{parquet_s:.1f} s", f"{parquet_s / json_s:.2f}"],
    ]
    return "\n\n".join(
        [
            "## Layouts: DMS Parquet vs JSON lines",
            f"{per_day:,} shipments a day, 3 ingest folders read, median of {repeats()} interleaved runs of "
            f"`run_daily` on a fresh lake; totals agree. Load average during the runs: {', '.join(loads)}.",
            table(["layout", "daily job", "ratio to JSON"], rows_out),
        ]
    )
