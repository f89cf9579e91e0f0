"""``shipments deploy`` end to end against moto's server (S3, EMR, EMR Serverless, Glue,
EventBridge Scheduler): what it uploads and creates, that a second run changes nothing, that a
dry run changes nothing, that every job's arguments parse with the project's own parser, and
that it refuses multi-driver writes on S3 without Delta's DynamoDB LogStore."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipments.cli import build_parser, main
from shipments.cloud.catalog import CatalogRequest, run_catalog_sync
from shipments.cloud.deploy import DeployRequest, run_deploy
from shipments.cloud.jobs import GLUE_ARGS_KEY, SCHEDULED_TIME
from shipments.config import load_config
from tests.cloud_fixtures import ROOT, Moto, aws_env_fixture, moto_fixture, packaged_fixture  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("aws_env")]

ACCOUNT = "123456789012"
FIRE_TIME = "2026-11-03T02:30:00Z"


def _conf(tmp_path: Path, bucket: str, *, log_table: bool = True) -> Path:
    """A config beside a copy of base.yaml (deployed configs extend files in their own folder)."""
    folder = tmp_path / "conf"
    folder.mkdir(exist_ok=True)
    shutil.copy(ROOT / "conf" / "base.yaml", folder / "base.yaml")
    deploy = {
        "region": "eu-west-1",
        "artifacts": f"s3://{bucket}/shipments",
        "logs": f"s3://{bucket}/shipments-logs",
        "emr_serverless_role": f"arn:aws:iam::{ACCOUNT}:role/shipments-emr-serverless-job",
        "glue_role": f"arn:aws:iam::{ACCOUNT}:role/shipments-glue-job",
        "scheduler_role": f"arn:aws:iam::{ACCOUNT}:role/shipments-scheduler",
        "emr_cluster_name": f"shipments-{bucket}",
        "emr_serverless_application": f"shipments-{bucket}"[:60],
        "glue_worker_type": "G.1X",
        "stream_schedule": "rate(1 hour)",
    }
    if log_table:
        deploy["delta_log_table"] = "shipments_delta_log"
    conf = folder / "aws.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "extends": "base.yaml",
                # raw under a folder of its own per test: each test's schedules differ from the last's
                "paths": {"raw": f"s3://test-raw-bucket/{bucket}/raw", "lake": "s3://test-lake-bucket/lake"},
                "spark": {"platform": "emr"},
                "stream": {"checkpoint": "s3://test-lake-bucket/checkpoints/shipment_status"},
                "deploy": deploy,
            }
        )
    )
    return conf


def _bucket(moto: Moto) -> str:
    name = f"artifacts-{uuid.uuid4().hex[:10]}"
    moto.client("s3").create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return name


def _deploy(capsys: pytest.CaptureFixture[str], conf: Path, dist: Path, *args: str) -> tuple[int, str, str]:
    code = main(["deploy", "--conf", str(conf), "--dist", str(dist), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _cluster(moto: Moto, name: str, concurrency: int) -> str:
    return str(
        moto.client("emr").run_job_flow(
            Name=name,
            ReleaseLabel="emr-7.12.0",
            Applications=[{"Name": "Spark"}],
            Instances={
                "InstanceGroups": [
                    {"Name": "primary", "InstanceRole": "MASTER", "InstanceType": "m7g.xlarge", "InstanceCount": 1}
                ],
                "KeepJobFlowAliveWhenNoSteps": True,
            },
            StepConcurrencyLevel=concurrency,
            JobFlowRole="shipments-emr-instance-profile",
            ServiceRole="EMR_DefaultRole_V2",
        )["JobFlowId"]
    )


def _parse(args: list[str]) -> Any:
    """The project's own parser on a job's arguments (a scheduler's placeholder filled in)."""
    return build_parser().parse_args([FIRE_TIME if a == SCHEDULED_TIME else a for a in args])


def _objects(moto: Moto, bucket: str) -> dict[str, str]:
    listed = moto.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listed}


def _schedule_input(moto: Moto, name: str) -> dict[str, Any]:
    schedule = moto.client("scheduler").get_schedule(Name=name)
    assert schedule["Target"]["RoleArn"].endswith(":role/shipments-scheduler")
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    return dict(json.loads(schedule["Target"]["Input"]))


def test_deploy_emr_uploads_adds_steps_and_schedules_then_changes_nothing(
    moto: Moto, packaged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = _bucket(moto)
    conf = _conf(tmp_path, bucket)
    cluster = _cluster(moto, f"shipments-{bucket}", 4)
    flags = [
        "--target",
        "emr",
        "--date",
        "2026-11-02",
        "--backfill-start",
        "2026-10-01",
        "--backfill-end",
        "2026-10-03",
    ]

    # a dry run first: prints every call and changes nothing
    code, out, _ = _deploy(capsys, conf, packaged, *flags, "--dry-run")
    assert code == 0 and "would make" in out and "CHANGE emr.add_job_flow_steps" in out
    assert "CHANGE s3.put_object" in out and "CHANGE scheduler.create_schedule" in out
    assert _objects(moto, bucket) == {}
    assert moto.client("emr").list_steps(ClusterId=cluster)["Steps"] == []

    code, out, err = _deploy(capsys, conf, packaged, *flags)
    assert code == 0, err
    version = json.loads((packaged / "manifest.json").read_text())["version"]
    keys = set(_objects(moto, bucket))
    prefix = f"shipments/{version}/"
    for name in ("jobs/emr_main.py", "jobs/glue_main.py", "conf/aws.yaml", "conf/base.yaml", "emr/bootstrap.sh"):
        assert prefix + name in keys
    assert prefix + f"shipments-{version}-py3-none-any.whl" in keys
    assert prefix + f"shipments-{version}-venv.tar.gz" in keys

    steps = moto.client("emr").list_steps(ClusterId=cluster)["Steps"]
    assert sorted(s["Name"] for s in steps) == [
        "shipments backfill 2026-10-01",
        "shipments backfill 2026-10-02",
        "shipments backfill 2026-10-03",
        "shipments daily 2026-11-02",
    ]
    for step in steps:
        args = step["Config"]["Args"]
        entry = args.index(f"s3://{bucket}/{prefix}jobs/emr_main.py")
        submit, shipments_args = args[:entry], args[entry + 1 :]
        parsed = _parse(shipments_args)
        assert parsed.conf == "aws.yaml" and parsed.lake == "s3://test-lake-bucket/lake"
        assert f"s3://{bucket}/{prefix}conf/aws.yaml" in submit[submit.index("--files") + 1].split(",")
        assert "spark.delta.logStore.s3.impl=io.delta.storage.S3DynamoDBLogStore" in submit
        assert f"spark.archives=s3://{bucket}/{prefix}shipments-{version}-venv.tar.gz#environment" in submit
        if parsed.command == "daily":
            assert parsed.date == dt.date(2026, 11, 2)
        else:
            assert parsed.command == "backfill" and parsed.start == parsed.end and parsed.parallelism == 1

    daily = _schedule_input(moto, "shipments-emr-daily")
    assert daily["JobFlowId"] == cluster
    step_args = daily["Steps"][0]["HadoopJarStep"]["Args"]
    scheduled = _parse(step_args[step_args.index(f"s3://{bucket}/{prefix}jobs/emr_main.py") + 1 :])
    assert scheduled.command == "scheduled" and scheduled.time == dt.datetime(2026, 11, 3, 2, 30, tzinfo=dt.UTC)
    stream_args = _schedule_input(moto, "shipments-emr-stream")["Steps"][0]["HadoopJarStep"]["Args"]
    stream = _parse(stream_args[stream_args.index(f"s3://{bucket}/{prefix}jobs/emr_main.py") + 1 :])
    assert stream.command == "stream" and stream.available_now and stream.source == "files"
    assert stream.input == f"s3://test-raw-bucket/{bucket}/raw/events"

    before = (_objects(moto, bucket), len(steps))
    code, out, err = _deploy(capsys, conf, packaged, *flags)
    assert code == 0, err
    assert "made 0 change(s)" in out
    assert (_objects(moto, bucket), len(moto.client("emr").list_steps(ClusterId=cluster)["Steps"])) == before


def test_deploy_emr_refuses_concurrent_steps_on_s3_without_the_log_store(
    moto: Moto, packaged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = _bucket(moto)
    conf = _conf(tmp_path, bucket, log_table=False)
    cluster = _cluster(moto, f"shipments-{bucket}", 4)
    code, _, err = _deploy(capsys, conf, packaged, "--target", "emr", "--backfill-start", "2026-10-01",
                           "--backfill-end", "2026-10-30")  # fmt: skip
    assert code == 2 and "DynamoDB LogStore" in err and len(err.strip().splitlines()) == 1
    assert _objects(moto, bucket) == {} and moto.client("emr").list_steps(ClusterId=cluster)["Steps"] == []

    # One step at a time on the cluster: one driver, safe without it; the backfill is one step.
    single = _cluster(moto, f"shipments-{bucket}-single", 1)
    code, _, err = _deploy(capsys, conf, packaged, "--target", "emr", "--cluster-id", single, "--backfill-start",
                           "2026-10-01", "--backfill-end", "2026-10-30", "--parallelism", "4")  # fmt: skip
    assert code == 0, err
    (step,) = moto.client("emr").list_steps(ClusterId=single)["Steps"]
    args = step["Config"]["Args"]
    parsed = _parse(args[next(i for i, a in enumerate(args) if a.endswith("/jobs/emr_main.py")) + 1 :])
    assert (parsed.start, parsed.end, parsed.parallelism) == (dt.date(2026, 10, 1), dt.date(2026, 10, 30), 4)
    assert not any("S3DynamoDBLogStore" in a for a in args)


def test_deploy_emr_serverless_starts_runs_once(
    moto: Moto, packaged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = _bucket(moto)
    conf = _conf(tmp_path, bucket)
    flags = ["--target", "emr-serverless", "--date", "2026-11-02"]
    code, out, err = _deploy(capsys, conf, packaged, *flags)
    assert code == 0, err
    client = moto.client("emr-serverless")
    apps = [a for a in client.list_applications()["applications"] if a["name"] == f"shipments-{bucket}"[:60]]
    assert len(apps) == 1 and apps[0]["releaseLabel"] == "emr-7.12.0"
    runs = client.list_job_runs(applicationId=apps[0]["id"])["jobRuns"]
    assert [r["name"] for r in runs] == ["shipments daily 2026-11-02"]
    run = client.get_job_run(applicationId=apps[0]["id"], jobRunId=runs[0]["id"])["jobRun"]
    driver = run["jobDriver"]["sparkSubmit"]
    parsed = _parse(driver["entryPointArguments"])
    assert parsed.command == "daily" and parsed.date == dt.date(2026, 11, 2)
    assert "#environment" in driver["sparkSubmitParameters"] and "delta-spark.jar" in driver["sparkSubmitParameters"]
    assert run["executionRole"].endswith(":role/shipments-emr-serverless-job")
    daily = _schedule_input(moto, "shipments-emr-serverless-daily")
    assert _parse(daily["jobDriver"]["sparkSubmit"]["entryPointArguments"]).command == "scheduled"

    code, out, err = _deploy(capsys, conf, packaged, *flags)
    assert code == 0 and "made 0 change(s)" in out, out + err
    assert len(client.list_job_runs(applicationId=apps[0]["id"])["jobRuns"]) == 1


def test_deploy_glue_creates_jobs_then_updates_only_what_changed(
    moto: Moto, packaged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = _bucket(moto)
    conf = _conf(tmp_path, bucket)
    code, out, err = _deploy(capsys, conf, packaged, "--target", "glue", "--date", "2026-11-02")
    assert code == 0, err
    glue = moto.client("glue")
    daily, stream = glue.get_job(JobName="shipments-daily")["Job"], glue.get_job(JobName="shipments-stream")["Job"]
    for job in (daily, stream):
        assert job["GlueVersion"] == "5.1" and job["Role"].endswith(":role/shipments-glue-job")
        assert job["DefaultArguments"]["--datalake-formats"] == "delta"
        assert job["DefaultArguments"]["--additional-python-modules"].endswith("-py3-none-any.whl")
        assert job["Command"]["ScriptLocation"].endswith("/jobs/glue_main.py")
    assert _parse(shlex.split(daily["DefaultArguments"][GLUE_ARGS_KEY])).command == "scheduled"
    assert _parse(shlex.split(stream["DefaultArguments"][GLUE_ARGS_KEY])).available_now
    (run,) = glue.get_job_runs(JobName="shipments-daily")["JobRuns"]
    assert _parse(shlex.split(run["Arguments"][GLUE_ARGS_KEY])).date == dt.date(2026, 11, 2)
    scheduled = _schedule_input(moto, "shipments-glue-daily")
    assert scheduled["JobName"] == "shipments-daily"
    assert _parse(shlex.split(scheduled["Arguments"][GLUE_ARGS_KEY])).command == "scheduled"

    code, out, _ = _deploy(capsys, conf, packaged, "--target", "glue", "--date", "2026-11-02")
    assert code == 0 and "made 0 change(s)" in out, out

    # A changed setting changes exactly that. (moto 5.2.5 does not implement Glue's UpdateJob:
    # the update is checked as the dry run's plan, which makes the same reads.)
    text = conf.read_text().replace("G.1X", "G.2X").replace("rate(1 hour)", "rate(2 hours)")
    conf.write_text(text)
    code, out, err = _deploy(capsys, conf, packaged, "--target", "glue", "--date", "2026-11-02", "--dry-run")
    # the changed config file is uploaded again, both jobs get the new worker type, one schedule changes
    assert code == 0 and "would make 4 change(s)" in out, out + err
    changes = [line.split()[1] for line in out.splitlines() if line.strip().startswith("CHANGE")]
    assert sorted(changes) == ["glue.update_job", "glue.update_job", "s3.put_object", "scheduler.update_schedule"]
    assert '"WorkerType": "G.2X"' in out and '"ScheduleExpression": "rate(2 hours)"' in out
    assert glue.get_job(JobName="shipments-daily")["Job"]["WorkerType"] == "G.1X"


# boto3 operation -> IAM action, where the names differ
IAM_ACTION = {("s3", "head_object"): "s3:GetObject"}
IAM_SERVICE = {"emr": "elasticmapreduce"}


def test_the_deploy_role_allows_every_call_deploy_and_catalog_make(moto: Moto, packaged: Path, tmp_path: Path) -> None:
    """Every AWS call of a deploy to each target and of a catalog sync (dry runs: the reads run,
    the changes are recorded) is an action the deploy role's policy allows."""
    bucket = _bucket(moto)
    conf = _conf(tmp_path, bucket)
    _cluster(moto, f"shipments-{bucket}", 4)
    config = load_config(conf)
    calls = []
    for target in ("emr", "emr-serverless", "glue"):
        request = DeployRequest(target, conf, packaged, True, (dt.date(2026, 11, 2),), (dt.date(2026, 10, 1),
                                dt.date(2026, 10, 2)))  # fmt: skip
        calls += run_deploy(None, config, request).calls
    calls += run_catalog_sync(None, config, CatalogRequest(dry_run=True)).calls
    policy = json.loads((ROOT / "emr" / "iam" / "deploy-policy.json").read_text())
    allowed = {a for statement in policy["Statement"] for a in statement["Action"]}
    used = set()
    for call in calls:
        pascal = "".join(part.capitalize() for part in call.operation.split("_"))
        used.add(
            IAM_ACTION.get((call.service, call.operation), f"{IAM_SERVICE.get(call.service, call.service)}:{pascal}")
        )
    assert len(used) > 15
    assert sorted(used - allowed) == []

    # and the scheduler's role allows what each schedule's target calls
    scheduler = json.loads((ROOT / "emr" / "iam" / "scheduler-policy.json").read_text())
    scheduler_allowed = {a for statement in scheduler["Statement"] for a in statement["Action"]}
    targets = {c.params["Target"]["Arn"] for c in calls if c.operation in ("create_schedule", "update_schedule")}
    assert len(targets) == 3
    for arn in targets:
        service, operation = arn.rsplit(":", 2)[-2:]
        service = {"emr": "elasticmapreduce", "emrserverless": "emr-serverless"}.get(service, service)
        assert f"{service}:{operation[0].upper()}{operation[1:]}" in scheduler_allowed, arn


def test_deploy_to_a_missing_bucket_fails_in_one_line(
    moto: Moto, packaged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = _conf(tmp_path, f"missing-{uuid.uuid4().hex[:10]}")
    code, _, err = _deploy(capsys, conf, packaged, "--target", "glue")
    assert code == 1 and "s3.put_object" in err and "NoSuchBucket" in err, err
    assert len(err.strip().splitlines()) == 1
