"""The project's error hierarchy.

Every error a user can cause (a bad argument, an unreadable config, missing input, data that
breaks an invariant) is a ``ShipmentsError``: the command line prints its message as one line and
exits non-zero without a traceback. Anything else is a bug or an infrastructure failure.
"""

from __future__ import annotations

from shipments.redaction import redact

# Exit codes of the command line, all in one place.
EXIT_OK = 0
EXIT_FAILED = 1  # a run failed, or a date of a backfill did
EXIT_USAGE = 2  # a bad argument or config
EXIT_DISAGREE = 3  # reconcile: raw and table disagree
EXIT_UNKNOWN = 4  # status: no such shipment
EXIT_INTERRUPTED = 130


class ShipmentsError(Exception):
    """Base class: the message says what was expected, what was found and what to do."""

    exit_code = EXIT_FAILED


class ConfigError(ShipmentsError):
    """The configuration file or a command-line override is invalid."""

    exit_code = EXIT_USAGE


class InputError(ShipmentsError):
    """Input data is missing or unreadable (a raw folder, a corrupt file)."""


class DataQualityError(ShipmentsError):
    """The data broke an invariant the run refuses to write past (e.g. records not conserved)."""


class TableError(ShipmentsError):
    """A Delta table is not in the state the command needs (e.g. a version that is gone)."""


def describe(exc: BaseException, limit: int = 1000) -> str:
    """One line saying what went wrong, for the console and for ``pipeline_runs.error``.

    A Spark failure arrives as a Py4J error whose own text is only "An error occurred while
    calling o123.save"; the useful parts are the Java exception's first line and its root
    cause, so both are given.
    """
    # Secrets (a key in a Spark setting echoed by an exception) are masked: this text is printed
    # and stored in pipeline_runs.
    return redact(_describe(exc, limit))[:limit]


def _describe(exc: BaseException, limit: int) -> str:
    # Py4JJavaError carries java_exception; PySpark's converted errors keep it as _origin.
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    if java is None:
        return _first_line(f"{type(exc).__name__}: {exc}" if not isinstance(exc, ShipmentsError) else str(exc), limit)
    top = _first_line(str(java.toString()), limit)
    root = java
    while root.getCause() is not None and root.getCause() != root:
        root = root.getCause()
    cause = _first_line(str(root.toString()), limit)
    text = top if cause in top else f"{top} (caused by {cause})"
    return text[:limit]


def _first_line(text: str, limit: int) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "unknown error")[:limit]
