import os

from setuptools import find_packages, setup

setup(
    name="shipments",
    # `make package` stamps the commit into the version (0.1.0+g<commit>); a plain install is 0.1.0.
    version=os.environ.get("SHIPMENTS_VERSION", "0.1.0"),
    description="Raw shipment data -> trustworthy Delta tables on Spark, in batch and in real time",
    package_dir={"": "src"},
    packages=find_packages("src"),
    python_requires=">=3.11,<3.12",
    # On EMR and Glue, Spark and Delta come with the platform: only the `local` extra pins them.
    # prometheus-client: run metrics pushed to a Pushgateway (metrics.pushgateway).
    install_requires=["PyYAML>=6,<7", "prometheus-client==0.26.0"],
    extras_require={
        "local": ["pyspark==3.5.6", "delta-spark==3.3.2"],
        # the stream's driver-side MERGEs of its tables (stream.driver_merge_max_mb): delta-rs,
        # and pyarrow for PySpark's Arrow collect of the micro-batch
        "stream": ["deltalake==1.6.6", "pyarrow==26.0.1"],
        # `shipments report`: the HTML page's charts (plotly.js is inlined: readable offline)
        "report": ["plotly==7.1.0"],
        "dev": [
            "chispa==0.12.0",
            "pytest==9.2.0",
            "boto3==1.44.8",
            "duckdb==2.0.1",
            "ruff==0.17.6",
            "mypy==2.4.1",
            # `shipments generate --layout dms-parquet` writes Parquet as DMS does
            "pyarrow==26.0.1",
            "types-PyYAML==6.0.12.20261122",
            # the streaming tests, `make demo-stream` and the stream benchmark: a Kafka client
            # for the local broker, and moto's server as the local DynamoDB stand-in
            "kafka-python==3.0.12",
            "moto[server]==5.2.5",
            # `make package`: the wheel without build isolation (offline), the venv archive for EMR
            "wheel==0.48.0",
            "plotly==7.1.0",
            "venv-pack==0.2.0",
        ],
    },
    entry_points={"console_scripts": ["shipments=shipments.cli:main"]},
)
