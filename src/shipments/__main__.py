import sys

from shipments.cli import main

sys.exit(main())
