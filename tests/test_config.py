"""Config files: extends, relative paths, overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipments.config import duration_seconds, load_config
from shipments.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_local_config_resolves_paths_against_its_own_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    config = load_config(ROOT / "conf" / "local.yaml")
    assert config.raw == str(ROOT / "data" / "raw") and config.lake == str(ROOT / "data" / "lake")
    assert config.spark.platform == "local" and config.spark.jars_dir == str(ROOT / "jars" / "spark")
    assert config.spark.settings["spark.sql.session.timeZone"] == "UTC"  # from base.yaml
    assert config.spark.settings["spark.sql.shuffle.partitions"] == "4"  # local.yaml overrides base
    assert config.daily.lookback_days == 1 and config.daily.raw_format == "json"


def test_command_line_paths_override_and_uris_are_kept(tmp_path: Path) -> None:
    config = load_config(ROOT / "conf" / "emr.yaml", raw="s3a://raw-bucket/raw", lake=str(tmp_path / "lake"))
    assert config.raw == "s3a://raw-bucket/raw" and config.lake == str(tmp_path / "lake")
    assert config.table("quarantine/shipments") == f"{tmp_path}/lake/quarantine/shipments"
    assert config.spark.platform == "emr" and config.spark.jars_dir == ""


@pytest.mark.parametrize("name", ["emr.yaml", "glue.yaml"])
def test_cloud_configs_keep_credentials_out(name: str) -> None:
    text = (ROOT / "conf" / name).read_text().lower()
    for word in ("secret", "access_key", "password", "token"):
        assert word not in text
    config = load_config(ROOT / "conf" / name)
    assert config.raw.startswith("s3://") and config.lake.startswith("s3://")


def test_a_config_cannot_extend_itself(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_config(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90 seconds", 90), ("1 hour", 3600), ("2 days", 172800), ("10 minutes", 600)]
)
def test_durations(text: str, seconds: int) -> None:
    assert duration_seconds(text) == seconds


def test_bad_duration() -> None:
    with pytest.raises(ConfigError, match="must look like"):
        duration_seconds("soon", name="stream.allowed_lateness")
