"""``make package``: a version-stamped wheel that installs into a clean venv and runs, built
reproducibly; the EMR venv archive; the entry scripts and a manifest."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.cloud_fixtures import ROOT, packaged_fixture  # noqa: F401

pytestmark = pytest.mark.slow


def _package(out: Path, *extra: str) -> dict[str, object]:
    subprocess.run(
        [sys.executable, "-m", "shipments.devtools.package", "--out", str(out), *extra],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    manifest: dict[str, object] = json.loads((out / "manifest.json").read_text())
    return manifest


@pytest.fixture
def dist(packaged: Path) -> Path:
    return packaged


def test_dist_holds_a_stamped_wheel_the_venv_archive_and_the_scripts(dist: Path) -> None:
    manifest = json.loads((dist / "manifest.json").read_text())
    commit = subprocess.run(
        ["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert re.fullmatch(rf"0\.1\.0\+g{commit}(\.dirty)?", manifest["version"])
    version = manifest["version"]
    assert manifest["wheel"] == f"shipments-{version}-py3-none-any.whl"
    expected = {
        manifest["wheel"],
        f"shipments-{version}-venv.tar.gz",
        "jobs/daily_totals.py",
        "jobs/emr_main.py",
        "jobs/glue_daily_totals.py",
        "conf/base.yaml",
        "conf/emr.yaml",
        "conf/glue.yaml",
        "emr/bootstrap.sh",
    }
    assert expected <= set(manifest["files"])
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((dist / name).read_bytes()).hexdigest() == digest, name

    with zipfile.ZipFile(dist / manifest["wheel"]) as wheel:
        names = set(wheel.namelist())
        assert {"shipments/cli.py", "shipments/redaction.py", "shipments/cloud/deploy.py"} <= names
        entry_points = wheel.read(f"shipments-{version}.dist-info/entry_points.txt").decode()
        assert "shipments = shipments.cli:main" in entry_points
        metadata = wheel.read(f"shipments-{version}.dist-info/METADATA").decode()
        assert f"Version: {version}" in metadata and "Requires-Dist: PyYAML" in metadata
        assert "Requires-Dist: prometheus-client==0.26.0" in metadata

    with tarfile.open(dist / f"shipments-{version}-venv.tar.gz") as archive:
        members = archive.getnames()
    assert "bin/python" in members and "bin/activate" in members
    site = "lib/python3.11/site-packages/"
    assert f"{site}shipments/cli.py" in members and f"{site}yaml/__init__.py" in members
    assert not any(m.startswith(f"{site}pyspark/") for m in members), "the platform provides Spark"


def test_the_venv_archive_imports_its_runtime_dependencies(dist: Path, tmp_path: Path) -> None:
    """Unpacked as spark.archives unpacks it (``#environment``), its own Python imports PyYAML,
    prometheus-client (the Pushgateway exporter) and the stream's delta-rs and pyarrow from the
    archive itself, at the pinned versions."""
    version = json.loads((dist / "manifest.json").read_text())["version"]
    environment = tmp_path / "environment"
    with tarfile.open(dist / f"shipments-{version}-venv.tar.gz") as archive:
        archive.extractall(environment, filter="tar")
    script = (
        "import importlib.metadata as md, json, prometheus_client, yaml, deltalake, pyarrow; "
        "from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway; "
        "print(json.dumps([prometheus_client.__file__, yaml.__file__, deltalake.__file__, "
        "[md.version(name) for name in ('prometheus-client', 'deltalake', 'pyarrow')]]))"
    )
    # -I: nothing from this process's environment (PYTHONPATH, user site) may supply the modules
    done = subprocess.run(
        [str(environment / "bin" / "python"), "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    prometheus, pyyaml, delta_rs, pinned = json.loads(done.stdout)
    site = environment / "lib" / "python3.11" / "site-packages"
    assert Path(prometheus) == site / "prometheus_client" / "__init__.py"
    assert Path(pyyaml) == site / "yaml" / "__init__.py"
    assert Path(delta_rs) == site / "deltalake" / "__init__.py"
    assert pinned == ["0.26.0", "1.6.6", "26.0.1"]


def test_the_wheel_is_reproducible(tmp_path: Path) -> None:
    """Two builds of the same source, back to back: the same bytes."""
    first = _package(tmp_path / "one", "--no-venv")
    again = _package(tmp_path / "two", "--no-venv")
    assert again["version"] == first["version"]
    wheel = str(first["wheel"])
    assert (tmp_path / "two" / wheel).read_bytes() == (tmp_path / "one" / wheel).read_bytes()


def test_the_wheel_installs_into_a_clean_venv_and_runs(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    wheel = dist / json.loads((dist / "manifest.json").read_text())["wheel"]
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--find-links",
         str(ROOT / "build" / "wheelhouse"), str(wheel)],
        check=True,
        timeout=300,
    )  # fmt: skip
    shown = subprocess.run([str(venv / "bin" / "shipments"), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    for command in ("daily", "backfill", "stream", "deploy", "catalog"):
        assert command in shown.stdout
    # No PySpark in that venv: a bad argument is still caught, before Spark would be needed.
    bad = subprocess.run(
        [str(venv / "bin" / "shipments"), "daily", "--date", "2026-13-45"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.util as u; print(u.find_spec('pyspark') is None)"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert found.stdout.strip() == "True"
