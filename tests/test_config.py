"""Config files: extends, relative paths, overrides and validation."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from shipments.config import Config, duration_seconds, load_config
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


# What a credential looks like as a setting's name or inside a value. A class that names where
# credentials come from (``fs.s3a.aws.credentials.provider``) is not one.
_SECRET_NAME = re.compile(r"access[._-]?key|secret|session[._-]?token|password|passwd|\.token$", re.IGNORECASE)
_SECRET_VALUE = (
    re.compile(r"(?<![A-Z0-9])(AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),  # an AWS access key id
    re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s]+:[^/@\s]*@"),  # user:pass@ in a URI
    re.compile(r"(password|passwd|secret|token|signature)=[^&;\s]", re.IGNORECASE),  # in a query string
)


def _settings(value: object, name: str = "") -> Iterator[tuple[str, str]]:
    """Every leaf of a loaded config as (dotted name, text), Spark settings included."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _settings(getattr(value, field.name), f"{name}.{field.name}".lstrip("."))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _settings(item, f"{name}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _settings(item, f"{name}[{index}]")
    elif value is not None:
        yield name, str(value)


def _credentials(config: Config) -> list[str]:
    """The settings of ``config`` that carry a credential, by name."""
    return [
        name
        for name, text in _settings(config)
        if (_SECRET_NAME.search(name) and text.strip()) or any(p.search(text) for p in _SECRET_VALUE)
    ]


@pytest.mark.parametrize("name", ["emr.yaml", "glue.yaml"])
def test_cloud_configs_keep_credentials_out(name: str) -> None:
    config = load_config(ROOT / "conf" / name)
    assert len(list(_settings(config))) > 20  # every section was walked, base.yaml's included
    assert _credentials(config) == []
    assert config.raw.startswith("s3://") and config.lake.startswith("s3://")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # None of these holds the words a keyword grep of the file looked for.
        ("paths:\n  raw: s3a://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY@bucket/raw\n", "raw"),
        ("paths:\n  lake: s3://bucket/lake?X-Amz-Signature=0f1e2d\n", "lake"),
        ("spark:\n  settings:\n    spark.hadoop.fs.s3a.access.key: AKIAIOSFODNN7EXAMPLE\n", "s3a.access.key"),
        ("stream:\n  dynamodb:\n    endpoint_url: http://admin:hunter2@127.0.0.1:8000\n", "endpoint_url"),
    ],
)
def test_the_credentials_check_sees_what_the_loader_loads(tmp_path: Path, text: str, found: str) -> None:
    # In the file a config extends: a grep of the environment file itself would never see it.
    (tmp_path / "shared.yaml").write_text(f"extends: {ROOT / 'conf' / 'base.yaml'}\n{text}")
    (tmp_path / "emr.yaml").write_text("extends: shared.yaml\nspark:\n  platform: emr\n")
    flagged = _credentials(load_config(tmp_path / "emr.yaml"))
    assert any(found in name for name in flagged), flagged


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
