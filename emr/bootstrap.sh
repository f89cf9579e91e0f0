#!/usr/bin/env bash
# EMR bootstrap action: install the shipments wheel on every node, with the stream's extra (pip
# fetches the dependencies, PyYAML, prometheus-client, deltalake and pyarrow, from PyPI: the nodes
# need to reach it).
# Spark and Delta are NOT installed: the cluster's own (EMR 7.12: Spark 3.5.6-amzn,
# Delta 3.3.2-amzn via the delta-defaults classification) are used.
# Usage (as a bootstrap action): bootstrap.sh s3://ARTIFACTS/shipments/dist/shipments-0.1.0-py3-none-any.whl
set -euo pipefail
wheel_uri="$1"
tmp=$(mktemp -d)
aws s3 cp "$wheel_uri" "$tmp/"
wheel=$(ls "$tmp"/*.whl)
sudo python3 -m pip install --quiet "${wheel}[stream]"
rm -rf "$tmp"
