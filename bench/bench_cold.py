"""Whole processes, cold: ``shipments daily`` against a bare-Spark process, and their memory.

What an EMR step or a Glue run pays: a fresh Python process and JVM, the session's start-up, the
job, the shutdown. For each rung of a ladder (250k, 1M, 3M shipments a day, times ``BENCH_SCALE``;
the raw zones of ``bench_daily``, generated there or here, shared):

(a) ``daily``: ``shipments daily --raw R --lake L --date D`` (conf/local.yaml: local[2], 4g driver)
    on a fresh lake, as a user runs it;
(b) ``bare``: ``python -m bench.bare_job R OUT``: a session built from the same config, the same
    files read with the same fixed schema, written as Parquet, nothing else.

Interleaved (bare, daily, bare, daily, ...), ``BENCH_REPEATS`` times (default 3; the top rung
once). Wall time of the whole process, and the peak resident memory of its process tree (the
Python driver and its JVM), sampled every 0.2 s from /proc (a sampled peak: a spike shorter than
that can be missed). Issue 11 goal 1 (cold ratios) and goal 5 (3M shipments a day completes in
the 4g driver; peak memory per rung).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.bench_daily import GOALS, LONG_TERM_GOAL, RUN_DATE, _raw_zone
from bench.common import ROOT, descendants, load_average, median, process_parents, repeats, scale, table

LADDER = (250_000, 1_000_000, 3_000_000)
SHIPMENTS = ROOT / ".venv" / "bin" / "shipments"
_SAMPLE_SECONDS = 0.2


def run(workdir: Path) -> str:
    reps = repeats()
    rungs = [max(1_000, round(n * scale())) for n in LADDER]
    zones = workdir.parent / "daily"  # bench_daily's raw zones: one copy of each on disk
    measured: dict[int, dict[str, Any]] = {}
    for index, n in enumerate(rungs):
        raw, info = _raw_zone(zones / f"raw-{n}", n)
        runs: dict[str, list[Run]] = {"bare": [], "daily": []}
        loads = [load_average()]
        for _ in range(1 if index == len(rungs) - 1 else reps):
            runs["bare"].append(_bare(raw, workdir / "bare"))
            runs["daily"].append(_daily(raw, workdir / "lake"))
        loads.append(load_average())
        measured[n] = {"runs": runs, "info": info, "load": loads}
        print(
            f"  {n} shipments/day cold: "
            + ", ".join(
                f"{k} {median([r.seconds for r in v]):.1f}s, peak {max(r.peak_mb for r in v):.0f} MB"
                for k, v in runs.items()
            ),
            flush=True,
        )
    shutil.rmtree(workdir / "lake", ignore_errors=True)
    shutil.rmtree(workdir / "bare", ignore_errors=True)
    return _report(rungs, measured, reps)


@dataclasses.dataclass(frozen=True)
class Run:
    """One whole process: its exit code, wall seconds, peak tree memory and last output line."""

    returncode: int
    seconds: float
    peak_bytes: int
    last_line: str

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


def _daily(raw: Path, lake: Path) -> Run:
    shutil.rmtree(lake, ignore_errors=True)
    return _measure([str(SHIPMENTS), "daily", "--raw", str(raw), "--lake", str(lake), "--date", RUN_DATE.isoformat()])


def _bare(raw: Path, out: Path) -> Run:
    shutil.rmtree(out, ignore_errors=True)
    return _measure([sys.executable, "-m", "bench.bare_job", str(raw), str(out)])


def _measure(command: list[str]) -> Run:
    """Run ``command`` from the project root; wall time and the sampled peak of its tree's RSS."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(process.pid))
            done.wait(_SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    lines = [line for line in output.splitlines() if line.strip()]
    if process.returncode != 0:
        print(f"  FAILED ({process.returncode}): {' '.join(command)}\n" + "\n".join(lines[-20:]), flush=True)
    return Run(process.returncode, seconds, peak[0], lines[-1] if lines else "")


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every process below it (from /proc; 0 once it is gone).

    A child whose memory figures are its parent's to the page is a fork not yet exec'd (the JVM
    starts ``ls``, ``chmod`` and Python workers through vfork): it shares its parent's memory and
    is not counted again. Counted, it doubled the JVM's peak at 3M (9.4 GB for 4.8 GB).
    """
    parents = process_parents()
    tree = [root, *descendants(root, parents)] if root in parents else []
    statms: dict[int, list[str]] = {}
    for pid in tree:
        with contextlib.suppress(OSError):  # gone since the listing
            statms[pid] = Path(f"/proc/{pid}/statm").read_text().split()
    # statm: size, resident, shared, text, lib, data, dt (pages)
    counted = [
        statms[pid] for pid in tree if pid in statms and (pid == root or statms[pid] != statms.get(parents[pid]))
    ]
    return sum(int(statm[1]) for statm in counted) * os.sysconf("SC_PAGE_SIZE")


def _report(rungs: list[int], measured: dict[int, dict[str, Any]], reps: int) -> str:
    rows, verdicts, memory = [], [], []
    for ladder_n, n in zip(LADDER, rungs, strict=True):
        m = measured[n]
        runs: dict[str, list[Run]] = m["runs"]
        failed = [r for r in (*runs["daily"], *runs["bare"]) if r.returncode != 0]
        daily_s, bare_s = (median([r.seconds for r in runs[k]]) for k in ("daily", "bare"))
        ratio = daily_s / bare_s
        read = _records_read(runs["daily"][-1].last_line)
        rows.append(
            (
                f"{n:,}",
                f"{read:,}" if read is not None else "?",
                f"{m['info']['bytes'] / 1e6:.0f}",
                f"{daily_s:.1f}",
                f"{bare_s:.1f}",
                f"**{ratio:.2f}x**",
                f"{max(r.peak_mb for r in runs['daily']):,.0f}",
                f"{max(r.peak_mb for r in runs['bare']):,.0f}",
                "all 0" if not failed else f"**{len(failed)} failed**",
                " / ".join(m["load"]),
            )
        )
        if ladder_n in GOALS:
            goal = GOALS[ladder_n]
            verdicts.append(
                f"- {n:,} shipments/day, cold: daily / bare **{ratio:.2f}x**, goal <= {goal}x: "
                f"**{'PASS' if ratio <= goal and not failed else 'MISS'}** (long-term {LONG_TERM_GOAL}x)"
            )
        memory.append(f"{n:,}: daily " + ", ".join(f"{r.peak_mb:,.0f}" for r in runs["daily"]) + " MB")
    top = rungs[-1]
    top_runs: list[Run] = measured[top]["runs"]["daily"]
    completed = all(r.returncode == 0 for r in top_runs)
    verdicts.append(
        f"- {top:,} shipments/day in the 4g local driver (goal 5): "
        + (
            f"**completed** (exit 0, the job's own conservation check passed), peak tree memory "
            f"{max(r.peak_mb for r in top_runs):,.0f} MB: **PASS**"
            if completed
            else "**failed**: **MISS** (see the run's output above)"
        )
    )
    spread = "; ".join(
        f"{n:,}: "
        + ", ".join(f"{k} " + "/".join(f"{r.seconds:.1f}" for r in v) for k, v in measured[n]["runs"].items())
        for n in rungs
    )
    return "\n".join(
        [
            "## Cold: whole processes and their memory",
            "",
            f"`shipments daily --date {RUN_DATE}` as a process (conf/local.yaml: local[2], spark.driver.memory 4g) "
            "on a fresh lake, against a bare-Spark process (`python -m bench.bare_job`: a session from the same "
            "config, the same files read with the same fixed schema, Parquet written), on bench_daily's raw zones. "
            f"Interleaved, median of {reps} (the top rung once). Wall time includes Python and JVM start-up and "
            "shutdown, what an EMR step or a Glue run pays. Peak memory: resident set of the process tree "
            "(Python + JVM; a fork not yet exec'd shares its parent's memory and is counted once), "
            "sampled every 0.2 s.",
            "",
            table(
                [
                    "shipments/day",
                    "lines read",
                    "input MB",
                    "daily s",
                    "bare s",
                    "daily / bare",
                    "daily peak MB",
                    "bare peak MB",
                    "exit codes",
                    "load avg before / after",
                ],
                rows,
            ),
            "",
            "Goals (issue 11):",
            "",
            *verdicts,
            "",
            f"All runs (seconds): {spread}. Peak memory per daily run: {'; '.join(memory)}.",
        ]
    )


def _records_read(line: str) -> int | None:
    """``records read N`` of the daily job's summary line (None when the line is not one)."""
    found = re.search(r"records read (\d+)", line)
    return int(found.group(1)) if found else None
