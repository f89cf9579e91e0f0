"""Secrets never reach a log line or the run ledger.

A fake key sits in a Spark setting (as a mistaken config would put it); the command line's
logs (debug level, which prints the session settings), its last line and pipeline_runs.error
must mask it, while naming the setting so an operator sees what was set.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from shipments.batch.ledger import RunRecord, recorded_run
from shipments.config import Config
from shipments.errors import describe
from shipments.model.tables import PIPELINE_RUNS
from shipments.redaction import MASK, install_log_redaction, redact, register_secrets
from tests.cloud_fixtures import ROOT, run_cli

FAKE_SECRET = "FAKEsEcReT/k3y+0123456789abcdefghijKLMN"  # shaped like an AWS secret key, not one
FAKE_KEY_ID = "AKIAFAKEFAKEFAKEFAKE"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"spark.hadoop.fs.s3a.secret.key={FAKE_SECRET}", f"spark.hadoop.fs.s3a.secret.key={MASK}"),
        (f"{{'spark.hadoop.fs.s3a.secret.key': '{FAKE_SECRET}'}}", f"{{'spark.hadoop.fs.s3a.secret.key': '{MASK}'}}"),
        (f'"password": "{FAKE_SECRET}"', f'"password": "{MASK}"'),
        (
            f"kafka.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="svc" password="{FAKE_SECRET}";',
            f'kafka.sasl.jaas.config={MASK} required username="svc" password="{MASK}";',
        ),
        (f"failed to read s3a://{FAKE_KEY_ID}:{FAKE_SECRET}@bucket/raw", "failed to read s3a://***:***@bucket/raw"),
        (f"token: {FAKE_SECRET}", f"token: {MASK}"),
    ],
)
def test_redact_masks_secret_shaped_text(text: str, expected: str) -> None:
    # exact: the secret goes, the setting's name and the text around it stay
    assert redact(text) == expected


def test_redact_keeps_ordinary_settings() -> None:
    text = "spark.hadoop.fs.s3a.aws.credentials.provider=org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
    assert redact(text) == text
    assert redact("spark.sql.shuffle.partitions=4 rows_read=12") == "spark.sql.shuffle.partitions=4 rows_read=12"


def test_a_registered_value_is_masked_wherever_it_appears(caplog: pytest.LogCaptureFixture) -> None:
    register_secrets({"spark.custom.api.key": "opaque-value-42xyz", "spark.app.name": "not-a-secret-value"})
    install_log_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("shipments.test").info("echoed %s, and %s", "opaque-value-42xyz", "not-a-secret-value")
        try:
            raise RuntimeError("boom with opaque-value-42xyz inside")
        except RuntimeError:
            logging.getLogger("shipments.test").exception("failed")
    text = caplog.text
    assert "opaque-value-42xyz" not in text and MASK in text
    assert "not-a-secret-value" in text
    assert "boom with" in text  # the traceback is kept, only the value masked


def test_the_ledger_error_is_redacted(spark: SparkSession, config: Config) -> None:
    register_secrets({"spark.hadoop.fs.s3a.secret.key": FAKE_SECRET})
    record = RunRecord("secret-test-run", "daily", dt.date(2026, 11, 2))
    with pytest.raises(RuntimeError), recorded_run(spark, config, record):
        raise RuntimeError(f"S3 refused the request signed with {FAKE_SECRET}")
    rows = spark.read.format("delta").load(PIPELINE_RUNS.path(config)).collect()
    assert [r["status"] for r in rows] == ["FAILED"]
    error = rows[0]["error"]
    assert FAKE_SECRET not in error and MASK in error and "S3 refused the request" in error
    assert FAKE_SECRET not in describe(RuntimeError(f"x {FAKE_SECRET}"))


@pytest.mark.slow
def test_cli_logs_and_last_line_never_show_a_secret_setting(tmp_path: Path) -> None:
    """A real run (its own process, debug logs) with the fake key in spark.settings."""
    conf = tmp_path / "secret.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "extends": str(ROOT / "conf" / "local.yaml"),
                "spark": {
                    "settings": {
                        "spark.hadoop.fs.s3a.secret.key": FAKE_SECRET,
                        "spark.hadoop.fs.s3a.access.key": FAKE_KEY_ID,
                        "spark.sql.shuffle.partitions": "2",
                    }
                },
            }
        )
    )
    lake = tmp_path / "lake"
    # The raw zone exists but holds no data for the date: the run fails after Spark started,
    # and the failure is recorded in the ledger.
    (tmp_path / "raw" / "shipments").mkdir(parents=True)
    done = run_cli(
        [
            "daily",
            "--conf",
            str(conf),
            "--raw",
            str(tmp_path / "raw"),
            "--lake",
            str(lake),
            "--date",
            "2026-11-02",
            "--verbose",
        ],
        {},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "spark.hadoop.fs.s3a.secret.key" in output, "the settings line must be there to prove anything"
    assert FAKE_SECRET not in output and FAKE_KEY_ID not in output
    assert MASK in output
    for path in lake.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".crc", ".parquet"}:
            assert FAKE_SECRET.encode() not in path.read_bytes(), path


def test_no_credentials_in_the_repository() -> None:
    """Every tracked file: no AWS access key id, no secret key or password assigned a value."""
    import re
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    key_id = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
    assigned = re.compile(
        r"(?i)(aws_secret_access_key|secret[._]key|password)[\"']?\s*[=:]\s*[\"']?([A-Za-z0-9/+]{20,})"
    )
    # test fixtures: our fakes and AWS's documented examples (AKIAIOSFODNN7EXAMPLE)
    placeholder = re.compile("FAKE|EXAMPLE")
    found = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".jar", ".gz", ".parquet", ".png"}:
            continue
        text = path.read_text(errors="ignore")
        found += [f"{name}: {m.group(0)}" for m in key_id.finditer(text) if not placeholder.search(m.group(0))]
        found += [f"{name}: {m.group(1)}=..." for m in assigned.finditer(text) if not placeholder.search(m.group(2))]
    assert found == []
