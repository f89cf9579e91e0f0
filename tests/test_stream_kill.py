"""SIGKILL the continuous job at several points, restart it from its checkpoint, and check that
the tables (and the DynamoDB serving table) hold exactly what an uninterrupted run gives.

Kill points: (1) at the start of the first micro-batch, before it wrote anything, (2) right after
the replayed batch inserted its dead letters, before its other writes and its commit, (3) right
after a later batch inserted its late events, before its other writes and its commit. The job
runs as `python -m shipments stream` subprocesses; for a kill point it runs with a pause there
(``stream_fixtures.install_pause``), so each kill is known to land where it is meant to: the test
waits for the pause, checks the tables and the checkpoint there, then kills the whole process
group (driver, JVM, Python workers) at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from tests.helpers.lake import commit_infos
from tests.stream_fixtures import (  # noqa: F401
    MOTO_ENV,
    PAUSE_AFTER_INSERT,
    PAUSE_AT_SINK_START,
    ROOT,
    event,
    kafka,
    model_tables,
    moto_dynamodb,
    paused_cmd,
    read_rows,
    read_status,
    shipments_cmd,
    stop_process,
    wait_for,
    write_conf,
)

pytestmark = pytest.mark.slow

TOPIC = "status-kill"
TABLE = "shipment-status-test"
LATENESS = dt.timedelta(hours=1)
TIMEOUT = 240  # seconds for one step on a loaded 2-core machine

# A: 30 shipments with 3 events each over 40 minutes of event time (nothing in A is late
# whatever the batch borders), re-deliveries and malformed records.
A1 = [
    event(f"a{s:02d}-{k}", f"K{s:02d}", st, s + 10 * k)
    for s in range(30)
    for k, st in enumerate(("CREATED", "PICKED_UP"))
]
A1 += [event("a05-0", "K05", "CREATED", 5), "{not json", '{"event_id":"x1","shipment_id":"K01","status":"CREATED"}']
A2 = [event(f"a{s:02d}-2", f"K{s:02d}", "IN_TRANSIT", 15 + s) for s in range(30)]  # max event time: minute 44
A2 += [
    event("a00-1", "K00", "PICKED_UP", 10),
    "",
    '{"event_id":"x2","shipment_id":"K02","status":"NOPE","event_time":"2026-11-20T10:00:00Z"}',
]
# B, once all of A is committed: watermark = minute 44 - 1 h = minute -16.
B = [event(f"late-{s}", f"K{s:02d}", "DELIVERED", -20 - s) for s in range(5)]  # late: never applied
B += [event("late-0", "K00", "DELIVERED", -20)]  # a late event delivered twice
B += [event(f"b{s:02d}", f"K{s:02d}", "OUT_FOR_DELIVERY", 44) for s in range(10, 15)]  # newer: applied
B += [event("b20", "K20", "CREATED", -16)]  # at the watermark, but older than K20's status
B += [event("a07-2", "K07", "IN_TRANSIT", 22), "[]"]


def _key(line: str) -> str | None:
    try:
        body = json.loads(line)
    except ValueError:
        return None
    return body.get("shipment_id") if isinstance(body, dict) else None


def _produce(kafka: Any, lines: list[str]) -> dict[int, int]:  # noqa: F811
    """Produce and return the end offset per partition."""
    ends: dict[int, int] = {}
    for partition, offset in kafka.produce(TOPIC, [(_key(line), line) for line in lines]):
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    return ends


def _batches(folder: Path) -> set[int]:
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()} if folder.exists() else set()


def _committed_offsets(checkpoint: Path) -> dict[int, int]:
    commits = _batches(checkpoint / "commits")
    if not commits:
        return {}
    lines = (checkpoint / "offsets" / str(max(commits))).read_text().splitlines()
    return {int(p): int(o) for p, o in json.loads(lines[-1]).get(TOPIC, {}).items()}


def _covers(checkpoint: Path, ends: dict[int, int]) -> bool:
    done = _committed_offsets(checkpoint)
    return all(done.get(p, 0) >= o for p, o in ends.items())


def _rows(spark: SparkSession, table: Path) -> list[dict[str, Any]]:
    return read_rows(spark, table) if (table / "_delta_log").exists() else []


def _group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` runs (zombies waiting to be reaped do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")"
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def _start(cmd: list[str], env: dict[str, str], logs: Path, n: int) -> subprocess.Popen[bytes]:
    with open(logs / f"stream-{n}.log", "wb") as out:
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the driver, its JVM and workers
        )


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the job's whole process group and wait until none of it runs."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    wait_for(lambda: not _group_alive(process.pid), 60, f"process group {process.pid} to end")


def _await_pause(process: subprocess.Popen[bytes], marker: Path, logs: Path, n: int) -> dict[str, Any]:
    """Wait until run ``n`` reached its pause point; the point and the batch id it paused in."""

    def paused() -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"stream run {n} exited {process.returncode} without reaching its kill point: "
                f"{(logs / f'stream-{n}.log').read_text()[-2000:]}"
            )
        return marker.exists()

    wait_for(paused, TIMEOUT, f"run {n} to reach its kill point", interval=0.05)
    return dict(json.loads(marker.read_text()))


def test_sigkill_and_restart_give_the_tables_of_an_uninterrupted_run(
    spark: SparkSession,
    kafka: Any,  # noqa: F811
    moto_dynamodb: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    lake, checkpoint, logs = tmp_path / "lake", tmp_path / "checkpoint", tmp_path / "logs"
    logs.mkdir()
    kafka.create_topic(TOPIC, partitions=2)
    dynamodb = moto_dynamodb.client()
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "shipment_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "shipment_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    conf = write_conf(
        tmp_path / "stream.yaml",
        lake,
        {
            "trigger_interval": "1 second",
            "state_partitions": 2,
            "dynamodb": {"table": TABLE, "region": moto_dynamodb.region, "endpoint_url": moto_dynamodb.endpoint_url},
        },
    )
    args = ("stream", "--source", "kafka", "--bootstrap-servers", kafka.bootstrap_servers, "--topic", TOPIC)
    args += ("--checkpoint", str(checkpoint))
    cmd = shipments_cmd(conf, *args)
    env = {**os.environ, **MOTO_ENV}
    status_table, late_table, dlq_table = (
        lake / name for name in ("shipment_status", "shipment_status_late", "shipment_status_dlq")
    )

    def paused_run(n: int, point: str) -> tuple[subprocess.Popen[bytes], Path]:
        """Run ``n`` of the job, made to stop for good at ``point``."""
        marker = tmp_path / f"paused-{n}"
        return _start(paused_cmd(marker, point, conf, *args), env, logs, n), marker

    ends_a1 = _produce(kafka, A1)
    # 1: killed at the start of its first micro-batch, before the batch wrote anything.
    run1, marker = paused_run(1, PAUSE_AT_SINK_START)
    try:
        assert _await_pause(run1, marker, logs, 1) == {"point": PAUSE_AT_SINK_START, "batch_id": 0}
        assert _batches(checkpoint / "offsets") == {0} and not _batches(checkpoint / "commits")
        assert not (_rows(spark, status_table) or _rows(spark, late_table) or _rows(spark, dlq_table))
    finally:
        _kill(run1)
    assert not _batches(checkpoint / "commits")

    # 2: the restart replays batch 0; killed right after it inserted its dead letters, before its
    # status MERGE and its commit.
    dlq_point = PAUSE_AFTER_INSERT + "shipment_status_dlq"
    run2, marker = paused_run(2, dlq_point)
    try:
        assert _await_pause(run2, marker, logs, 2) == {"point": dlq_point, "batch_id": 0}
        assert not _batches(checkpoint / "commits")
        assert sorted(r["raw_value"] for r in _rows(spark, dlq_table)) == sorted(
            line for line in A1 if model_tables([[line]], LATENESS).dlq_values
        )
        assert not _rows(spark, status_table), "the kill landed before the batch's status MERGE"
    finally:
        _kill(run2)
    assert not _batches(checkpoint / "commits")

    # 3: runs A to the end, then is killed right after the batch reading B's late events inserted
    # them, before its status MERGE and its commit.
    late_point = PAUSE_AFTER_INSERT + "shipment_status_late"
    run3, marker = paused_run(3, late_point)

    def running_and(condition: Any) -> Any:
        def check() -> bool:
            assert run3.poll() is None, (
                f"stream run 3 exited {run3.returncode}: {(logs / 'stream-3.log').read_text()[-2000:]}"
            )
            assert not marker.exists(), f"run 3 paused before B was produced: {marker.read_text()}"
            return bool(condition())

        return check

    try:
        wait_for(running_and(lambda: _covers(checkpoint, ends_a1)), TIMEOUT, "A1 committed")
        ends_a2 = _produce(kafka, A2)
        wait_for(running_and(lambda: _covers(checkpoint, ends_a2)), TIMEOUT, "A2 committed")
        committed_before_b = max(_batches(checkpoint / "commits"))
        _produce(kafka, B)
        paused_in = _await_pause(run3, marker, logs, 3)
        assert paused_in["point"] == late_point and paused_in["batch_id"] > committed_before_b
        assert paused_in["batch_id"] not in _batches(checkpoint / "commits")
        stored_late = {r["event_id"]: r["batch_id"] for r in _rows(spark, late_table)}
        assert stored_late and set(stored_late.values()) == {paused_in["batch_id"]}
        assert set(stored_late) <= {f"late-{s}" for s in range(5)}
        assert paused_in["batch_id"] not in {r["batch_id"] for r in _rows(spark, status_table)}, (
            "the kill landed before the batch's status MERGE"
        )
    finally:
        _kill(run3)
    assert paused_in["batch_id"] not in _batches(checkpoint / "commits")

    # 4: drains what is left and stops.
    committed_before_4 = _batches(checkpoint / "commits")
    finished = subprocess.run(
        [*cmd, "--available-now"], env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert finished.returncode == 0, finished.stderr[-3000:]

    expected = model_tables([A1 + A2, B], LATENESS)
    assert len(expected.status) == 30 and len(expected.late_event_ids) == 5 and len(expected.dlq_values) == 5
    assert read_status(spark, lake) == expected.status

    late = read_rows(spark, lake / "shipment_status_late")
    assert sorted(r["event_id"] for r in late) == expected.late_event_ids, "no late row lost or written twice"
    dlq = read_rows(spark, lake / "shipment_status_dlq")
    assert sorted(r["raw_value"] or "" for r in dlq) == sorted(expected.dlq_values), (
        "no dead letter lost or written twice"
    )
    assert len({(r["source_partition"], r["source_offset"]) for r in dlq}) == len(dlq)
    # ... and written by delta-rs on the driver throughout: no run fell back to Spark's MERGE
    for table in ("shipment_status", "shipment_status_late", "shipment_status_dlq"):
        engines = {info["engineInfo"].split(":")[0] for info in commit_infos(lake / table, "MERGE")}
        assert engines == {"delta-rs"}, (table, engines)

    # Metrics: at most once per batch whatever was killed and replayed (a SIGKILL may lose those
    # still queued for publication), all of the last run's batches (a clean stop publishes
    # them), under the run id <query id>:<batch id> (the query id is kept in the checkpoint).
    query_id = json.loads((checkpoint / "metadata").read_text())["id"]
    metrics = read_rows(spark, lake / "pipeline_metrics")
    rows_read = sorted((r["batch_id"], r["run_id"]) for r in metrics if r["metric"] == "rows_read")
    published = [batch_id for batch_id, _ in rows_read]
    assert len(published) == len(set(published)), "no batch's metrics published twice"
    assert all(run_id == f"{query_id}:{batch_id}" for batch_id, run_id in rows_read)
    assert set(published) <= _batches(checkpoint / "commits")
    assert _batches(checkpoint / "commits") - committed_before_4 <= set(published)
    checks = [(r["run_id"], r["check_name"]) for r in read_rows(spark, lake / "dq_results")]
    assert len(checks) == len(set(checks)), "no check recorded twice for a batch"

    items = dynamodb.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    served = {i["shipment_id"]["S"]: (i["status"]["S"], i["event_time"]["S"], i["event_id"]["S"]) for i in items}
    assert served == {
        sid: (status, when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), eid)
        for sid, (status, when, eid) in expected.status.items()
    }

    # `shipments status` reads the configured store (DynamoDB here, no Spark needed).
    shown = subprocess.run(
        shipments_cmd(conf, "status", "K12"), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "OUT_FOR_DELIVERY"
    unknown = subprocess.run(
        shipments_cmd(conf, "status", "NOPE"), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert unknown.returncode == 4
