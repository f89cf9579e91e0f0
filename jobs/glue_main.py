"""AWS Glue 5.1 job script for any shipments command (deployed by ``shipments deploy --target glue``).

Glue passes job parameters as ``--key value``; the one this script reads is
``--shipments_args``: the whole ``shipments`` command line as one string, e.g.
``daily --conf glue.yaml --raw s3://... --lake s3://... --date 2026-11-02``. The scheduled
daily run passes ``scheduled --time <fire time> ...``; the stream job ``stream ... --available-now``.
Outside Glue (no ``awsglue``) the script takes the ``shipments`` arguments directly.
"""

from __future__ import annotations

import shlex
import sys

from shipments.cli import main


def glue_arguments(argv: list[str]) -> list[str]:
    """The ``shipments`` arguments from Glue's job parameters (``argv`` is ``sys.argv``)."""
    try:
        from awsglue.utils import getResolvedOptions  # only inside the Glue runtime
    except ImportError:
        return argv[1:]
    return shlex.split(getResolvedOptions(argv, ["shipments_args"])["shipments_args"])


if __name__ == "__main__":
    sys.exit(main(glue_arguments(sys.argv)))
