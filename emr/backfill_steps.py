"""Write the JSON for ``aws emr add-steps``: the same backfill as EMR steps, one step per date.

    python emr/backfill_steps.py --start 2026-10-01 --end 2026-10-30 \\
        --artifacts s3://my-bucket/shipments --step-concurrency 4 \\
        --dynamodb-table delta_log --dynamodb-region eu-west-1 --out steps.json
    aws emr modify-cluster --cluster-id j-XXXX --step-concurrency-level 4
    aws emr add-steps --cluster-id j-XXXX --steps file://steps.json

Each step is ``shipments backfill --start D --end D`` (not ``daily``): a step that is submitted
again skips its date when the ledger says it already succeeded on the same input, exactly like
the local backfill. Steps use ``ActionOnFailure: CONTINUE``, so one failed date does not stop
the others; EMR runs as many at once as the cluster's step concurrency level (read from the
cluster with ``--cluster-id``, or given with ``--step-concurrency``).

Concurrent steps are separate Spark drivers writing the same Delta tables on S3: that is only
safe with Delta's DynamoDB-backed LogStore, so more than one step at a time requires
``--dynamodb-table``. Without it, use ``--single-step``: one step running the whole range with
``--parallelism N`` inside one driver (no DynamoDB needed). See docs/backfill.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

MAX_ACTIVE_STEPS = 256  # EMR's limit on pending + running steps of a cluster


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _level(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(f"step concurrency must be 1..256, got {text!r}")
    return int(text)


def cluster_step_concurrency(cluster_id: str, region: str | None) -> int:
    """The cluster's ``StepConcurrencyLevel`` (needs boto3 and ``elasticmapreduce:DescribeCluster``)."""
    import boto3  # only here: generating steps with --step-concurrency needs no AWS access

    emr = boto3.client("emr", region_name=region) if region else boto3.client("emr")
    return int(emr.describe_cluster(ClusterId=cluster_id)["Cluster"].get("StepConcurrencyLevel", 1))


def spark_submit_args(args: argparse.Namespace) -> list[str]:
    """``spark-submit`` up to and including the entry script: cluster mode, so concurrent steps
    do not pile their drivers onto the primary node."""
    artifacts = args.artifacts.rstrip("/")
    # The shipments wheel is on every node (emr/bootstrap.sh): no --py-files.
    submit = [
        "spark-submit",
        "--deploy-mode",
        "cluster",
        # The config and what it extends land in the driver's working folder.
        "--files",
        f"{artifacts}/conf/base.yaml,{artifacts}/conf/{args.conf}",
        "--conf",
        "spark.yarn.maxAppAttempts=1",  # a retried attempt would double the ledger; rerun the step instead
    ]
    if args.dynamodb_table:
        scheme = urlparse(args.lake).scheme if args.lake else "s3"
        store = "spark.io.delta.storage.S3DynamoDBLogStore.ddb"
        submit += [
            "--conf",
            f"spark.delta.logStore.{scheme}.impl=io.delta.storage.S3DynamoDBLogStore",
            "--conf",
            f"{store}.tableName={args.dynamodb_table}",
            "--conf",
            f"{store}.region={args.dynamodb_region}",
        ]
    if args.jars:
        submit += ["--jars", args.jars]
    for setting in args.spark_conf:
        submit += ["--conf", setting]
    return [*submit, f"{artifacts}/jobs/emr_main.py"]


def backfill_args(args: argparse.Namespace, start: dt.date, end: dt.date, parallelism: int) -> list[str]:
    command = [
        "backfill",
        "--conf",
        args.conf,
        "--start",
        start.isoformat(),
        "--end",
        end.isoformat(),
        "--parallelism",
        str(parallelism),
    ]
    if args.raw:
        command += ["--raw", args.raw]
    if args.lake:
        command += ["--lake", args.lake]
    if args.force:
        command.append("--force")
    return command


def step(name: str, command: list[str]) -> dict[str, Any]:
    """One step in the ``aws emr add-steps --steps file://...`` JSON shape."""
    return {
        "Type": "CUSTOM_JAR",
        "Name": name,
        "ActionOnFailure": "CONTINUE",
        "Jar": "command-runner.jar",
        "Args": command,
    }


def build_steps(args: argparse.Namespace, concurrency: int) -> list[dict[str, Any]]:
    submit = spark_submit_args(args)
    if args.single_step:
        return [
            step(
                f"shipments backfill {args.start}..{args.end}",
                submit + backfill_args(args, args.start, args.end, args.parallelism or concurrency),
            )
        ]
    days = [args.start + dt.timedelta(days=i) for i in range((args.end - args.start).days + 1)]
    return [step(f"shipments backfill {day}", submit + backfill_args(args, day, day, 1)) for day in days]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="emr/backfill_steps.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=_date, required=True)
    parser.add_argument("--end", type=_date, required=True)
    parser.add_argument(
        "--artifacts",
        required=True,
        help="S3 prefix of emr/deploy.sh (s3://BUCKET/shipments) holding conf/ and jobs/emr_main.py",
    )
    level = parser.add_mutually_exclusive_group(required=True)
    level.add_argument("--cluster-id", help="read the step concurrency level from this cluster (boto3)")
    level.add_argument("--step-concurrency", type=_level, help="the cluster's step concurrency level")
    parser.add_argument("--region", help="AWS region of the cluster (with --cluster-id)")
    parser.add_argument(
        "--conf", default="emr.yaml", help="config file name under <artifacts>/conf (default %(default)s)"
    )
    parser.add_argument("--raw", help="override paths.raw")
    parser.add_argument("--lake", help="override paths.lake")
    parser.add_argument("--force", action="store_true", help="re-run dates that already succeeded on the same input")
    parser.add_argument(
        "--single-step",
        action="store_true",
        help="one step for the whole range, dates run in parallel inside one driver",
    )
    parser.add_argument("--parallelism", type=_level, help="with --single-step (default: the step concurrency)")
    parser.add_argument("--dynamodb-table", help="DynamoDB table of Delta's S3DynamoDBLogStore (multi-driver writes)")
    parser.add_argument("--dynamodb-region", help="region of --dynamodb-table")
    parser.add_argument("--jars", help="extra jars, e.g. the delta-storage-s3-dynamodb jar if the cluster lacks it")
    parser.add_argument(
        "--spark-conf", action="append", default=[], metavar="KEY=VALUE", help="extra spark-submit --conf"
    )
    parser.add_argument("--out", help="write the JSON here (default: stdout)")
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error(f"--end {args.end} is before --start {args.start}")
    if not args.artifacts.startswith(("s3://", "s3a://")):
        parser.error(f"--artifacts must be an S3 prefix, got {args.artifacts!r}")
    if args.dynamodb_table and not args.dynamodb_region:
        parser.error("--dynamodb-region is required with --dynamodb-table")
    if args.parallelism and not args.single_step:
        parser.error(
            "--parallelism only applies with --single-step (otherwise EMR's step concurrency is the parallelism)"
        )
    days = (args.end - args.start).days + 1
    if not args.single_step and days > MAX_ACTIVE_STEPS:
        parser.error(f"{days} dates would be {days} steps; EMR allows {MAX_ACTIVE_STEPS} active steps: split the range")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    concurrency = args.step_concurrency or cluster_step_concurrency(args.cluster_id, args.region)
    if not args.single_step and concurrency > 1 and not args.dynamodb_table:
        print(
            f"emr/backfill_steps.py: error: step concurrency {concurrency} means {concurrency} Spark drivers "
            "writing the same Delta tables on S3 at once, which is only safe with --dynamodb-table "
            "(S3DynamoDBLogStore). "
            "Pass it, or use --single-step (one driver, dates in parallel inside it).",
            file=sys.stderr,
        )
        return 2
    text = json.dumps(build_steps(args, concurrency), indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    cluster = args.cluster_id or "<cluster-id>"
    steps = 1 if args.single_step else (args.end - args.start).days + 1
    print(
        f"{steps} step(s); {'one driver' if args.single_step else f'up to {concurrency} at once'}. Submit with:\n"
        + (
            ""
            if args.cluster_id or args.single_step
            else f"  aws emr modify-cluster --cluster-id {cluster} --step-concurrency-level {concurrency}\n"
        )
        + f"  aws emr add-steps --cluster-id {cluster} --steps file://{args.out or 'steps.json'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
