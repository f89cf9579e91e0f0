"""The one place a SparkSession is built; everything else receives it as an argument."""

from __future__ import annotations

import glob
import logging
import os
import sys
from collections.abc import Mapping

from pyspark.sql import SparkSession

from shipments.config import S3Config, SparkConfig
from shipments.errors import ConfigError
from shipments.redaction import SPARK_REDACTION_REGEX, mask_settings, register_secrets
from shipments.spark_settings import DELTA_SETTINGS, REQUIRED_SETTINGS

log = logging.getLogger(__name__)


def local_jars(jars_dir: str) -> list[str]:
    """The pinned jars ``make setup`` put in ``jars_dir``.

    Raises:
        ConfigError: the folder holds no jars (set-up was not run).
    """
    jars = sorted(glob.glob(os.path.join(jars_dir, "*.jar")))
    if not jars:
        raise ConfigError(f"no jars in {jars_dir}: run `make setup` first")
    return jars


def s3a_settings(s3: S3Config, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Spark settings of a local session that reads and writes ``s3a://`` (and ``s3://``).

    ``s3://`` is served by S3A too, as on EMR 7.10+ and Glue 5.1. No credentials: S3A's default
    chain reads them from the environment. The endpoint and region come from ``s3`` or, when
    empty there, from ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` and ``AWS_REGION`` /
    ``AWS_DEFAULT_REGION`` (the variables boto3 reads), so a local S3 stand-in is named in the
    environment, never in the repository. Empty when ``s3.jars_dir`` holds no jars.

    Raises:
        ConfigError: ``s3.jars_dir`` is set but holds no jars (set-up was not run).
    """
    if not s3.jars_dir:
        return {}
    local_jars(s3.jars_dir)
    env = os.environ if environ is None else environ
    hadoop = "spark.hadoop.fs.s3a."
    settings = {
        # Local mode is one JVM: the class path is enough, and nothing is copied per run (spark.jars
        # would copy the 280 MB SDK bundle into every application's work folder).
        "spark.driver.extraClassPath": os.path.join(s3.jars_dir, "*"),
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.AbstractFileSystem.s3.impl": "org.apache.hadoop.fs.s3a.S3A",
    }
    endpoint = s3.endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or ""
    if endpoint:
        settings[hadoop + "endpoint"] = endpoint
        settings[hadoop + "connection.ssl.enabled"] = str(endpoint.startswith("https://")).lower()
    if s3.path_style:
        settings[hadoop + "path.style.access"] = "true"
    region = s3.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""
    if region:
        settings[hadoop + "endpoint.region"] = region
    return settings


def build_spark(
    config: SparkConfig, app_name: str = "shipments", extra: Mapping[str, str] | None = None
) -> SparkSession:
    """Build (or join) the SparkSession for ``config.platform``.

    ``local`` starts Spark with the project's pinned Delta and Kafka jars and never touches the
    network; ``emr`` and ``glue`` join the platform's session, whose Delta Lake is enabled by
    the cluster classification or the Glue ``--datalake-formats delta`` parameter. ``extra``
    settings (a command's own, e.g. the stream's state store) apply on top of the config's.
    """
    builder = SparkSession.builder.appName(app_name)
    if config.platform == "local":
        builder = (
            builder.master(config.master)
            .config("spark.jars", ",".join(local_jars(config.jars_dir)))
            # Python workers run this interpreter (the venv), which can import shipments; not
            # whatever `python3` comes first on PATH.
            .config("spark.pyspark.python", sys.executable)
        )
        # PySpark's SparkContext takes the workers' interpreter for Python functions (the
        # Firehose record splitter) from this variable, not from the setting above.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        for key, value in s3a_settings(config.s3).items():
            builder = builder.config(key, value)
        if config.log_config:
            # Quoted: a checkout path with a space would otherwise split the JVM option.
            builder = builder.config(
                "spark.driver.extraJavaOptions", f'"-Dlog4j2.configurationFile={config.log_config}"'
            )
    runtime = {**(extra or {}), **REQUIRED_SETTINGS}
    # Values of settings that look like secrets are masked in every log line and ledger error
    # from here on, and Spark's own redaction (UI, event log) matches the same names.
    register_secrets({**config.settings, **runtime})
    builder = builder.config("spark.redaction.regex", SPARK_REDACTION_REGEX)
    log.debug("%s: Spark settings %s", app_name, mask_settings({**DELTA_SETTINGS, **config.settings, **runtime}))
    for key, value in {**DELTA_SETTINGS, **config.settings, **runtime}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    # On EMR/Glue the session may already exist; runtime settings still have to hold.
    for key, value in runtime.items():
        spark.conf.set(key, value)
    return spark
