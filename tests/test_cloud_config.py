"""The cloud settings (spark.s3, deploy) and commands (scheduled, deploy, catalog) check their
input before anything starts: one line, exit 2, nothing called."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from shipments.cli import main
from shipments.config import load_config
from shipments.devtools.generate import generate_raw_zone
from shipments.model.tables import PIPELINE_RUNS
from shipments.session import s3a_settings
from tests.cloud_fixtures import ROOT


def _write(tmp_path: Path, body: str) -> Path:
    conf = tmp_path / "c.yaml"
    conf.write_text(f"extends: {ROOT / 'conf' / 'base.yaml'}\nspark: {{platform: emr}}\n{body}")
    return conf


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("deploy: {artifacts: 'my-bucket/x'}", "deploy.artifacts must be an s3://bucket/prefix URI"),
        ("deploy: {glue_role: 'shipments-glue-job'}", "deploy.glue_role must be an IAM role ARN"),
        ("deploy: {daily_schedule: 'every day'}", "deploy.daily_schedule must be cron(...) or rate"),
        ("deploy: {region: 'Europe'}", "deploy.region must be an AWS region"),
        ("deploy: {glue_workers: 1}", "deploy.glue_workers must be a whole number of at least 2"),
        ("deploy: {bucket: x}", "unknown key(s) in config section 'deploy': bucket"),
        ("spark: {platform: emr, s3: {endpoint: 'localhost:9000'}}", "spark.s3.endpoint must be an http(s)://"),
        ("spark: {platform: emr, s3: {path_style: 'yes'}}", "spark.s3.path_style must be true or false"),
        ("spark: {platform: emr, s3: {secret_key: 'x'}}", "unknown key(s) in config section 'spark.s3': secret_key"),
    ],
)
def test_bad_cloud_settings_fail_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, message: str
) -> None:
    conf = _write(tmp_path, body)
    assert main(["catalog", "sync", "--conf", str(conf), "--lake", "s3://b/lake"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_s3a_settings_take_the_endpoint_from_config_or_environment() -> None:
    s3 = load_config(ROOT / "conf" / "local-s3.yaml").spark.s3
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9999", "AWS_REGION": "eu-west-1", "AWS_SECRET_ACCESS_KEY": "x"}
    settings = s3a_settings(s3, env)
    assert settings["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9999"
    assert settings["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert settings["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert settings["spark.hadoop.fs.s3a.endpoint.region"] == "eu-west-1"
    assert settings["spark.hadoop.fs.s3.impl"] == "org.apache.hadoop.fs.s3a.S3AFileSystem"
    assert not any("secret" in k or "access.key" in k for k in settings), "credentials stay in the environment"
    assert "spark.hadoop.fs.s3a.endpoint" not in s3a_settings(s3, {}), "AWS itself when nothing is named"
    assert s3a_settings(load_config(ROOT / "conf" / "local.yaml").spark.s3, env) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scheduled", "--time", "2026-11-03T02:30:00"], "expected an ISO-8601 time with Z or +hh:mm"),
        (["deploy", "--target", "emr", "--backfill-start", "2026-10-01"], "--backfill-start and --backfill-end go"),
        (["deploy", "--target", "aws"], "invalid choice"),
        (["deploy", "--target", "glue", "--date", "2026-13-45"], "2026-13-45"),
    ],
)
def test_bad_cloud_arguments_fail_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    conf = _write(tmp_path, "deploy: {region: eu-west-1, artifacts: 's3://a-bucket/shipments'}")
    try:
        code = main([*args, "--conf", str(conf)])
    except SystemExit as exc:  # argparse's own usage errors
        code = int(str(exc.code))
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_deploy_needs_artifacts_and_a_package(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = ["--raw", "s3://r-bucket/raw", "--lake", "s3://l-bucket/lake"]
    conf = _write(tmp_path, "deploy: {region: eu-west-1}")
    assert main(["deploy", "--target", "glue", "--conf", str(conf), *lake]) == 2
    assert "deploy.artifacts is not set" in capsys.readouterr().err
    conf = _write(tmp_path, "deploy: {region: eu-west-1, artifacts: 's3://a-bucket/shipments'}")
    assert main(["deploy", "--target", "glue", "--conf", str(conf), "--raw", str(tmp_path), "--lake", "s3://l/x"]) == 2
    assert "paths.raw must be on S3 to deploy" in capsys.readouterr().err
    code = main(["deploy", "--target", "glue", "--conf", str(conf), "--dist", str(tmp_path / "dist"), *lake])
    err = capsys.readouterr().err
    assert code == 1 and "run `make package` first" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_scheduled_runs_the_day_before_its_fire_time(spark: SparkSession, tmp_path: Path) -> None:
    raw, lake = tmp_path / "raw", tmp_path / "lake"
    generate_raw_zone(raw, dt.date(2026, 11, 1), 3, shipments_per_day=60, customers=10, seed=3)
    # 00:30 at +02:00 is still the previous UTC day: the UTC day before that is 11-01
    assert main(["scheduled", "--raw", str(raw), "--lake", str(lake), "--time", "2026-11-03T00:30:00+02:00"]) == 0
    runs = spark.read.format("delta").load(str(lake / PIPELINE_RUNS.name)).collect()
    assert [(r["run_date"], r["status"]) for r in runs] == [(dt.date(2026, 11, 1), "SUCCEEDED")]
