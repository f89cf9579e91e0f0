"""spark-submit entry point on EMR: ``spark-submit [...] emr_main.py <shipments arguments>``.

The same command line as the ``shipments`` console script (``backfill --start D --end D``,
``daily --date D``, ``restore ...``); its exit status fails the step when a date failed.
"""

from __future__ import annotations

import sys

from shipments.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
