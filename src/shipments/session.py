"""The one place a SparkSession is built; everything else receives it as an argument."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Mapping

from pyspark.sql import SparkSession

from shipments.config import SparkConfig
from shipments.errors import ConfigError

# Settings every run relies on, whatever the platform or config says: ship_date is the UTC
# calendar date, so the session zone must be UTC.
_REQUIRED = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
}
_DELTA = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def local_jars(jars_dir: str) -> list[str]:
    """The pinned jars ``make setup`` put in ``jars_dir``.

    Raises:
        ConfigError: the folder holds no jars (set-up was not run).
    """
    jars = sorted(glob.glob(os.path.join(jars_dir, "*.jar")))
    if not jars:
        raise ConfigError(f"no jars in {jars_dir}: run `make setup` first")
    return jars


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
        if config.log_config:
            # Quoted: a checkout path with a space would otherwise split the JVM option.
            builder = builder.config(
                "spark.driver.extraJavaOptions", f'"-Dlog4j2.configurationFile={config.log_config}"'
            )
    runtime = {**(extra or {}), **_REQUIRED}
    for key, value in {**_DELTA, **config.settings, **runtime}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    # On EMR/Glue the session may already exist; runtime settings still have to hold.
    for key, value in runtime.items():
        spark.conf.set(key, value)
    return spark
