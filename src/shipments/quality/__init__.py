"""Data-quality checks: declared in config (``ops_config.CheckSpec``), evaluated in the passes a
run makes anyway, recorded in ``dq_results``."""
