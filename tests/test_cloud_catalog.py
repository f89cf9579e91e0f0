"""``shipments catalog sync`` against moto's Glue Data Catalog: every Delta table registered as
native Delta (table_type=DELTA + its location), once; a second sync changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipments.cli import main
from shipments.model.tables import BATCH_TABLES, STREAM_TABLES
from tests.cloud_fixtures import ROOT, Moto, aws_env_fixture, moto_fixture  # noqa: F401

pytestmark = pytest.mark.usefixtures("aws_env")


def _conf(tmp_path: Path, lake: str) -> Path:
    conf = tmp_path / "catalog.yaml"
    conf.write_text(
        f"extends: {ROOT / 'conf' / 'base.yaml'}\n"
        f"paths: {{raw: 's3://test-raw-bucket/raw', lake: '{lake}'}}\n"
        "spark: {platform: emr}\n"
        "deploy: {region: eu-west-1, catalog_database: shipments_test}\n"
    )
    return conf


def test_catalog_sync_registers_every_table_as_native_delta(
    moto: Moto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # s3a:// in the config is registered as s3:// (what Athena and Glue read)
    conf = _conf(tmp_path, "s3a://test-lake-bucket/lake")
    assert main(["catalog", "sync", "--conf", str(conf), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    # the database and six tables, each call printed
    assert out[0] == "catalog shipments_test: 6 Delta table(s), would make 7 change(s)"
    assert sorted(line.split()[1] for line in out[1:] if line.strip().startswith("CHANGE")) == [
        "glue.create_database",
        *["glue.create_table"] * 6,
    ]
    glue = moto.client("glue")
    assert "shipments_test" not in [d["Name"] for d in glue.get_databases()["DatabaseList"]]

    assert main(["catalog", "sync", "--conf", str(conf)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "catalog shipments_test: 6 Delta table(s), made 7 change(s)"
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName="shipments_test")["TableList"]}
    specs = {spec.name.replace("/", "_"): spec for spec in (*BATCH_TABLES, *STREAM_TABLES)}
    assert set(tables) == set(specs) and "quarantine_shipments" in tables
    for name, table in tables.items():
        assert table["Parameters"]["table_type"] == "DELTA"
        assert table["TableType"] == "EXTERNAL_TABLE"
        assert table["StorageDescriptor"]["Location"] == f"s3://test-lake-bucket/lake/{specs[name].name}"
        columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
        assert columns == [(f.name, f.dataType.simpleString()) for f in specs[name].schema.fields]
    assert ("total_charge_usd", "decimal(18,2)") in [
        (c["Name"], c["Type"]) for c in tables["shipment_daily_totals"]["StorageDescriptor"]["Columns"]
    ]

    assert main(["catalog", "sync", "--conf", str(conf)]) == 0
    assert capsys.readouterr().out == "catalog shipments_test: 6 Delta table(s), made 0 change(s)\n"


def test_catalog_sync_refuses_a_local_lake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = _conf(tmp_path, str(tmp_path / "lake"))
    assert main(["catalog", "sync", "--conf", str(conf)]) == 2
    err = capsys.readouterr().err
    assert "must be on S3" in err and len(err.strip().splitlines()) == 1
