"""Retry of Delta commit conflicts: what counts as one, and exponential backoff with jitter."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# Delta's commit-conflict exceptions (Scala and Java-friendly classes share these simple names).
CONFLICT_EXCEPTIONS = frozenset(
    {
        "DeltaConcurrentModificationException",
        "ConcurrentWriteException",
        "ConcurrentAppendException",
        "ConcurrentDeleteReadException",
        "ConcurrentDeleteDeleteException",
        "ConcurrentTransactionException",
        "MetadataChangedException",
        "ProtocolChangedException",
    }
)

DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_BACKOFF_SECONDS = 1.0


def is_commit_conflict(exc: BaseException) -> bool:
    """True when ``exc`` (or anything it wraps, Python or Java) is a Delta commit conflict.

    Detected by class name because the error can arrive as delta-spark's Python class, as a
    ``Py4JJavaError`` holding the Java exception, or wrapped in another Java exception.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if any(cls.__name__ in CONFLICT_EXCEPTIONS for cls in type(current).__mro__):
            return True
        java = getattr(current, "java_exception", None) or getattr(current, "_origin", None)
        if java is not None and _java_is_conflict(java):
            return True
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False


def _java_is_conflict(java: Any) -> bool:
    try:
        throwable, depth = java, 0
        while throwable is not None and depth < 20:
            cls = throwable.getClass()
            while cls is not None:
                if cls.getSimpleName() in CONFLICT_EXCEPTIONS:
                    return True
                cls = cls.getSuperclass()
            throwable, depth = throwable.getCause(), depth + 1
    except Exception:  # a dead gateway or a non-Java object: not something we can classify
        return False
    return False


def run_with_retry(
    action: Callable[[int], T],
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, int]:
    """Call ``action(attempt)`` until it returns, retrying only Delta commit conflicts.

    Backoff is exponential with full jitter, so parallel days that collided do not collide
    again in lockstep. Any other error, or the last conflict, is raised.
    """
    for attempt in range(1, max_attempts + 1):
        try:
            return action(attempt), attempt
        except Exception as exc:
            if attempt == max_attempts or not is_commit_conflict(exc):
                raise
            delay = random.uniform(0, backoff_seconds * 2 ** (attempt - 1))
            log.warning(
                "commit conflict on attempt %d/%d (%s); retrying in %.1fs",
                attempt,
                max_attempts,
                type(exc).__name__,
                delay,
            )
            sleep(delay)
    raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
