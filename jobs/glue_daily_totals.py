"""AWS Glue 5.1 job script for the daily job.

Job parameters (Glue passes them as ``--key value``)::

    --date 2026-11-02                 required
    --config_file glue.yaml           optional, default glue.yaml (shipped with --extra-files);
                                      not --conf, which Glue reserves for Spark settings
    --raw s3://... / --lake s3://...  optional overrides of the config's paths

Outside Glue (no ``awsglue`` module) the script takes the same arguments as
``shipments daily``, so it can be tried locally. Either way the same function runs as on the
command line.
"""

from __future__ import annotations

import sys

from shipments.cli import main


def glue_arguments(argv: list[str]) -> list[str]:
    """``shipments daily`` arguments from Glue's job parameters (``argv`` is ``sys.argv``)."""
    try:
        from awsglue.utils import getResolvedOptions  # only inside the Glue runtime
    except ImportError:
        return argv[1:]
    optional = [name for name in ("config_file", "raw", "lake") if f"--{name}" in argv]
    options = getResolvedOptions(argv, ["date", *optional])
    arguments = ["--date", options["date"], "--conf", options.get("config_file", "glue.yaml")]
    for name in ("raw", "lake"):
        if name in options:
            arguments += [f"--{name}", options[name]]
    return arguments


if __name__ == "__main__":
    sys.exit(main(["daily", *glue_arguments(sys.argv)]))
