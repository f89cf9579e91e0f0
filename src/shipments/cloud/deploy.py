"""``shipments deploy --target emr|emr-serverless|glue [--dry-run]``.

1. Uploads the output of ``make package`` (wheel, venv archive, entry scripts) and the config
   (the ``--conf`` file and the files it extends) under ``<deploy.artifacts>/<version>/``;
   an object whose SHA-256 already matches is left alone.
2. Per target: EMR: adds the requested daily / backfill steps to the running cluster named
   ``deploy.emr_cluster_name``; EMR Serverless: finds or creates the application and starts the
   requested job runs; Glue 5.1: creates or updates the jobs ``shipments-daily`` and
   ``shipments-stream`` and starts the requested runs.
3. Creates or updates two EventBridge Scheduler schedules: the daily job (``scheduled --time
   <fire time>``: the UTC day before) and the status stream (``--available-now``).

Idempotent: every step compares what exists with what is wanted and changes only the
difference, so a second deploy of the same version with the same flags makes no change. A dry
run makes the same reads and prints every call, changing nothing.

Multi-writer safety: on S3, Delta tables need the DynamoDB-backed LogStore as soon as two
drivers may write one table. Deploy refuses a setup where that can happen without
``deploy.delta_log_table``: an EMR cluster running several steps at once, or explicit runs
on EMR Serverless beside the scheduled one. Glue jobs run one at a time (``MaxConcurrentRuns``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from shipments.cloud import jobs
from shipments.cloud.aws import Aws, Call, CloudError, Recorded, error_text, is_not_found, s3_uri, split_s3
from shipments.config import Config
from shipments.errors import ConfigError, InputError

TARGETS = ("emr", "emr-serverless", "glue")
ACTIVE_CLUSTER = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"]
LIVE_STEP = ["PENDING", "RUNNING", "COMPLETED"]
DEAD_RUN = {"FAILED", "CANCELLED", "CANCELLING", "ERROR", "STOPPED", "STOPPING", "TIMEOUT"}
TAGS = {"project": "shipments"}


@dataclasses.dataclass(frozen=True)
class DeployRequest:
    """``shipments deploy``'s flags, checked."""

    target: str
    conf_file: Path
    dist: Path
    dry_run: bool = False
    dates: tuple[dt.date, ...] = ()
    backfill: tuple[dt.date, dt.date] | None = None
    parallelism: int = 1
    cluster_id: str = ""

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"--target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.backfill and self.backfill[1] < self.backfill[0]:
            raise ConfigError(f"--backfill-end {self.backfill[1]} is before --backfill-start {self.backfill[0]}")


@dataclasses.dataclass
class DeployResult(Recorded):
    """What a deploy did (or, dry, would do): every call, and which of them change something."""

    target: str
    version: str
    dry_run: bool
    calls: list[Call]

    def summary(self) -> str:
        verb = "would make" if self.dry_run else "made"
        head = f"deploy {self.target} {self.version}: {verb} {len(self.changes)} change(s)"
        if not self.changes:
            head += " (everything is up to date)"
        return "\n".join([head, *self.call_lines()])


def run_deploy(spark: object, config: Config, request: DeployRequest) -> DeployResult:
    """Deploy to ``request.target`` (no Spark: ``spark`` is None).

    Raises:
        ConfigError: a deploy setting is missing or unsafe (multi-driver writes without the log store).
        InputError: ``make package`` has not been run.
        CloudError: an AWS call failed.
    """
    deploy = config.deploy
    if not deploy.artifacts:
        raise ConfigError(f"deploy.artifacts is not set in {request.conf_file} (an s3://bucket/prefix for the wheel)")
    for name, path in (("paths.raw", config.raw), ("paths.lake", config.lake)):
        if not path.startswith(("s3://", "s3a://")):
            raise ConfigError(f"{name} must be on S3 to deploy, got {path!r}")
    aws = Aws(deploy.region, dry_run=request.dry_run)
    # Checks that may refuse come before the first change.
    cluster = _cluster(aws, config, request) if request.target == "emr" else {}
    if cluster:
        concurrency = int(cluster.get("StepConcurrencyLevel", 1))
        require_log_store(config, concurrency, f"EMR cluster {cluster['Id']} runs {concurrency} steps at once")
    if request.target == "emr-serverless":
        runs = len(request.dates) + (1 if request.backfill else 0)
        # Each job run is its own driver, and the scheduled daily run may start beside them.
        require_log_store(config, runs + 1 if runs else 1, "job runs beside the scheduled daily run")
    artifacts = upload_artifacts(aws, config, request)
    if request.target == "emr":
        _deploy_emr(aws, config, request, artifacts, cluster)
    elif request.target == "emr-serverless":
        _deploy_emr_serverless(aws, config, request, artifacts)
    else:
        _deploy_glue(aws, config, request, artifacts)
    return DeployResult(request.target, artifacts.version, request.dry_run, aws.calls)


# --------------------------------------------------------------------------- artifacts


def config_chain(conf_file: Path) -> list[Path]:
    """The config file and the files it extends, which must sit beside it (jobs get them flat).

    Raises:
        ConfigError: a file extends one in another folder.
    """
    chain = [conf_file.resolve()]
    while True:
        data = yaml.safe_load(chain[-1].read_text()) or {}
        parent = data.get("extends") if isinstance(data, dict) else None
        if parent is None:
            return chain
        if "/" in str(parent):
            raise ConfigError(f"{chain[-1].name} extends {parent!r}: to deploy, extend a file in the same folder")
        chain.append(chain[-1].parent / str(parent))


def upload_artifacts(aws: Aws, config: Config, request: DeployRequest) -> jobs.Artifacts:
    """Upload ``dist/`` and the config chain under ``<artifacts>/<version>/``; unchanged objects stay."""
    manifest_path = request.dist / "manifest.json"
    if not manifest_path.is_file():
        raise InputError(f"{manifest_path} does not exist: run `make package` first")
    manifest = json.loads(manifest_path.read_text())
    version = str(manifest["version"])
    venvs = [name for name in manifest["files"] if name.endswith("-venv.tar.gz")]
    if not venvs and request.target in ("emr", "emr-serverless"):
        raise InputError(f"{request.dist} has no venv archive: run `make package` (not --no-venv) for EMR")
    chain = config_chain(request.conf_file)
    prefix = f"{s3_uri(config.deploy.artifacts)}/{version}"
    files = {name: request.dist / name for name in manifest["files"] if not name.startswith("conf/")}
    files.update({f"conf/{path.name}": path for path in chain})
    bucket, key_prefix = split_s3(prefix)
    for name, path in sorted(files.items()):
        _put_if_changed(aws, bucket, f"{key_prefix}/{name}", path)
    return jobs.Artifacts(
        prefix, version, str(manifest["wheel"]), venvs[0] if venvs else "", tuple(p.name for p in chain)
    )


def _put_if_changed(aws: Aws, bucket: str, key: str, path: Path) -> None:
    body = path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    head = aws.find("s3", "head_object", Bucket=bucket, Key=key)
    if head is not None and head.get("Metadata", {}).get("sha256") == digest:
        return
    # Recorded with the body's size, sent with the body itself.
    aws.calls.append(Call("s3", "put_object", {"Bucket": bucket, "Key": key, "Body": f"<{len(body)} bytes>"}, True))
    if not aws.dry_run:
        try:
            aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body, Metadata={"sha256": digest})
        except Exception as exc:
            raise CloudError(f"s3.put_object s3://{bucket}/{key} failed: {error_text(exc)}") from exc


# --------------------------------------------------------------------------- multi-writer safety


def require_log_store(config: Config, drivers: int, why: str) -> None:
    """Refuse ``drivers`` > 1 Spark drivers writing the lake on S3 without the DynamoDB LogStore.

    Raises:
        ConfigError: more than one driver may write, the lake is on S3 and no log store is set.
    """
    on_s3 = config.lake.startswith(("s3://", "s3a://"))
    if drivers > 1 and on_s3 and not config.deploy.delta_log_table:
        raise ConfigError(
            f"{why}: {drivers} Spark drivers could write the same Delta tables on S3 at once, which is only "
            "safe with Delta's DynamoDB LogStore; set deploy.delta_log_table (and create that table), "
            "or run one driver at a time"
        )


# --------------------------------------------------------------------------- EMR on EC2


def _cluster(aws: Aws, config: Config, request: DeployRequest) -> dict[str, Any]:
    if request.cluster_id:
        return dict(aws.read("emr", "describe_cluster", ClusterId=request.cluster_id)["Cluster"])
    name = config.deploy.emr_cluster_name
    found = aws.read("emr", "list_clusters", ClusterStates=ACTIVE_CLUSTER).get("Clusters", [])
    ids = [c["Id"] for c in found if c["Name"] == name]
    if len(ids) != 1:
        raise ConfigError(
            f"expected one active EMR cluster named {name!r}, found {len(ids)}: create it (README) or pass --cluster-id"
        )
    return dict(aws.read("emr", "describe_cluster", ClusterId=ids[0])["Cluster"])


def _deploy_emr(
    aws: Aws, config: Config, request: DeployRequest, artifacts: jobs.Artifacts, cluster: dict[str, Any]
) -> None:
    concurrency = int(cluster.get("StepConcurrencyLevel", 1))
    commands = [jobs.daily_command(config, artifacts, day) for day in request.dates]
    if request.backfill:
        start, end = request.backfill
        if concurrency > 1:  # one step per date, EMR runs `concurrency` of them at once
            days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
            commands += [jobs.backfill_command(config, artifacts, day, day, 1) for day in days]
        else:  # one driver, dates in parallel inside it
            commands.append(jobs.backfill_command(config, artifacts, start, end, request.parallelism))
    wanted = [jobs.emr_step(config, artifacts, command) for command in commands]
    existing = set()
    for page in _pages(aws, "emr", "list_steps", "Steps", ClusterId=cluster["Id"], StepStates=LIVE_STEP):
        existing.add((page["Name"], tuple(page["Config"]["Args"])))
    missing = [s for s in wanted if (s["Name"], tuple(s["HadoopJarStep"]["Args"])) not in existing]
    if missing:
        aws.change("emr", "add_job_flow_steps", JobFlowId=cluster["Id"], Steps=missing)
    for kind, command, expression in _scheduled(config, artifacts):
        step = jobs.emr_step(config, artifacts, command)
        target = {"JobFlowId": cluster["Id"], "Steps": [step]}
        _ensure_schedule(aws, config, f"shipments-emr-{kind}", expression, "emr:addJobFlowSteps", target)


def _scheduled(config: Config, artifacts: jobs.Artifacts) -> list[tuple[str, jobs.JobCommand, str]]:
    return [
        ("daily", jobs.scheduled_command(config, artifacts), config.deploy.daily_schedule),
        ("stream", jobs.stream_command(config, artifacts), config.deploy.stream_schedule),
    ]


def _pages(aws: Aws, service: str, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token_name = "Marker" if service in ("emr",) else "nextToken" if service == "emr-serverless" else "NextToken"
    while True:
        page = aws.read(service, operation, **params)
        items += page.get(key, [])
        token = page.get(token_name)
        if not token:
            return items
        params = {**params, token_name: token}


# --------------------------------------------------------------------------- EMR Serverless


def _deploy_emr_serverless(aws: Aws, config: Config, request: DeployRequest, artifacts: jobs.Artifacts) -> None:
    deploy = config.deploy
    if not deploy.emr_serverless_role:
        raise ConfigError("deploy.emr_serverless_role is required for --target emr-serverless (the job role's ARN)")
    commands = [jobs.daily_command(config, artifacts, day) for day in request.dates]
    if request.backfill:
        commands.append(jobs.backfill_command(config, artifacts, *request.backfill, request.parallelism))
    apps = [
        a
        for a in _pages(aws, "emr-serverless", "list_applications", "applications")
        if a["name"] == deploy.emr_serverless_application and a["state"] not in ("TERMINATED",)
    ]
    if apps:
        app_id = apps[0]["id"]
    else:
        created = aws.change(
            "emr-serverless",
            "create_application",
            name=deploy.emr_serverless_application,
            releaseLabel=deploy.emr_release,
            type="SPARK",
            tags=TAGS,
        )
        app_id = created["applicationId"] if created else "<new-application-id>"
    live = set()
    if apps:
        for run in _pages(aws, "emr-serverless", "list_job_runs", "jobRuns", applicationId=app_id):
            if run["state"] not in DEAD_RUN:
                live.add(run.get("name", ""))
    monitoring = {"monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": _logs(config, "emr-serverless")}}}
    for command in commands:
        if command.name in live:
            continue
        aws.change(
            "emr-serverless",
            "start_job_run",
            applicationId=app_id,
            executionRoleArn=deploy.emr_serverless_role,
            name=command.name,
            clientToken=hashlib.sha256(f"{artifacts.version} {command.args}".encode()).hexdigest()[:64],
            jobDriver=jobs.emr_serverless_job(config, artifacts, command),
            configurationOverrides=monitoring,
            tags=TAGS,
        )
    for kind, command, expression in _scheduled(config, artifacts):
        target = {
            "applicationId": app_id,
            "executionRoleArn": deploy.emr_serverless_role,
            "name": command.name,
            "clientToken": "<aws.scheduler.execution-id>",
            "jobDriver": jobs.emr_serverless_job(config, artifacts, command),
            "configurationOverrides": monitoring,
        }
        _ensure_schedule(
            aws, config, f"shipments-emr-serverless-{kind}", expression, "emrserverless:startJobRun", target
        )


def _logs(config: Config, kind: str) -> str:
    base = config.deploy.logs or f"{s3_uri(config.deploy.artifacts)}-logs"
    return f"{s3_uri(base)}/{kind}/"


# --------------------------------------------------------------------------- Glue 5.1

GLUE_DAILY, GLUE_STREAM = "shipments-daily", "shipments-stream"
_GLUE_FIELDS = (
    "Description", "Role", "GlueVersion", "WorkerType", "NumberOfWorkers", "Command", "DefaultArguments",
    "ExecutionProperty", "MaxRetries", "Timeout",
)  # fmt: skip


def _deploy_glue(aws: Aws, config: Config, request: DeployRequest, artifacts: jobs.Artifacts) -> None:
    definitions = {
        GLUE_DAILY: jobs.glue_job(config, artifacts, GLUE_DAILY, jobs.scheduled_command(config, artifacts)),
        GLUE_STREAM: jobs.glue_job(config, artifacts, GLUE_STREAM, jobs.stream_command(config, artifacts)),
    }
    for name, definition in definitions.items():
        found = aws.find("glue", "get_job", JobName=name)
        if found is None:
            aws.change("glue", "create_job", Name=name, **definition)
            continue
        update = {k: definition[k] for k in _GLUE_FIELDS}
        if any(found["Job"].get(k) != v for k, v in update.items()):
            aws.change("glue", "update_job", JobName=name, JobUpdate=update)
    commands = [jobs.daily_command(config, artifacts, day) for day in request.dates]
    if request.backfill:
        commands.append(jobs.backfill_command(config, artifacts, *request.backfill, request.parallelism))
    if commands:
        runs = _glue_runs(aws, GLUE_DAILY)
        done = {r.get("Arguments", {}).get(jobs.GLUE_ARGS_KEY) for r in runs if r.get("JobRunState") not in DEAD_RUN}
        for command in commands:
            arguments = {jobs.GLUE_ARGS_KEY: shlex.join(command.args)}
            if arguments[jobs.GLUE_ARGS_KEY] not in done:
                aws.change("glue", "start_job_run", JobName=GLUE_DAILY, Arguments=arguments)
    for kind, command, expression in _scheduled(config, artifacts):
        name = GLUE_DAILY if kind == "daily" else GLUE_STREAM
        target = {"JobName": name, "Arguments": {jobs.GLUE_ARGS_KEY: shlex.join(command.args)}}
        _ensure_schedule(aws, config, f"shipments-glue-{kind}", expression, "glue:startJobRun", target)


def _glue_runs(aws: Aws, name: str) -> list[dict[str, Any]]:
    """The job's runs; none when the job does not exist yet (a dry run's first deploy)."""
    try:
        return _pages(aws, "glue", "get_job_runs", "JobRuns", JobName=name)
    except Exception as exc:
        if is_not_found(exc):
            return []
        raise


# --------------------------------------------------------------------------- EventBridge Scheduler


def _ensure_schedule(
    aws: Aws, config: Config, name: str, expression: str, api: str, target_input: dict[str, Any]
) -> None:
    """Create the schedule ``name`` or update it where it differs from what is wanted."""
    if not config.deploy.scheduler_role:
        raise ConfigError("deploy.scheduler_role is required (the role EventBridge Scheduler starts jobs with)")
    wanted: dict[str, Any] = {
        "Name": name,
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "Target": {
            "Arn": f"arn:aws:scheduler:::aws-sdk:{api}",
            "RoleArn": config.deploy.scheduler_role,
            "Input": json.dumps(target_input, sort_keys=True),
            "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
        },
    }
    current = aws.find("scheduler", "get_schedule", Name=name)
    if current is None:
        aws.change("scheduler", "create_schedule", **wanted)
        return
    same = all(current.get(k) == wanted[k] for k in ("ScheduleExpression", "ScheduleExpressionTimezone", "State"))
    target = current.get("Target", {})
    same = same and all(target.get(k) == wanted["Target"][k] for k in ("Arn", "RoleArn"))
    same = same and json.loads(target.get("Input") or "null") == target_input
    if not same:
        aws.change("scheduler", "update_schedule", **wanted)
