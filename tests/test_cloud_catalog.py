"""``shipments catalog sync`` against moto's Glue Data Catalog: every Delta table registered as
native Delta (table_type=DELTA + its location), once; a second sync changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipments.cli import main
from shipments.model.tables import LAKE_TABLES
from tests.cloud_fixtures import ROOT, Moto, aws_env_fixture, moto_fixture  # noqa: F401

pytestmark = pytest.mark.usefixtures("aws_env")

# Every Delta table the project writes, by its catalog name (written out, not taken from the code).
TABLES = [
    "shipment_daily_totals", "quarantine_shipments", "pipeline_runs",
    "dq_results", "pipeline_metrics", "alert_state",  # the operations tables (checks, metrics, alerts)
    "shipment_status", "shipment_status_late", "shipment_status_dlq",
]  # fmt: skip
OPS_TABLES = ["alert_state", "dq_results", "pipeline_metrics"]


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
    # the database and nine tables, each call printed
    assert out[0] == "catalog shipments_test: 9 Delta table(s), would make 10 change(s)"
    assert sorted(line.split()[1] for line in out[1:] if line.strip().startswith("CHANGE")) == [
        "glue.create_database",
        *["glue.create_table"] * 9,
    ]
    glue = moto.client("glue")
    assert "shipments_test" not in [d["Name"] for d in glue.get_databases()["DatabaseList"]]

    assert main(["catalog", "sync", "--conf", str(conf)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "catalog shipments_test: 9 Delta table(s), made 10 change(s)"
    tables = {t["Name"]: t for t in glue.get_tables(DatabaseName="shipments_test")["TableList"]}
    specs = {spec.name.replace("/", "_"): spec for spec in LAKE_TABLES}
    assert sorted(tables) == sorted(specs) == sorted(TABLES)
    for name, table in tables.items():
        assert table["Parameters"]["table_type"] == "DELTA"
        assert table["TableType"] == "EXTERNAL_TABLE"
        assert table["StorageDescriptor"]["Location"] == f"s3://test-lake-bucket/lake/{specs[name].name}"
        columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
        assert columns == [(f.name, f.dataType.simpleString()) for f in specs[name].schema.fields]

    def columns_of(name: str) -> list[tuple[str, str]]:
        return [(c["Name"], c["Type"]) for c in tables[name]["StorageDescriptor"]["Columns"]]

    assert ("total_charge_usd", "decimal(18,2)") in columns_of("shipment_daily_totals")
    assert {("sample_keys", "array<string>"), ("passed", "boolean")} <= set(columns_of("dq_results"))
    assert {("metric", "string"), ("value", "double"), ("batch_id", "bigint")} <= set(columns_of("pipeline_metrics"))
    assert {("fingerprint", "string"), ("affected_dates", "array<date>")} <= set(columns_of("alert_state"))

    assert main(["catalog", "sync", "--conf", str(conf)]) == 0
    assert capsys.readouterr().out == "catalog shipments_test: 9 Delta table(s), made 0 change(s)\n"


def test_catalog_sync_adds_the_operations_tables_to_an_older_catalog(
    moto: Moto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database synced before the operations tables existed gains exactly those three."""
    conf = _conf(tmp_path, "s3://test-lake-bucket/lake")
    conf.write_text(conf.read_text().replace("shipments_test", "shipments_upgrade"))
    assert main(["catalog", "sync", "--conf", str(conf)]) == 0
    glue = moto.client("glue")
    for name in OPS_TABLES:
        glue.delete_table(DatabaseName="shipments_upgrade", Name=name)
    capsys.readouterr()

    assert main(["catalog", "sync", "--conf", str(conf)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "catalog shipments_upgrade: 9 Delta table(s), made 3 change(s)"
    assert [line.split()[:2] for line in out[1:]] == [["CHANGE", "glue.create_table"]] * 3
    created = [json.loads(line.split("glue.create_table ", 1)[1])["TableInput"]["Name"] for line in out[1:]]
    assert sorted(created) == OPS_TABLES
    tables = glue.get_tables(DatabaseName="shipments_upgrade")["TableList"]
    assert sorted(t["Name"] for t in tables) == sorted(TABLES)
    locations = {t["Name"]: t["StorageDescriptor"]["Location"] for t in tables}
    assert [locations[n] for n in OPS_TABLES] == [f"s3://test-lake-bucket/lake/{n}" for n in OPS_TABLES]


def test_catalog_sync_refuses_a_local_lake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = _conf(tmp_path, str(tmp_path / "lake"))
    assert main(["catalog", "sync", "--conf", str(conf)]) == 2
    err = capsys.readouterr().err
    assert "must be on S3" in err and len(err.strip().splitlines()) == 1
