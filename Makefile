# shipments: `make setup` then `make test` on a fresh machine; `make help` lists everything.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
AIRFLOW_VENV := build/airflow-venv
MVN := mvn -q -B -Dmaven.repo.local=$(CURDIR)/.m2
DEMO_DIR := data/demo

.DEFAULT_GOAL := help
.PHONY: help setup jars package test test-fast lint demo demo-stream bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(VENV)/.installed jars build/wheelhouse/.done $(AIRFLOW_VENV)/.installed ## create .venv, install pinned packages, fetch the pinned JVM jars
	@$(PY) -c "import pyspark, delta; print('pyspark', pyspark.__version__)"
	@ls jars/spark/*.jar jars/kafka/*.jar >/dev/null && echo "jars: $$(ls jars/spark | wc -l) in jars/spark, $$(ls jars/kafka | wc -l) in jars/kafka"

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[local,stream,dev]"
	touch $@

# Airflow in its own venv (the DAG test loads dags/ with it): its pins never reach .venv
$(AIRFLOW_VENV)/.installed: dags/requirements.txt
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install -q -r dags/requirements.txt
	touch $@

# The wheels that `make package` puts in the EMR venv archive (offline afterwards): PyYAML and
# prometheus-client, and the stream's driver MERGE (shipments[stream]: deltalake and pyarrow, with
# deltalake's own dependencies)
build/wheelhouse/.done: setup.py $(VENV)/.installed
	$(PY) -m pip download -q --only-binary=:all: --no-deps -d build/wheelhouse "PyYAML==6.0.4" "prometheus-client==0.26.0" \
		"deltalake==1.6.6" "pyarrow==26.0.1" "arro3-core==0.9.1" "typing-extensions==4.16.0" "Deprecated==1.3.1" "wrapt==2.5.2"
	touch $@

package: $(VENV)/.installed build/wheelhouse/.done ## dist/: version-stamped wheel, EMR venv archive, entry scripts, manifest
	$(PY) -m shipments.devtools.package --out dist

jars: jars/spark/.done jars/kafka/.done jars/s3a/.done jars/lineage/.done ## resolve the pinned JVM jars from Maven Central (once)

jars/spark/.done: jvm/spark-jars.xml
	rm -rf jars/spark
	$(MVN) -f jvm/spark-jars.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/jars/spark
	touch $@

jars/kafka/.done: jvm/kafka-broker.xml
	rm -rf jars/kafka
	$(MVN) -f jvm/kafka-broker.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/jars/kafka
	touch $@

# S3A for local runs against S3 or moto (conf/local-s3.yaml): hadoop-aws 3.3.4 + the 280 MB SDK bundle
jars/s3a/.done: jvm/s3a-jars.xml
	rm -rf jars/s3a
	$(MVN) -f jvm/s3a-jars.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/jars/s3a
	touch $@

# The OpenLineage Spark listener (one shaded jar, ~43 MB), added to a local session only when lineage.enabled
jars/lineage/.done: jvm/lineage-jars.xml
	rm -rf jars/lineage
	$(MVN) -f jvm/lineage-jars.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/jars/lineage
	touch $@

test: ## run the whole test suite
	$(PY) -m pytest

test-fast: ## the suite without the slow end-to-end tests
	$(PY) -m pytest -m "not slow"

lint: ## ruff (lint) and mypy (strict on src/)
	$(VENV)/bin/ruff check src tests jobs bench emr dags
	$(VENV)/bin/mypy

demo: ## generate 4 days of raw data, run the daily job on them, write the HTML report
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/shipments generate --out $(DEMO_DIR)/raw --start 2026-11-01 --days 4 --shipments-per-day 5000
	$(VENV)/bin/shipments daily --raw $(DEMO_DIR)/raw --lake $(DEMO_DIR)/lake --date 2026-11-02
	$(VENV)/bin/shipments daily --raw $(DEMO_DIR)/raw --lake $(DEMO_DIR)/lake --date 2026-11-03
	$(PY) -m shipments.devtools.show --lake $(DEMO_DIR)/lake
	$(VENV)/bin/shipments report --raw $(DEMO_DIR)/raw --lake $(DEMO_DIR)/lake --out $(DEMO_DIR)/report.html

demo-stream: ## status stream: local Kafka broker, generated events -> Delta, then `shipments status`
	rm -rf $(DEMO_DIR)/stream
	$(VENV)/bin/shipments generate --out $(DEMO_DIR)/stream/raw --start 2026-11-01 --days 1 --shipments-per-day 2000
	$(PY) -m shipments.devtools.kafka_broker --topic shipment-events --partitions 2 \
	  --produce $(DEMO_DIR)/stream/raw/events --workdir $(DEMO_DIR)/stream/kafka -- \
	  $(VENV)/bin/shipments stream --lake $(DEMO_DIR)/stream/lake --source kafka \
	  --bootstrap-servers {bootstrap} --topic shipment-events \
	  --checkpoint $(DEMO_DIR)/stream/checkpoint --available-now
	$(VENV)/bin/shipments status --lake $(DEMO_DIR)/stream/lake S20261101-0000001

bench: ## benchmarks; the report lands in bench/REPORT.md
	$(PY) -m bench

clean: ## remove generated data (keeps .venv and jars)
	rm -rf data bench/work .pytest_cache
