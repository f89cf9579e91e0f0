"""Local stand-ins for the services the pipelines talk to (tests, demos, benchmarks only)."""
