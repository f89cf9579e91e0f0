"""The project's error hierarchy.

Every error a user can cause (a bad argument, an unreadable config, missing input, data that
breaks an invariant) is a ``ShipmentsError``: the command line prints its message as one line and
exits non-zero without a traceback. Anything else is a bug or an infrastructure failure.
"""

from __future__ import annotations


class ShipmentsError(Exception):
    """Base class: the message says what was expected, what was found and what to do."""

    exit_code = 1


class ConfigError(ShipmentsError):
    """The configuration file or a command-line override is invalid."""

    exit_code = 2


class InputError(ShipmentsError):
    """Input data is missing or unreadable (a raw folder, a corrupt file)."""


class DataQualityError(ShipmentsError):
    """The data broke an invariant the run refuses to write past (e.g. records not conserved)."""


class TableError(ShipmentsError):
    """A Delta table is not in the state the command needs (e.g. a version that is gone)."""
