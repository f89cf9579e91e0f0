"""The daily batch job and what operates on its tables: the run ledger, backfill, restore and
reconcile. ``plan`` builds the one chain of transforms both ``daily`` and ``reconcile`` use."""
