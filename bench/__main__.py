"""Run the benchmarks and write ``bench/REPORT.md``.

    python -m bench                  every bench/bench_*.py, in name order (what `make bench` runs)
    python -m bench daily stream     only bench_daily.py and bench_stream.py
    python -m bench --scale 0.1      a tenth of the volume, for a quick check (same as BENCH_SCALE=0.1)
    python -m bench --list           the modules found

Each module exposes ``run(workdir: Path) -> str`` and returns a Markdown section. It gets its own
folder ``bench/work/<name>/`` (git-ignored, kept between runs so generated input can be reused).
Its section is saved to ``bench/results/<name>.md``; ``bench/REPORT.md`` is then rebuilt from the
machine description and every saved section, so running one module refreshes only its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

from bench.common import load_average

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / "work"
RESULTS_DIR = BENCH_DIR / "results"
REPORT = BENCH_DIR / "REPORT.md"
PREFIX = "bench_"


def discover() -> list[str]:
    """Names of the benchmark modules (``bench_daily.py`` -> ``daily``), in name order."""
    return sorted(p.stem[len(PREFIX) :] for p in BENCH_DIR.glob(f"{PREFIX}*.py"))


def _java_version() -> str:
    java = Path(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else Path("java")
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (out.stderr or out.stdout).splitlines()[0].strip() if (out.stderr or out.stdout) else "unknown"


def _package(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpus() -> str:
    """The CPUs this process may use and their model, e.g. "2 (AMD EPYC)"."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), platform.machine()
    )
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{count} ({model})"


def machine() -> str:
    """The machine and versions the numbers were measured on, as Markdown."""
    meminfo = Path("/proc/meminfo").read_text().splitlines() if Path("/proc/meminfo").exists() else []
    mem_kb = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:")), 0)
    rows = [
        ("CPUs (nproc)", cpus()),
        ("memory", f"{mem_kb / 1024 / 1024:.1f} GiB"),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("Java", _java_version()),
        ("Spark (pyspark)", _package("pyspark")),
        ("Delta Lake (delta-spark)", _package("delta-spark")),
        ("DuckDB", _package("duckdb")),
    ]
    return "\n".join(["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]])


def run_one(name: str) -> bool:
    """Run ``bench_<name>.run`` and save its section; a failure is saved as the section."""
    workdir = WORK_DIR / name
    workdir.mkdir(parents=True, exist_ok=True)
    started_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = load_average()
    started = time.perf_counter()
    print(f"bench {name}: running (work folder {workdir})", flush=True)
    ok = True
    try:
        module = importlib.import_module(f"bench.{PREFIX}{name}")
        section = module.run(workdir).rstrip() + "\n"
    except Exception:  # a broken module must not stop the others; its section says what broke
        ok = False
        section = f"## {name}\n\nFAILED:\n\n```\n{traceback.format_exc()}```\n"
    seconds = time.perf_counter() - started
    footer = (
        f"\n_bench `{name}`: run {started_at}, BENCH_SCALE={os.environ.get('BENCH_SCALE', '1')}, "
        f"{seconds:.0f} s in all, CPUs {cpus()}, 1-minute load average {load_before} before / {load_average()} "
        f"after (above the CPU count means other work competed for the CPU)._\n"
    )
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"{name}.md").write_text(section + footer)
    print(
        f"bench {name}: {'done' if ok else 'FAILED'} in {seconds:.0f} s -> {RESULTS_DIR / (name + '.md')}", flush=True
    )
    return ok


def write_report() -> None:
    """``REPORT.md``: date, machine, then every saved section in module order."""
    sections = [RESULTS_DIR / f"{name}.md" for name in discover()]
    parts = [
        "# Benchmark report",
        "",
        f"Written {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `python -m bench` (`make bench`); "
        "each section says when it was run and at what scale. How to run and read it: bench/README.md.",
        "",
        "## Machine",
        "",
        "Where this report was written. Each section's last line names the CPUs it ran on (sections run before "
        "2026-12-01 17:00 do not: machines of this kind have had Intel Xeon and AMD EPYC CPUs, 2 cores each, "
        "and the same run took up to 1.7x longer on one than on the other).",
        "",
        machine(),
        "",
    ]
    parts += [p.read_text().rstrip() + "\n" for p in sections if p.exists()]
    REPORT.write_text("\n".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Run the benchmarks; write bench/REPORT.md.")
    parser.add_argument("names", nargs="*", help="modules to run, e.g. `daily` for bench_daily.py (default: all)")
    parser.add_argument("--scale", type=float, help="volume multiplier, e.g. 0.1 for a quick check (env BENCH_SCALE)")
    parser.add_argument("--list", action="store_true", help="list the modules and exit")
    args = parser.parse_args(argv)
    available = discover()
    if args.list:
        print("\n".join(available))
        return 0
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; found: {', '.join(available)}")
    if args.scale is not None:
        if args.scale <= 0:
            parser.error("--scale must be > 0")
        os.environ["BENCH_SCALE"] = str(args.scale)
    results = [run_one(name) for name in (args.names or available)]
    write_report()
    print(f"report: {REPORT}", flush=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
