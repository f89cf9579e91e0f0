"""What each job receives, per platform: pure functions of the config and the uploaded artifacts.

Every job ends in the same command line as the ``shipments`` console script (``daily --date D``,
``backfill --start --end``, ``stream --available-now``, ``scheduled --time T``), so the
project's own parser checks what a step, a job run or a Glue job will be given.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shlex
from typing import Any

from shipments.config import Config
from shipments.errors import ConfigError
from shipments.spark_settings import DELTA_SETTINGS, REQUIRED_SETTINGS

# EventBridge Scheduler replaces this with the fire time (ISO-8601, UTC) in a target's input.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
# EMR 7.x / EMR Serverless ship Delta here (the delta-defaults classification uses the same).
EMR_DELTA_JARS = "/usr/share/aws/delta/lib/delta-spark.jar,/usr/share/aws/delta/lib/delta-storage.jar"
LOG_STORE = "io.delta.storage.S3DynamoDBLogStore"
# What build_spark applies to every session, given to the platform's job too.
SESSION_SETTINGS = {**DELTA_SETTINGS, **REQUIRED_SETTINGS}


@dataclasses.dataclass(frozen=True)
class Artifacts:
    """Where one version's files were uploaded: ``<deploy.artifacts>/<version>/...``."""

    prefix: str  # s3://bucket/prefix/<version>
    version: str
    wheel: str  # file names inside the prefix
    venv: str
    conf_files: tuple[str, ...]  # the job's config file and the ones it extends, by name

    def uri(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    @property
    def conf_name(self) -> str:
        """The config file the jobs load (the first of ``conf_files``)."""
        return self.conf_files[0]


@dataclasses.dataclass(frozen=True)
class JobCommand:
    """One run of the project: a name for people and the ``shipments`` arguments."""

    name: str
    args: tuple[str, ...]


def _paths(config: Config) -> list[str]:
    return ["--raw", config.raw, "--lake", config.lake]


def daily_command(config: Config, artifacts: Artifacts, day: dt.date) -> JobCommand:
    return JobCommand(
        f"shipments daily {day}", ("daily", "--conf", artifacts.conf_name, *_paths(config), "--date", day.isoformat())
    )


def scheduled_command(config: Config, artifacts: Artifacts) -> JobCommand:
    """The daily job as a schedule starts it: ship date = the UTC day before the fire time."""
    return JobCommand(
        "shipments daily (scheduled)",
        ("scheduled", "--conf", artifacts.conf_name, *_paths(config), "--time", SCHEDULED_TIME),
    )


def backfill_command(
    config: Config, artifacts: Artifacts, start: dt.date, end: dt.date, parallelism: int
) -> JobCommand:
    name = f"shipments backfill {start}" if start == end else f"shipments backfill {start}..{end}"
    args = ("backfill", "--conf", artifacts.conf_name, *_paths(config), "--start", start.isoformat())
    return JobCommand(name, (*args, "--end", end.isoformat(), "--parallelism", str(parallelism)))


def stream_command(config: Config, artifacts: Artifacts) -> JobCommand:
    """The status stream over event files, one ``--available-now`` pass per scheduled run."""
    events = config.deploy.stream_input or f"{config.raw.rstrip('/')}/events"
    if not config.stream.checkpoint:
        raise ConfigError("stream.checkpoint is required to deploy the stream (an s3:// folder)")
    args = ("stream", "--conf", artifacts.conf_name, *_paths(config), "--source", "files", "--input", events)
    return JobCommand("shipments stream", (*args, "--checkpoint", config.stream.checkpoint, "--available-now"))


def log_store_settings(config: Config) -> dict[str, str]:
    """Delta's DynamoDB-backed LogStore for ``s3://`` and ``s3a://`` (empty when not configured).

    Needed as soon as two drivers may write one table: steps running at once, a backfill beside
    the scheduled daily run. The jar ships with EMR; Glue 5.1 loads it with ``--datalake-formats
    delta``. ``s3a://`` is configured too: a scheme not covered falls back to the single-driver store.
    """
    table = config.deploy.delta_log_table
    if not table:
        return {}
    ddb = "spark.io.delta.storage.S3DynamoDBLogStore.ddb"
    return {
        "spark.delta.logStore.s3.impl": LOG_STORE,
        "spark.delta.logStore.s3a.impl": LOG_STORE,
        f"{ddb}.tableName": table,
        f"{ddb}.region": config.deploy.region,
    }


def _confs(settings: dict[str, str]) -> list[str]:
    return [item for key, value in settings.items() for item in ("--conf", f"{key}={value}")]


def _python_env(prefix: str) -> dict[str, str]:
    """The job's Python: the packed venv (``#environment``) on the driver and the executors."""
    return {
        f"{prefix}PYSPARK_PYTHON": "./environment/bin/python",
        "spark.executorEnv.PYSPARK_PYTHON": "./environment/bin/python",
    }


def emr_step(config: Config, artifacts: Artifacts, command: JobCommand) -> dict[str, Any]:
    """An EMR step (``add_job_flow_steps`` shape) running ``command`` with spark-submit in cluster mode."""
    settings = {
        # a retried attempt would record the run twice; rerun the step instead
        "spark.yarn.maxAppAttempts": "1",
        "spark.archives": f"{artifacts.uri(artifacts.venv)}#environment",
        **_python_env("spark.yarn.appMasterEnv."),
        **log_store_settings(config),
    }
    conf_uris = ",".join(artifacts.uri(f"conf/{name}") for name in artifacts.conf_files)
    submit = ["spark-submit", "--deploy-mode", "cluster", "--files", conf_uris, *_confs(settings)]
    return {
        "Name": command.name,
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": [*submit, artifacts.uri("jobs/emr_main.py"), *command.args],
        },
    }


def emr_serverless_job(config: Config, artifacts: Artifacts, command: JobCommand) -> dict[str, Any]:
    """``start_job_run``'s ``jobDriver`` for ``command`` (the venv archive and EMR's Delta jars)."""
    settings = {
        "spark.archives": f"{artifacts.uri(artifacts.venv)}#environment",
        # as AWS documents for a packed venv on EMR Serverless: driver, its Python, the executors
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": "./environment/bin/python",
        **_python_env("spark.emr-serverless.driverEnv."),
        "spark.jars": EMR_DELTA_JARS,
        **SESSION_SETTINGS,
        **log_store_settings(config),
    }
    files = ",".join(artifacts.uri(f"conf/{name}") for name in artifacts.conf_files)
    return {
        "sparkSubmit": {
            "entryPoint": artifacts.uri("jobs/emr_main.py"),
            "entryPointArguments": list(command.args),
            "sparkSubmitParameters": " ".join(["--files", files, *_confs(settings)]),
        }
    }


GLUE_ARGS_KEY = "--shipments_args"


def glue_job(config: Config, artifacts: Artifacts, name: str, command: JobCommand) -> dict[str, Any]:
    """A Glue 5.1 job definition (``create_job`` shape, without the name) running ``command``.

    The script (``jobs/glue_main.py``) hands ``--shipments_args`` to the command line; a
    schedule overrides it per run (the scheduled daily run passes its fire time).
    """
    if not config.deploy.glue_role:
        raise ConfigError("deploy.glue_role is required for --target glue (the job role's ARN)")
    spark_conf = " --conf ".join(f"{k}={v}" for k, v in {**SESSION_SETTINGS, **log_store_settings(config)}.items())
    return {
        "Description": f"{command.name} ({artifacts.version})",
        "Role": config.deploy.glue_role,
        "GlueVersion": "5.1",
        "WorkerType": config.deploy.glue_worker_type,
        "NumberOfWorkers": config.deploy.glue_workers,
        "Command": {"Name": "glueetl", "ScriptLocation": artifacts.uri("jobs/glue_main.py"), "PythonVersion": "3"},
        "DefaultArguments": {
            "--datalake-formats": "delta",
            "--conf": spark_conf,
            "--additional-python-modules": artifacts.uri(artifacts.wheel),
            "--extra-files": ",".join(artifacts.uri(f"conf/{n}") for n in artifacts.conf_files),
            # bookmarks do not support Delta; the pipeline_runs ledger plays that part
            "--job-bookmark-option": "job-bookmark-disable",
            "--enable-metrics": "true",
            GLUE_ARGS_KEY: shlex.join(command.args),
        },
        # one run at a time: a backfill and the scheduled run never write the tables together
        "ExecutionProperty": {"MaxConcurrentRuns": 1},
        "MaxRetries": 0,
        "Timeout": 120,
        "Tags": {"project": "shipments"},
    }
