"""Fixtures of the cloud tests: moto's server on 127.0.0.1 as the stand-in for S3, EMR, EMR
Serverless, Glue, IAM and EventBridge Scheduler, and an environment that points boto3 and S3A at it.

The server is started as a plain process and stopped by its pid. Credentials are moto's fake
ones, set in the environment only (never in a file); ``AWS_ENDPOINT_URL`` sends every AWS client
(boto3 and the local session's S3A) to the server.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stream_fixtures import moto_server

ROOT = Path(__file__).resolve().parents[1]
REGION = "eu-west-1"


@dataclasses.dataclass
class Moto:
    """A running moto server and the environment that points AWS clients at it."""

    process: subprocess.Popen[bytes]
    endpoint_url: str
    log: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="session", name="moto")
def moto_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """moto's server on 127.0.0.1 for the whole session, stopped by its pid at the end.

    A test module imports ``moto_fixture`` and asks for ``moto``; code under test that finds AWS
    through the environment (the command line in this process) also asks for ``aws_env``."""
    folder = tmp_path_factory.mktemp("moto-cloud")
    with moto_server(folder) as (process, endpoint):
        yield Moto(process, endpoint, folder / "moto.log")


@pytest.fixture(name="aws_env")
def aws_env_fixture(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """The process environment pointed at moto (fake credentials, endpoint, region) for one test."""
    for key, value in moto.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m shipments ARGS`` in a fresh process (its own JVM), output captured."""
    return _run_python(["-m", "shipments", *args], env, timeout)


def run_python(script: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -c SCRIPT`` in a fresh process (its own JVM when it starts Spark), output captured."""
    return _run_python(["-c", script], env, timeout)


def _run_python(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session", name="packaged")
def packaged_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dist/`` as ``make package`` builds it (wheel, venv archive, scripts, manifest), once."""
    out = tmp_path_factory.mktemp("package") / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "shipments.devtools.package", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"make package failed: {done.stderr[-2000:]}"
    return out
