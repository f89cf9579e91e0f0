"""The Airflow DAGs load with Airflow's own DagBag (in build/airflow-venv, made by `make setup`,
so Airflow's pins never touch the job's venv): no import errors, the expected tasks, retries and
deadlines, and every date's command parses with the project's own parser."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shipments.cli import build_parser
from tests.cloud_fixtures import ROOT

pytestmark = pytest.mark.slow

AIRFLOW_PYTHON = ROOT / "build" / "airflow-venv" / "bin" / "python"
SHIP_DATE = "{{ macros.ds_add(ds, -1) }}"

# Runs inside the Airflow venv: load the folder, describe every task as JSON.
LOADER = """
import json, sys
from airflow.models import DagBag
from airflow.serialization.serialized_objects import DagSerialization
bag = DagBag(dag_folder=sys.argv[1])
out = {"import_errors": {k: str(v)[-2000:] for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    DagSerialization.to_dict(dag)  # what the scheduler stores: must not fail
    out["dags"][dag_id] = {
        "schedule": str(dag.schedule),
        "max_active_runs": dag.max_active_runs,
        "deadline": [str(d.interval) for d in (dag.deadline if isinstance(dag.deadline, list) else [dag.deadline])
                     if d is not None],
        "tasks": {
            t.task_id: {
                "type": type(t).__name__,
                "retries": t.retries,
                "execution_timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                "upstream": sorted(t.upstream_task_ids),
                "steps": getattr(t, "steps", None),
                "script_args": getattr(t, "script_args", None),
                "job_name": getattr(t, "job_name", None),
            }
            for t in dag.tasks
        },
    }
print(json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def dags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    assert AIRFLOW_PYTHON.exists(), f"{AIRFLOW_PYTHON} is missing: run `make setup` (it builds the Airflow venv)"
    home = tmp_path_factory.mktemp("airflow-home")
    env = {"AIRFLOW_HOME": str(home), "PATH": "/usr/bin:/bin", "AIRFLOW__CORE__LOAD_EXAMPLES": "false"}
    done = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", LOADER, str(ROOT / "dags")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def _shipments_args(args: list[str], day: str) -> Any:
    entry = next(i for i, a in enumerate(args) if a.endswith("/jobs/emr_main.py"))
    return build_parser().parse_args([day if a == SHIP_DATE else a for a in args[entry + 1 :]])


def test_dags_load_without_import_errors(dags: dict[str, Any]) -> None:
    assert dags["import_errors"] == {}
    assert set(dags["dags"]) == {"shipments_daily_emr", "shipments_daily_glue"}


def test_emr_dag_submits_one_step_per_date_and_waits_for_it(dags: dict[str, Any]) -> None:
    dag = dags["dags"]["shipments_daily_emr"]
    assert dag["max_active_runs"] == 1, "one writer at a time unless the DynamoDB LogStore is configured"
    assert dag["deadline"] == ["4:00:00"] and dag["schedule"] == "30 2 * * *"
    tasks = dag["tasks"]
    assert {k: v["type"] for k, v in tasks.items()} == {"submit": "EmrAddStepsOperator", "publish": "EmrStepSensor"}
    assert tasks["publish"]["upstream"] == ["submit"]
    assert tasks["publish"]["execution_timeout"] == 4 * 3600
    assert all(t["retries"] == 2 for t in tasks.values())
    (step,) = tasks["submit"]["steps"]
    assert step["Name"] == f"shipments daily {SHIP_DATE}"
    parsed = _shipments_args(step["HadoopJarStep"]["Args"], "2026-11-02")
    assert parsed.command == "daily" and parsed.date == dt.date(2026, 11, 2) and parsed.conf == "emr.yaml"


def test_glue_dag_runs_the_deployed_job_per_date(dags: dict[str, Any]) -> None:
    dag = dags["dags"]["shipments_daily_glue"]
    assert (dag["schedule"], dag["max_active_runs"], dag["deadline"]) == ("30 2 * * *", 1, ["4:00:00"])
    (task,) = dag["tasks"].values()
    assert task["type"] == "GlueJobOperator" and task["job_name"] == "shipments-daily" and task["retries"] == 2
    assert task["execution_timeout"] == 4 * 3600
    command = task["script_args"]["--shipments_args"].replace(SHIP_DATE, "2026-11-02").split()
    parsed = build_parser().parse_args(command)
    assert parsed.command == "daily" and parsed.date == dt.date(2026, 11, 2) and parsed.conf == "glue.yaml"


def test_airflow_is_not_in_the_job_venv() -> None:
    import importlib.util

    assert importlib.util.find_spec("airflow") is None
    assert Path(AIRFLOW_PYTHON).resolve().parent.parent != (ROOT / ".venv").resolve()
