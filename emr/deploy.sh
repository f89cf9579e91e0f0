#!/usr/bin/env bash
# Build the wheel and upload what EMR steps and Glue jobs need to an artifacts bucket.
#   emr/deploy.sh ARTIFACTS_BUCKET
# Credentials come from your AWS profile / role; none are stored in this repository.
set -euo pipefail
bucket="${1:?usage: emr/deploy.sh ARTIFACTS_BUCKET}"
cd "$(dirname "$0")/.."
rm -rf dist && .venv/bin/python -m pip wheel --quiet --no-deps -w dist .
prefix="s3://${bucket}/shipments"
aws s3 cp dist/ "${prefix}/dist/" --recursive --exclude "*" --include "*.whl"
aws s3 cp conf/ "${prefix}/conf/" --recursive --exclude "*" --include "*.yaml"
aws s3 cp jobs/ "${prefix}/jobs/" --recursive --exclude "*" --include "*.py"
aws s3 cp emr/bootstrap.sh "${prefix}/emr/bootstrap.sh"
aws s3 cp jobs/emr_main.py "${prefix}/jobs/emr_main.py"   # generic entry point of backfill steps
echo "uploaded to ${prefix}/ (wheel: $(ls dist/*.whl))"
