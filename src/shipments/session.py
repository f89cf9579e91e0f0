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
from shipments.ops_config import LineageConfig
from shipments.redaction import SPARK_REDACTION_REGEX, mask_settings, register_secrets
from shipments.spark_settings import DELTA_SETTINGS, REQUIRED_SETTINGS

log = logging.getLogger(__name__)

LINEAGE_LISTENER = "io.openlineage.spark.agent.OpenLineageSparkListener"


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
    endpoint = s3.endpoint_in(env)
    if endpoint:
        settings[hadoop + "endpoint"] = endpoint
        settings[hadoop + "connection.ssl.enabled"] = str(endpoint.startswith("https://")).lower()
    if s3.path_style:
        settings[hadoop + "path.style.access"] = "true"
    region = s3.region_in(env)
    if region:
        settings[hadoop + "endpoint.region"] = region
    return settings


def lineage_jars_dir(config: SparkConfig) -> str:
    """Where ``make setup`` put the OpenLineage listener: ``jars/lineage`` beside the Spark jars."""
    return os.path.join(os.path.dirname(config.jars_dir.rstrip(os.sep)), "lineage")


def lineage_settings(lineage: LineageConfig, listeners: str = "") -> dict[str, str]:
    """Spark settings that make the OpenLineage listener write run events to ``lineage.output``.

    The same on every platform (README "Lineage (optional)"); empty when lineage is off. The file
    transport is the only one set, so the listener sends nothing over the network; ``listeners``
    (a configured ``spark.extraListeners``) are kept before it.
    """
    if not lineage.enabled:
        return {}
    return {
        "spark.extraListeners": ",".join(filter(None, [listeners, LINEAGE_LISTENER])),
        "spark.openlineage.transport.type": "file",
        "spark.openlineage.transport.location": lineage.output,
        "spark.openlineage.namespace": lineage.namespace,
    }


def local_startup_settings(config: SparkConfig, lineage: LineageConfig) -> dict[str, str]:
    """The static settings a local session starts with: ``spark.jars`` (the pinned jars, plus
    the OpenLineage listener's when lineage is on) and the listener's own settings.

    The listener's jar goes beside Delta on ``spark.jars`` (one class loader), not on the
    driver's class path: the listener recognizes Delta's write commands by their classes.

    Raises:
        ConfigError: the jars are missing (set-up was not run).
    """
    jars = local_jars(config.jars_dir)
    if not lineage.enabled:
        return {"spark.jars": ",".join(jars)}
    jars += local_jars(lineage_jars_dir(config))
    listener = lineage_settings(lineage, config.settings.get("spark.extraListeners", ""))
    return {"spark.jars": ",".join(jars), **listener}


def build_spark(
    config: SparkConfig,
    app_name: str = "shipments",
    extra: Mapping[str, str] | None = None,
    *,
    lineage: LineageConfig | None = None,
) -> SparkSession:
    """Build (or join) the SparkSession for ``config.platform``.

    ``local`` starts Spark with the project's pinned Delta and Kafka jars and never touches the
    network; ``emr`` and ``glue`` join the platform's session, whose Delta Lake is enabled by
    the cluster classification or the Glue ``--datalake-formats delta`` parameter. ``extra``
    settings (a command's own, e.g. the stream's state store) apply on top of the config's.
    With ``lineage`` enabled, a local session also starts the OpenLineage listener (jar from
    :func:`lineage_jars_dir`, settings from :func:`lineage_settings`); on EMR and Glue the job is
    given both at submission, and a session without the listener is logged as a warning.

    Raises:
        ConfigError: a local session's jars are missing (set-up was not run).
    """
    lineage = lineage or LineageConfig()
    builder = SparkSession.builder.appName(app_name)
    startup: dict[str, str] = {}
    if config.platform == "local":
        startup = local_startup_settings(config, lineage)
        builder = (
            builder.master(config.master)
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
    # The listener's settings are static (read once, when the context starts): never in runtime.
    # The pinned jars come first: a spark.jars of the config's own replaces them.
    jars = {key: startup.pop(key) for key in ("spark.jars",) if key in startup}
    settings = {**jars, **DELTA_SETTINGS, **config.settings, **startup, **runtime}
    log.debug("%s: Spark settings %s", app_name, mask_settings(settings))
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    # On EMR/Glue the session may already exist; runtime settings still have to hold.
    for key, value in runtime.items():
        spark.conf.set(key, value)
    if lineage.enabled and config.platform != "local":
        listeners = spark.sparkContext.getConf().get("spark.extraListeners") or ""
        if LINEAGE_LISTENER not in listeners:
            log.warning(
                "lineage.enabled, but the %s session has no OpenLineage listener: give the job the "
                "jar and the settings of README 'Lineage (optional)'; no lineage is recorded",
                config.platform,
            )
    return spark
