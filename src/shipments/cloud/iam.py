"""``shipments iam-policy --policy FILE``: a job role's policy plus what the config's operations
features need, and nothing more.

``emr/iam/*.json`` hold what every deployment needs. Alerts and CloudWatch metrics add grants
that depend on the config, so they are derived from it rather than written into those files:

- ``sns:Publish`` on exactly ``alerts.page_topic`` and ``alerts.ticket_topic`` (none when both
  are empty: the alerts then only go to the job's log);
- ``cloudwatch:PutMetricData`` only when ``metrics.cloudwatch`` is ``put_metric_data``, limited
  by the ``cloudwatch:namespace`` condition to ``metrics.namespace`` (the action has no
  resource-level permissions, so the condition is what confines it). ``emf`` needs no grant of
  its own: the lines go to the job's log. A Pushgateway is reached over HTTP, without IAM.

Give the result to the roles that run the jobs (``shipments-emr-instance``,
``shipments-emr-serverless-job``, ``shipments-glue-job``), never to the deploy or scheduler roles.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from shipments.config import Config
from shipments.errors import EXIT_OK, InputError

# The Sids this module owns: a policy printed earlier, given again, gets them replaced, not doubled.
ALERTS_SID, METRICS_SID = "PublishAlerts", "PutRunMetrics"


def ops_statements(config: Config) -> list[dict[str, Any]]:
    """The statements the operations features of ``config`` need (empty when they are off)."""
    statements: list[dict[str, Any]] = []
    topics = sorted({t for t in (config.alerts.page_topic, config.alerts.ticket_topic) if t})
    if topics:
        statements.append({"Sid": ALERTS_SID, "Effect": "Allow", "Action": ["sns:Publish"], "Resource": topics})
    if config.metrics.cloudwatch == "put_metric_data":
        statements.append(
            {
                "Sid": METRICS_SID,
                "Effect": "Allow",
                "Action": ["cloudwatch:PutMetricData"],
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": config.metrics.namespace}},
            }
        )
    return statements


def job_policy(policy: dict[str, Any], config: Config) -> dict[str, Any]:
    """``policy`` with ``ops_statements(config)`` appended (earlier ones of those Sids dropped)."""
    statements = policy.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    kept = [s for s in statements if s.get("Sid") not in (ALERTS_SID, METRICS_SID)]
    return {**policy, "Statement": [*kept, *ops_statements(config)]}


@dataclasses.dataclass(frozen=True)
class PolicyRequest:
    """``shipments iam-policy --policy FILE``."""

    policy_file: Path


@dataclasses.dataclass(frozen=True)
class PolicyResult:
    policy: dict[str, Any]

    @property
    def exit_code(self) -> int:
        return EXIT_OK

    def summary(self) -> str:
        return json.dumps(self.policy, indent=2)


def run_iam_policy(spark: object, config: Config, request: PolicyRequest) -> PolicyResult:
    """Read the policy file and add what the config needs (no Spark, no AWS call: ``spark`` is None).

    Raises:
        InputError: the file is missing or is not an IAM policy document.
    """
    path = request.policy_file
    try:
        policy = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the IAM policy {path}: {exc}") from exc
    if not isinstance(policy, dict) or "Statement" not in policy:
        raise InputError(f"{path} is not an IAM policy document (expected an object with a Statement)")
    return PolicyResult(job_policy(policy, config))
