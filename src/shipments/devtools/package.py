"""``make package``: everything a deploy uploads, in ``dist/``, stamped with the commit.

    python -m shipments.devtools.package --out dist [--no-venv]

Writes:

- ``shipments-<version>-py3-none-any.whl``: the code (``<version>`` is ``0.1.0+g<commit>``, with
  ``.dirty`` when the work tree has uncommitted changes). EMR's bootstrap installs it on every
  node; Glue 5.1 takes it through ``--additional-python-modules``.
- ``shipments-<version>-venv.tar.gz``: a virtual environment with the wheel and its runtime
  dependencies (PyYAML, prometheus-client, and the ``stream`` extra: delta-rs and pyarrow for the
  stream's driver MERGE) packed by venv-pack, for ``spark.archives
  <uri>#environment`` (EMR Serverless, or EMR without the bootstrap). It holds no PySpark: the
  platform's is used.
- ``jobs/*.py`` (the entry scripts), ``conf/*.yaml``, ``emr/bootstrap.sh``, and
  ``manifest.json`` with the version and every file's SHA-256.

Reproducible where the tools allow: the wheel is built with ``SOURCE_DATE_EPOCH`` set to the
commit time from a clean build folder, so the same commit gives the same bytes (tested). The
venv archive is not byte-stable (venv-pack stores file times, pip writes install-time metadata).
Offline after ``make setup``: the venv installs with ``--no-index`` from ``build/wheelhouse``
(the pinned wheels the Makefile downloads), so a missing pin fails the build
rather than reaching PyPI.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from shipments import __version__

ROOT = Path(__file__).resolve().parents[3]
WHEELHOUSE = ROOT / "build" / "wheelhouse"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def build_version() -> str:
    """``0.1.0+g<short commit>`` (PEP 440 local version), ``.dirty`` added for uncommitted work."""
    version = f"{__version__}+g{_git('rev-parse', '--short=10', 'HEAD')}"
    if _git("status", "--porcelain", "--untracked-files=no", "--", "src", "setup.py", "pyproject.toml"):
        version += ".dirty"
    return version


def build_wheel(out: Path, version: str) -> Path:
    """Build the wheel into ``out`` (from a clean build folder, with a fixed timestamp)."""
    shutil.rmtree(ROOT / "build" / "lib", ignore_errors=True)
    shutil.rmtree(ROOT / "build" / "bdist.linux-x86_64", ignore_errors=True)
    env = {
        **os.environ,
        "SHIPMENTS_VERSION": version,
        "SOURCE_DATE_EPOCH": _git("log", "-1", "--format=%ct"),
        "PYTHONHASHSEED": "0",
    }
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("shipments-*.whl"):
        old.unlink()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        cwd=ROOT,
        env=env,
        check=True,
    )
    wheels = list(out.glob("shipments-*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel in {out}, found {[w.name for w in wheels]}")
    return wheels[0]


def build_venv_archive(out: Path, wheel: Path, version: str) -> Path:
    """A venv with the wheel, its dependencies and its ``stream`` extra (from the wheelhouse only),
    packed by venv-pack."""
    venv = ROOT / "build" / "pack-venv"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(WHEELHOUSE),
         f"{wheel}[stream]"],
        check=True,
    )  # fmt: skip
    archive = out / f"shipments-{version}-venv.tar.gz"
    venv_pack = Path(sys.executable).with_name("venv-pack")
    subprocess.run([str(venv_pack), "-q", "-p", str(venv), "-o", str(archive), "--force"], check=True)
    return archive


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package(out: Path, *, venv: bool = True) -> dict[str, object]:
    """Build everything into ``out`` (emptied first) and return the manifest."""
    out = out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    version = build_version()
    wheel = build_wheel(out, version)
    if venv:
        build_venv_archive(out, wheel, version)
    for folder, pattern in (("jobs", "*.py"), ("conf", "*.yaml")):
        (out / folder).mkdir()
        for source in sorted((ROOT / folder).glob(pattern)):
            shutil.copy2(source, out / folder / source.name)
    (out / "emr").mkdir()
    shutil.copy2(ROOT / "emr" / "bootstrap.sh", out / "emr" / "bootstrap.sh")
    files = {path.relative_to(out).as_posix(): _sha256(path) for path in sorted(out.rglob("*")) if path.is_file()}
    manifest: dict[str, object] = {"version": version, "wheel": wheel.name, "files": files}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shipments.devtools.package", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "dist"), help="output folder, emptied first (default dist/)")
    parser.add_argument("--no-venv", action="store_true", help="skip the venv archive (wheel and scripts only)")
    args = parser.parse_args(argv)
    manifest = package(Path(args.out), venv=not args.no_venv)
    files = manifest["files"]
    assert isinstance(files, dict)
    print(f"packaged {manifest['version']} into {args.out}: {', '.join(sorted(files))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
