#!/usr/bin/env bash
# Package and deploy to EMR on EC2: `make package`, then `shipments deploy --target emr`.
#   emr/deploy.sh [--date D] [--backfill-start D1 --backfill-end D2] [--dry-run]
# Settings (buckets, region, roles) come from conf/emr.yaml's deploy section; credentials from
# your AWS profile / role (the deploy role); none are stored in this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
make package
.venv/bin/shipments deploy --conf conf/emr.yaml --target emr "$@"
