"""Small Spark work started on a thread of its own while the driver goes on.

A run makes a few small reads and commits on other tables (the checks' reads of the published
totals and of the ledger, the ``dq_results`` append, the creation of a new lake's tables) that
wait mostly on the driver: Delta's snapshot loading and commit protocol, job scheduling. Each
one alone is ~0.3-2 s; started beside the run's own jobs, they overlap them instead of adding
to them. The thread inherits the caller's Spark local properties (a backfill worker's scheduler
pool, the job description).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from pyspark import InheritableThread

T = TypeVar("T")


class Background(Generic[T]):
    """``fn()`` running on its own thread from construction; ``result()`` waits for it and
    returns its value or raises its exception, in the caller's thread."""

    def __init__(self, fn: Callable[[], T], name: str) -> None:
        self._fn = fn
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = InheritableThread(self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when no error was raised
