"""Keep secrets out of logs and the run ledger.

Nothing secret belongs in the repository or the config: on AWS the instance profile or job role
provides credentials, locally the environment does. Should a secret reach a Spark setting all
the same (a key pasted into ``spark.settings``, a ``sasl.jaas.config``), its value is masked:

- ``register_secrets`` remembers the values of settings whose names look secret (the session
  builder registers every setting it applies);
- ``redact`` masks those values, ``name=value`` pairs with a secret-looking name, credentials
  inside URIs and AWS access key ids in any text;
- ``install_log_redaction`` makes every log record pass through ``redact`` (a record factory,
  so records of every logger and handler are covered, whatever their propagation);
- ``errors.describe`` (the console's last line and ``pipeline_runs.error``) redacts its text.

Spark's own redaction (UI, event log) is pattern-based (``spark.redaction.regex``); the session
sets it to ``SPARK_REDACTION_REGEX`` so both sides mask the same names.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "*********(redacted)"

_SECRET_WORDS = r"secret|password|passwd|token|credentials?|access[._-]?key|private[._-]?key|api[._-]?key|sasl[._]jaas"
# Spark matches this against setting names (and values of spark.redaction.string.regex).
SPARK_REDACTION_REGEX = f"(?i){_SECRET_WORDS}"
_SECRET_NAME = re.compile(_SECRET_WORDS, re.IGNORECASE)
# Names that match the words but hold no secret: which provider or class to use.
_NOT_SECRET = re.compile(r"(?i)(provider|impl|class|regex|enabled|type|path|file)$")
_PAIR = re.compile(
    rf"""(?ix)
    (?P<name>[\w.\-]*(?:{_SECRET_WORDS})[\w.\-]*)   # a secret-looking name
    (?P<sep>["']?\s*[=:]\s*["']?)                   # = or :, maybe quoted (JSON, YAML, key=value)
    (?P<value>[^\s"',;}}\]]+)                       # the value, up to a delimiter
    """
)
_URI_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][\w+.-]*://)[^/\s:@]+:[^\s@]+@")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
_MIN_SECRET = 6  # shorter values ("true", "1") would mask ordinary words everywhere

_lock = threading.Lock()
_known: set[str] = set()
_installed = False


def is_secret_name(name: str) -> bool:
    """True when a setting's name says its value is a secret (``fs.s3a.secret.key``, ``*.password``)."""
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET.search(name)


def register_secrets(settings: Mapping[str, str]) -> None:
    """Remember the values of secret-looking ``settings`` so ``redact`` masks them anywhere."""
    values = {str(v) for k, v in settings.items() if is_secret_name(str(k)) and len(str(v)) >= _MIN_SECRET}
    if values:
        with _lock:
            _known.update(values)


def mask_settings(settings: Mapping[str, str]) -> dict[str, str]:
    """``settings`` with the value of every secret-looking name replaced by ``MASK``."""
    return {k: MASK if is_secret_name(k) else v for k, v in settings.items()}


def redact(text: str) -> str:
    """``text`` with registered secret values, secret-looking ``name=value`` pairs, credentials
    in URIs and AWS access key ids masked."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    text = _PAIR.sub(_mask_pair, text)
    text = _URI_USERINFO.sub(lambda m: m.group("scheme") + "***:***@", text)
    return _AWS_KEY_ID.sub(MASK, text)


def _mask_pair(match: re.Match[str]) -> str:
    name, value = match.group("name"), match.group("value")
    # A masked value stays masked; a provider, class or path (or a name saying so) is no secret.
    if value.startswith("*") or _NOT_SECRET.search(name) or _NOT_SECRET.search(value):
        return match.group(0)
    return name + match.group("sep") + MASK


def install_log_redaction() -> None:
    """Pass every log record created from now on through ``redact`` (message and traceback).

    Idempotent. A record factory rather than a handler filter: filters on one handler miss
    loggers that do not propagate to it (the stream's JSON metrics logger, for one).
    """
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    make_record = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call is reported by logging itself, later
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(formatter.formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(redacting_factory)
