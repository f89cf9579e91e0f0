"""Least privilege: every IAM policy in emr/iam, checked as data and by IAM's own grammar (moto).

Job roles (what runs on a cluster or in a job) may read the artifacts prefix (the wheel, the
bootstrap script that runs with sudo on every new node, the job scripts) but never write it:
anything running on a cluster could otherwise plant code in future clusters. Only the deploy
role writes artifacts. No policy grants a wildcard action on a data or control service.
Alerts (SNS) and CloudWatch run metrics add grants that depend on the config: ``shipments
iam-policy`` adds exactly those, and none when the features are off.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest

from shipments.cli import main
from tests.cloud_fixtures import ROOT, Moto, moto_fixture  # noqa: F401

IAM = ROOT / "emr" / "iam"
ROLES: dict[str, dict[str, str]] = {
    k: v for k, v in json.loads((IAM / "roles.json").read_text()).items() if not k.startswith("_")
}
ARTIFACTS = "arn:aws:s3:::example-artifacts-bucket/shipments/"
# Objects under the artifacts prefix that must stay as deployed.
ARTIFACT_OBJECTS = ["dist/shipments-0.1.0-py3-none-any.whl", "emr/bootstrap.sh", "jobs/emr_main.py", "conf/emr.yaml"]
# S3 actions that only read; anything else on an object is a write (Put, Delete, Restore, ACLs...).
S3_READS = {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:GetBucketLocation"}
# Actions AWS defines without resource-level permissions: "Resource": "*" is the only choice.
# (and list calls that find the cluster / application by name before its id is known).
RESOURCE_STAR_OK = {"cloudwatch:PutMetricData", "elasticmapreduce:ListClusters", "emr-serverless:ListApplications"}


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    statements = policy["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _listify(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _policy(role: str) -> dict[str, Any]:
    return json.loads((IAM / ROLES[role]["policy"]).read_text())


def _allowed(role: str) -> list[tuple[str, str]]:
    """(action, resource pattern) pairs the role's policy allows."""
    pairs = []
    for statement in _statements(_policy(role)):
        assert statement["Effect"] == "Allow", f"{role}: only Allow statements are expected"
        assert "NotAction" not in statement and "NotResource" not in statement, f"{role}: no Not* grants"
        for action in _listify(statement["Action"]):
            pairs += [(action, resource) for resource in _listify(statement["Resource"])]
    return pairs


def test_every_policy_file_belongs_to_a_role() -> None:
    files = {p.name for p in IAM.glob("*.json")} - {"roles.json"}
    assert files == {r["policy"] for r in ROLES.values()}
    assert {r["kind"] for r in ROLES.values()} == {"deploy", "job"}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_no_wildcard_actions_and_no_star_resources(role: str) -> None:
    for action, resource in _allowed(role):
        service, _, name = action.partition(":")
        assert service and name, f"{role}: {action!r} is not service:Action"
        assert "*" not in action and "?" not in action, f"{role}: wildcard action {action!r}"
        if resource == "*":
            assert action in RESOURCE_STAR_OK, f"{role}: {action} on every resource"


def _covers(pattern: str, arn: str) -> bool:
    return fnmatch.fnmatchcase(arn, pattern)


@pytest.mark.parametrize("role", sorted(r for r, spec in ROLES.items() if spec["kind"] == "job"))
def test_job_roles_cannot_write_the_artifacts_prefix(role: str) -> None:
    pairs = _allowed(role)
    for key in ARTIFACT_OBJECTS:
        arn = ARTIFACTS + key
        writes = [a for a, r in pairs if a.startswith("s3:") and a not in S3_READS and _covers(r, arn)]
        assert not writes, f"{role} may {writes} {arn}"
    for action, resource in pairs:
        # nor any action on the artifacts bucket as a whole (policy, ACL, lifecycle...)
        if resource == "arn:aws:s3:::example-artifacts-bucket":
            assert action in S3_READS, f"{role} may {action} the artifacts bucket"


def test_job_roles_read_what_they_run_and_write_the_lake() -> None:
    """The other side of least privilege: the grants the jobs need are there."""
    for role in ("shipments-emr-instance", "shipments-emr-serverless-job", "shipments-glue-job"):
        pairs = _allowed(role)
        assert any(a == "s3:GetObject" and _covers(r, ARTIFACTS + "dist/x.whl") for a, r in pairs), role
        for key in ("lake/shipment_daily_totals/_delta_log/00000000000000000001.json", "checkpoints/s/offsets/1"):
            arn = f"arn:aws:s3:::example-lake-bucket/{key}"
            assert any(a == "s3:PutObject" and _covers(r, arn) for a, r in pairs), (role, key)
        assert not any(
            a.startswith("s3:") and a not in S3_READS and _covers(r, "arn:aws:s3:::example-raw-bucket/raw/x")
            for a, r in pairs
        ), f"{role} may write the raw zone"


def test_only_the_deploy_role_writes_artifacts_and_it_passes_only_job_roles() -> None:
    pairs = _allowed("shipments-deploy")
    assert any(a == "s3:PutObject" and _covers(r, ARTIFACTS + "emr/bootstrap.sh") for a, r in pairs)
    assert not any(a.startswith("s3:") and _covers(r, "arn:aws:s3:::example-lake-bucket/lake/x") for a, r in pairs), (
        "deploy touches no data"
    )
    passed = {r.rsplit("/", 1)[-1] for a, r in pairs if a == "iam:PassRole"}
    assert passed and passed <= {name for name, spec in ROLES.items() if spec["kind"] == "job"}


def test_iam_accepts_every_policy_and_trust(moto: Moto) -> None:
    """IAM's own grammar (as moto checks it): every document creates a policy and a role."""
    iam = moto.client("iam")
    for role, spec in ROLES.items():
        name = f"test-{role}"
        arn = iam.create_policy(PolicyName=name, PolicyDocument=(IAM / spec["policy"]).read_text())["Policy"]["Arn"]
        stored = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]["Document"]
        stored = json.loads(stored) if isinstance(stored, str) else stored
        assert stored["Statement"] == json.loads((IAM / spec["policy"]).read_text())["Statement"]
        iam.delete_policy(PolicyArn=arn)


# --------------------------------------------------------------------------- operations features
# Alerts (SNS) and run metrics (CloudWatch) add grants that depend on the config: `shipments
# iam-policy` adds exactly those to a job role's policy, and nothing when the features are off.

RUNNERS = ("shipments-emr-instance", "shipments-emr-serverless-job", "shipments-glue-job")
PAGE = "arn:aws:sns:us-east-1:123456789012:shipments-page"
TICKET = "arn:aws:sns:us-east-1:123456789012:shipments-ticket"


def test_the_shipped_policies_grant_no_alerts_and_no_run_metrics() -> None:
    """Off by default: no SNS at all, and CloudWatch only Glue's own job metrics (namespace Glue)."""
    for role in ROLES:
        statements = _statements(_policy(role))
        assert not [s for s in statements if any(a.startswith("sns:") for a in _listify(s["Action"]))], role
        metrics = [s for s in statements if "cloudwatch:PutMetricData" in _listify(s["Action"])]
        if role == "shipments-glue-job":
            assert metrics == [
                {
                    "Sid": "GlueMetrics",
                    "Effect": "Allow",
                    "Action": ["cloudwatch:PutMetricData"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"cloudwatch:namespace": "Glue"}},
                }
            ]
        else:
            assert metrics == [], role


def _ops_conf(tmp_path: Path, metrics: str, alerts: str) -> Path:
    conf = tmp_path / "ops.yaml"
    conf.write_text(f"extends: {ROOT / 'conf' / 'glue.yaml'}\n{metrics}\n{alerts}\n")
    return conf


def _printed_policy(conf: Path, role: str, capsys: pytest.CaptureFixture[str], policy: Path | None = None) -> Any:
    policy = policy or IAM / ROLES[role]["policy"]
    assert main(["iam-policy", "--conf", str(conf), "--policy", str(policy)]) == 0
    return json.loads(capsys.readouterr().out)


ALERTS_BOTH = f"alerts: {{page_topic: '{PAGE}', ticket_topic: '{TICKET}', region: us-east-1}}"
PUT_METRIC_DATA = "metrics: {cloudwatch: put_metric_data, namespace: Shipments/prod, region: us-east-1}"
PUBLISH_BOTH = {"Sid": "PublishAlerts", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": [PAGE, TICKET]}
PUT_PROD = {
    "Sid": "PutRunMetrics",
    "Effect": "Allow",
    "Action": ["cloudwatch:PutMetricData"],
    "Resource": "*",
    "Condition": {"StringEquals": {"cloudwatch:namespace": "Shipments/prod"}},
}


@pytest.mark.parametrize(
    ("metrics", "alerts", "added"),
    [
        pytest.param("", "", [], id="off"),
        pytest.param(
            "metrics: {cloudwatch: emf, pushgateway: 'http://pushgateway:9091'}",
            "alerts: {samples: 3}",
            [],
            id="emf-and-pushgateway-need-no-grant",
        ),
        pytest.param(PUT_METRIC_DATA, ALERTS_BOTH, [PUBLISH_BOTH, PUT_PROD], id="both"),
        pytest.param(
            "metrics: {cloudwatch: emf}",
            f"alerts: {{page_topic: '{PAGE}', region: us-east-1}}",
            [{"Sid": "PublishAlerts", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": [PAGE]}],
            id="page-topic-only",
        ),
        pytest.param(
            "",
            f"alerts: {{page_topic: '{TICKET}', ticket_topic: '{TICKET}', region: us-east-1}}",
            [{"Sid": "PublishAlerts", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": [TICKET]}],
            id="one-topic-for-both-levels",
        ),
        pytest.param(PUT_METRIC_DATA, "", [PUT_PROD], id="put-metric-data-only"),
    ],
)
@pytest.mark.parametrize("role", RUNNERS)
def test_iam_policy_adds_exactly_what_the_features_need(
    role: str, metrics: str, alerts: str, added: list[dict[str, Any]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    printed = _printed_policy(_ops_conf(tmp_path, metrics, alerts), role, capsys)
    shipped = _policy(role)
    assert printed == {**shipped, "Statement": [*shipped["Statement"], *added]}


def test_iam_policy_given_its_own_output_adds_nothing_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = _ops_conf(tmp_path, PUT_METRIC_DATA, ALERTS_BOTH)
    first = _printed_policy(conf, "shipments-glue-job", capsys)
    (tmp_path / "printed.json").write_text(json.dumps(first))
    assert _printed_policy(conf, "shipments-glue-job", capsys, tmp_path / "printed.json") == first
    # turning the features off again takes the grants away
    off = _ops_conf(tmp_path, "", "")
    assert _printed_policy(off, "shipments-glue-job", capsys, tmp_path / "printed.json") == _policy(
        "shipments-glue-job"
    )


def test_iam_accepts_the_policies_with_the_operations_grants(
    moto: Moto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    iam = moto.client("iam")
    conf = _ops_conf(tmp_path, PUT_METRIC_DATA, ALERTS_BOTH)
    for role in RUNNERS:
        document = _printed_policy(conf, role, capsys)
        arn = iam.create_policy(PolicyName=f"test-ops-{role}", PolicyDocument=json.dumps(document))["Policy"]["Arn"]
        stored = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]["Document"]
        stored = json.loads(stored) if isinstance(stored, str) else stored
        assert stored["Statement"][-2:] == [PUBLISH_BOTH, PUT_PROD]
        iam.delete_policy(PolicyArn=arn)


def test_iam_policy_refuses_a_file_that_is_not_a_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = _ops_conf(tmp_path, "", "")
    (tmp_path / "roles.json").write_text('{"shipments-glue-job": {}}')
    for bad in (tmp_path / "missing.json", tmp_path / "roles.json"):
        assert main(["iam-policy", "--conf", str(conf), "--policy", str(bad)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("shipments iam-policy: error: ") and len(err.strip().splitlines()) == 1
