"""Versions of a shipment with the same updated_at and different content: the documented rule
decides (greatest by updated_at, then created_at, status, customer_id, origin_region,
destination_region, weight_kg, charge_usd; a missing value is the smallest), the job and the
oracle agree on it, and the generator really makes such ties.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.batch.daily import DailyRequest, run_daily
from shipments.config import Config
from shipments.devtools.generate import generate_raw_zone
from tests import oracle

DAY = dt.date(2026, 11, 2)
AT = "2026-11-02T10:00:00Z"


def _version(customer: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "customer_id": customer,
        "created_at": "2026-11-02T09:00:00Z",
        "updated_at": AT,
        "status": "IN_TRANSIT",
        "origin_region": "NA",
        "destination_region": "NA",
        "weight_kg": 1.5,
        "charge_usd": "10.00",
    }
    return {**base, **fields}


# Each shipment: two versions with the same updated_at, listed in landing order, and the
# customer totals the rule gives (shipment_count, cancelled_count, total_weight_kg, total_charge_usd).
# The winner lands first in some and last in others: neither "first seen" nor "last seen" passes.
CASES: dict[str, tuple[list[dict[str, object]], dict[str, tuple[int, int, float, Decimal]]]] = {
    "status": (
        [_version("C01", status="DELIVERED", charge_usd="20.00"), _version("C01", status="CANCELLED")],
        {"C01": (1, 0, 1.5, Decimal("20.00"))},
    ),
    "status null is smallest": (
        [_version("C02", status=None, charge_usd="20.00"), _version("C02", status="CANCELLED")],
        {"C02": (1, 1, 1.5, Decimal("10.00"))},
    ),
    "created_at before status": (
        [
            _version("C03", status="CANCELLED", created_at="2026-11-02T09:30:00Z", charge_usd="30.00"),
            _version("C03", status="RETURNED", created_at="2026-11-02T09:00:00+00:00"),
        ],
        {"C03": (1, 1, 1.5, Decimal("30.00"))},
    ),
    "customer_id": (
        [_version("C04"), _version("C05", charge_usd="40.00")],
        {"C05": (1, 0, 1.5, Decimal("40.00"))},
    ),
    "origin null is smallest": (
        [_version("C06", origin_region="EU", charge_usd="60.00"), _version("C06", origin_region=None)],
        {"C06": (1, 0, 1.5, Decimal("60.00"))},
    ),
    "destination": (
        [_version("C07", destination_region="APAC"), _version("C07", destination_region="EU", charge_usd="70.00")],
        {"C07": (1, 0, 1.5, Decimal("70.00"))},
    ),
    "weight": (
        [_version("C08", weight_kg=2.25), _version("C08", weight_kg=10.0, charge_usd="5.00")],
        {"C08": (1, 0, 10.0, Decimal("5.00"))},
    ),
    "charge last": (
        [_version("C09", charge_usd="10.01"), _version("C09", charge_usd="9.99")],
        {"C09": (1, 0, 1.5, Decimal("10.01"))},
    ),
}


def _write_zone(raw: Path) -> None:
    lines = []
    for serial, (versions, _) in enumerate(CASES.values()):
        for version in versions:
            record = {"shipment_id": f"TIE-{serial}", **{k: v for k, v in version.items() if v is not None}}
            lines.append(json.dumps(record))
    folder = raw / "shipments" / f"ingest_date={DAY}"
    folder.mkdir(parents=True)
    (folder / "part-00000.jsonl").write_text("".join(f"{line}\n" for line in lines))
    names = "\n".join(f"C{n:02d},Customer {n},SMB,EU" for n in range(1, 10))
    (raw / "customers").mkdir()
    (raw / "customers" / "customers.csv").write_text(f"customer_id,customer_name,segment,region\n{names}\n")


def _expected() -> dict[str, tuple[int, int, float, Decimal]]:
    return {customer: totals for _, expected in CASES.values() for customer, totals in expected.items()}


def test_the_job_and_the_oracle_settle_ties_by_the_documented_rule(
    spark: SparkSession, config: Config, raw: Path, lake: Path
) -> None:
    _write_zone(raw)

    result = run_daily(spark, config, DailyRequest(DAY))

    rows = spark.read.format("delta").load(str(lake / "shipment_daily_totals")).filter(F.col("ship_date") == DAY)
    job = {
        r.customer_id: (r.shipment_count, r.cancelled_count, r.total_weight_kg, r.total_charge_usd)
        for r in rows.collect()
    }
    assert job == _expected()
    by_oracle = {
        customer_id: (count, cancelled, weight, charge)
        for (_, customer_id, *_), (count, cancelled, weight, charge) in oracle.expected_run(raw, DAY)["totals"].items()
    }
    assert by_oracle == _expected()
    assert result.counts.duplicates == len(CASES)


def test_the_generator_makes_same_time_ties_that_decide_totals(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    start = dt.date(2026, 11, 1)
    generate_raw_zone(raw, start, 3, shipments_per_day=400, customers=40, seed=11, events_per_day=0)
    versions: dict[str, list[dict]] = defaultdict(list)
    for day in (start + dt.timedelta(days=i) for i in range(3)):
        for _, line in oracle.read_lines(raw, day):
            reason, record = oracle.classify(line)
            if reason is None and record is not None:
                versions[record["shipment_id"]].append(record)
    deciding = []
    for shipment_id, records in versions.items():
        newest = max(r["updated_at"] for r in records)
        tied = [r for r in records if r["updated_at"] == newest]
        winner = max(tied, key=oracle.version_key)
        # A tie that matters: a loser whose status or charge would change the totals.
        if any((r["status"], r["charge_usd"]) != (winner["status"], winner["charge_usd"]) for r in tied):
            deciding.append(shipment_id)
    assert len(deciding) >= 3, deciding
