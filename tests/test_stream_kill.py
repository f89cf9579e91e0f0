"""SIGKILL the continuous job at several points, restart it from its checkpoint, and check that
the tables (and the DynamoDB serving table) hold exactly what an uninterrupted run gives.

Kill points: (1) in the middle of the first micro-batch, (2) right after a batch appended to the
dead-letter table, before it was committed, (3) right after a batch appended to the late table,
before it was committed. The job runs as `python -m shipments stream` subprocesses.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from tests.stream_fixtures import (  # noqa: F401
    MOTO_ENV,
    event,
    kafka,
    model_tables,
    moto_dynamodb,
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


def _in_flight(checkpoint: Path) -> bool:
    """A batch whose offsets are logged but which is not committed yet."""
    return bool(_batches(checkpoint / "offsets") - _batches(checkpoint / "commits"))


def _committed_offsets(checkpoint: Path) -> dict[int, int]:
    commits = _batches(checkpoint / "commits")
    if not commits:
        return {}
    lines = (checkpoint / "offsets" / str(max(commits))).read_text().splitlines()
    return {int(p): int(o) for p, o in json.loads(lines[-1]).get(TOPIC, {}).items()}


def _covers(checkpoint: Path, ends: dict[int, int]) -> bool:
    done = _committed_offsets(checkpoint)
    return all(done.get(p, 0) >= o for p, o in ends.items())


def _delta_versions(table: Path) -> int:
    log = table / "_delta_log"
    return len(list(log.glob("*.json"))) if log.exists() else 0


def _start(cmd: list[str], env: dict[str, str], logs: Path, n: int) -> subprocess.Popen[bytes]:
    with open(logs / f"stream-{n}.log", "wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _kill_when(process: subprocess.Popen[bytes], condition: Any, what: str, logs: Path, n: int) -> None:
    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"stream run {n} exited {process.returncode}: {(logs / f'stream-{n}.log').read_text()[-2000:]}"
            )
        return bool(condition())

    try:
        wait_for(ready, TIMEOUT, what, interval=0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        stop_process(process)


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
    cmd = shipments_cmd(
        conf,
        "stream",
        "--source",
        "kafka",
        "--bootstrap-servers",
        kafka.bootstrap_servers,
        "--topic",
        TOPIC,
        "--checkpoint",
        str(checkpoint),
    )
    env = {**os.environ, **MOTO_ENV, "PYSPARK_PYTHON": sys.executable}

    ends_a1 = _produce(kafka, A1)
    # 1: killed in the middle of its first micro-batch.
    _kill_when(_start(cmd, env, logs, 1), lambda: _in_flight(checkpoint), "a batch in flight", logs, 1)
    assert not _batches(checkpoint / "commits")

    # 2: killed right after the replayed batch appended its dead letters, before its commit.
    dlq_versions = _delta_versions(lake / "shipment_status_dlq")
    # (or, if run 1 got as far as that append, its commit: the replay then skips the append)
    _kill_when(
        _start(cmd, env, logs, 2),
        lambda: _delta_versions(lake / "shipment_status_dlq") > dlq_versions or _batches(checkpoint / "commits"),
        "a DLQ append",
        logs,
        2,
    )

    # 3: runs A to the end, then is killed right after a batch of B appended its late events.
    run3 = _start(cmd, env, logs, 3)

    def running_and(condition: Any) -> Any:
        def check() -> bool:
            assert run3.poll() is None, (
                f"stream run 3 exited {run3.returncode}: {(logs / 'stream-3.log').read_text()[-2000:]}"
            )
            return bool(condition())

        return check

    try:
        wait_for(running_and(lambda: _covers(checkpoint, ends_a1)), TIMEOUT, "A1 committed")
        ends_a2 = _produce(kafka, A2)
        wait_for(running_and(lambda: _covers(checkpoint, ends_a2)), TIMEOUT, "A2 committed")
        late_versions = _delta_versions(lake / "shipment_status_late")
        _produce(kafka, B)
        committed_before_b = max(_batches(checkpoint / "commits"))
        _kill_when(
            run3,
            lambda: (
                _delta_versions(lake / "shipment_status_late") > late_versions
                or max(_batches(checkpoint / "commits")) > committed_before_b + 1
            ),
            "a late append",
            logs,
            3,
        )
    finally:
        stop_process(run3)

    # 4: drains what is left and stops.
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
