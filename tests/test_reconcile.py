"""``shipments reconcile``: agreement after a run, and each kind of difference explained."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from shipments.cli import main
from shipments.devtools.generate import generate_raw_zone

DAY = dt.date(2026, 11, 2)


def _line(shipment_id: str, created: str = "2026-11-02T08:00:00Z") -> str:
    return json.dumps(
        {
            "shipment_id": shipment_id,
            "customer_id": "C0001",
            "created_at": created,
            "updated_at": created,
            "status": "CREATED",
            "weight_kg": 2.5,
            "charge_usd": 10.00,
        }
    )


@pytest.fixture(scope="module")
def zone(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reconcile")
    raw, lake = root / "raw", root / "lake"
    generate_raw_zone(raw, dt.date(2026, 11, 1), 3, shipments_per_day=150, customers=10, seed=3)
    assert main(["daily", "--date", DAY.isoformat(), "--raw", str(raw), "--lake", str(lake)]) == 0
    return {"raw": raw, "lake": lake}


def _reconcile(zone: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["reconcile", "--date", DAY.isoformat(), "--raw", str(zone["raw"]), "--lake", str(zone["lake"])])
    return code, capsys.readouterr().out


def test_agrees_right_after_a_run(zone: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _reconcile(zone, capsys)
    assert code == 0 and out.startswith(f"reconcile {DAY}: AGREE"), out


def test_a_file_landing_after_the_run_is_explained_then_fixed_by_a_rerun(
    zone: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    late = zone["raw"] / "shipments" / "ingest_date=2026-11-03" / "late-upload.jsonl"
    late.write_text(_line("LATE-0001") + "\n")
    code, out = _reconcile(zone, capsys)
    assert code == 3
    assert "customer C0001: shipment_count raw" in out
    assert "late-upload.jsonl (ingest 2026-11-03)" in out and "landed or changed after the last run" in out
    assert "LATE-0001" in out

    assert main(["daily", "--date", DAY.isoformat(), "--raw", str(zone["raw"]), "--lake", str(zone["lake"])]) == 0
    code, out = _reconcile(zone, capsys)
    assert code == 0, out


def test_shipments_beyond_the_lookback_window_are_named(
    zone: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = zone["raw"] / "shipments" / "ingest_date=2026-11-05"
    folder.mkdir()
    (folder / "part-00000.jsonl").write_text(
        _line("VERY-LATE-1") + "\n" + _line("NEXT-DAY", "2026-11-05T01:00:00Z") + "\n"
    )
    try:
        code, out = _reconcile(zone, capsys)
        assert code == 3
        assert "1 shipment(s) of 2026-11-02 landed after the lookback window" in out and "VERY-LATE-1" in out
        assert "NEXT-DAY" not in out
    finally:
        (folder / "part-00000.jsonl").unlink()
        folder.rmdir()


def test_fan_out_in_the_table_is_reported(
    spark: SparkSession, zone: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(zone["lake"] / "shipment_daily_totals")
    table = spark.read.format("delta").load(path)
    table.filter((F.col("ship_date") == DAY) & (F.col("customer_id") == "C0002")).write.format("delta").mode(
        "append"
    ).save(path)
    code, out = _reconcile(zone, capsys)
    assert code == 3
    assert "fan-out: customer_id(s) C0002 appear more than once" in out
