"""Airflow DAGs for the daily job: one run (and one task chain) per date, on EMR or on Glue.

Targets Airflow 3 (tested with 3.3.2 and apache-airflow-providers-amazon 9.39.0; MWAA's 3.x
environments): ``DeadlineAlert`` and the ``airflow.sdk`` imports do not exist in Airflow 2.

- ``shipments_daily_emr``: ``submit`` adds a step to the cluster (``EmrAddStepsOperator``),
  ``publish`` waits for it (``EmrStepSensor``); when it succeeds, the day's partition is
  published. ``shipments_daily_glue``: one ``GlueJobOperator`` task that runs and waits.
- The run triggered at T processes ship date T - 1 day (UTC). A backfill is Airflow's own:
  ``airflow backfill create --dag-id shipments_daily_emr --from-date ... --to-date ...``, or
  clear the runs of those 30 days; every date reruns the same idempotent command.
- Retries on every task; the publish task has an execution timeout, and the DAG a deadline
  (an alert when a run is not done within ``PUBLISH_DEADLINE`` of being queued).
- ``max_active_runs`` is the number of dates written at once, i.e. Spark drivers writing the
  same Delta tables: keep it at 1 unless every writer uses Delta's DynamoDB LogStore
  (``SHIPMENTS_MAX_ACTIVE_RUNS``, default 1).

Airflow Variables (read when a task runs, not when the file is parsed): ``shipments_artifacts``
(``s3://bucket/shipments/<version>`` as ``shipments deploy`` uploaded it), ``shipments_venv``
(the venv archive's file name), ``shipments_emr_cluster_id``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator
from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor
from airflow.sdk import DAG
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference, SyncCallback

SHIP_DATE = "{{ macros.ds_add(ds, -1) }}"  # the UTC day before the run's logical date
ARTIFACTS = "{{ var.value.shipments_artifacts }}"
PUBLISH_DEADLINE = dt.timedelta(hours=4)
MAX_ACTIVE_RUNS = int(os.environ.get("SHIPMENTS_MAX_ACTIVE_RUNS", "1"))
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "data-engineering",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=10),
    "retry_exponential_backoff": True,
}


def deadline_missed(**context: Any) -> None:
    """The deadline alert: a log line at ERROR (route it to your alerting)."""
    logging.getLogger("shipments.deadline").error("shipments daily run missed its deadline: %s", context)


def _deadline() -> DeadlineAlert:
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=PUBLISH_DEADLINE,
        callback=SyncCallback(deadline_missed),
    )


def daily_step() -> dict[str, Any]:
    """The EMR step of one date: the same shape ``shipments deploy`` adds (spark-submit, cluster mode)."""
    return {
        "Name": f"shipments daily {SHIP_DATE}",
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": [
                "spark-submit",
                "--deploy-mode",
                "cluster",
                "--files",
                f"{ARTIFACTS}/conf/base.yaml,{ARTIFACTS}/conf/emr.yaml",
                "--conf",
                "spark.yarn.maxAppAttempts=1",
                "--conf",
                f"spark.archives={ARTIFACTS}/{{{{ var.value.shipments_venv }}}}#environment",
                "--conf",
                "spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python",
                "--conf",
                "spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python",
                f"{ARTIFACTS}/jobs/emr_main.py",
                "daily",
                "--conf",
                "emr.yaml",
                "--date",
                SHIP_DATE,
            ],
        },
    }


def _daily_dag(dag_id: str, description: str, max_active_runs: int) -> DAG:
    """A daily DAG as both platforms run it: 02:30 UTC, no catch-up, retries and the deadline."""
    return DAG(
        dag_id=dag_id,
        description=description,
        schedule="30 2 * * *",
        start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        catchup=False,
        max_active_runs=max_active_runs,
        default_args=DEFAULT_ARGS,
        deadline=_deadline(),
        tags=["shipments"],
    )


with _daily_dag("shipments_daily_emr", "shipments daily job on EMR: one step per date", MAX_ACTIVE_RUNS) as emr_dag:
    submit = EmrAddStepsOperator(
        task_id="submit",
        job_flow_id="{{ var.value.shipments_emr_cluster_id }}",
        steps=[daily_step()],
        wait_for_completion=False,
    )
    publish = EmrStepSensor(
        task_id="publish",
        job_flow_id="{{ var.value.shipments_emr_cluster_id }}",
        step_id="{{ task_instance.xcom_pull(task_ids='submit')[0] }}",
        poke_interval=60,
        timeout=int(PUBLISH_DEADLINE.total_seconds()),
        execution_timeout=PUBLISH_DEADLINE,
        mode="reschedule",
    )
    submit >> publish


# max_active_runs 1: the Glue job runs one at a time (MaxConcurrentRuns 1) anyway
with _daily_dag("shipments_daily_glue", "shipments daily job on Glue 5.1: one job run per date", 1) as glue_dag:
    GlueJobOperator(
        task_id="publish",
        job_name="shipments-daily",
        script_args={"--shipments_args": f"daily --conf glue.yaml --date {SHIP_DATE}"},
        wait_for_completion=True,
        execution_timeout=PUBLISH_DEADLINE,
    )
