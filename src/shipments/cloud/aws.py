"""boto3 calls, recorded: a dry run prints what would change; a real run says what changed.

Reads always run (a plan needs the account's current state); calls that change something run
only when not a dry run. Every call, read or change, is recorded in order, so ``--dry-run``
prints each one and a second deploy can prove it changed nothing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from shipments.errors import EXIT_OK, ConfigError, ShipmentsError


class CloudError(ShipmentsError):
    """An AWS call failed (missing bucket, access denied, throttled...)."""


@dataclasses.dataclass(frozen=True)
class Call:
    """One AWS API call: service, operation and parameters."""

    service: str
    operation: str
    params: dict[str, Any]
    changes: bool

    def line(self) -> str:
        shown = json.dumps(self.params, sort_keys=True, default=str)
        return f"{'CHANGE' if self.changes else 'read  '} {self.service}.{self.operation} {shown}"


class Recorded:
    """What a cloud command's result shares: its recorded calls, which of them change something,
    and the lines its summary shows (every call on a dry run, else the changes)."""

    dry_run: bool
    calls: list[Call]

    @property
    def changes(self) -> list[Call]:
        return [c for c in self.calls if c.changes]

    @property
    def exit_code(self) -> int:
        return EXIT_OK

    def call_lines(self) -> list[str]:
        return [f"  {c.line()}" for c in (self.calls if self.dry_run else self.changes)]


class Aws:
    """boto3 clients for one region; every call goes through ``read`` or ``change``."""

    def __init__(self, region: str, *, dry_run: bool, client_factory: Callable[..., Any] | None = None) -> None:
        if not region:
            raise ConfigError("deploy.region is required (the AWS region to deploy to)")
        self.region = region
        self.dry_run = dry_run
        self.calls: list[Call] = []
        self._factory = client_factory
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            if self._factory is None:
                import boto3  # only the cloud commands need it

                self._factory = boto3.client
            # Credentials and (for a stand-in) AWS_ENDPOINT_URL come from the environment.
            self._clients[service] = self._factory(service, region_name=self.region)
        return self._clients[service]

    def read(self, service: str, operation: str, **params: Any) -> Any:
        """Run a call that changes nothing."""
        self.calls.append(Call(service, operation, params, False))
        return self._invoke(service, operation, params)

    def change(self, service: str, operation: str, **params: Any) -> Any:
        """Run a call that changes something, unless this is a dry run (then None)."""
        self.calls.append(Call(service, operation, params, True))
        if self.dry_run:
            return None
        return self._invoke(service, operation, params)

    def find(self, service: str, operation: str, **params: Any) -> Any:
        """``read``, or None when the thing does not exist (``is_not_found``)."""
        try:
            return self.read(service, operation, **params)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    def _invoke(self, service: str, operation: str, params: dict[str, Any]) -> Any:
        try:
            return getattr(self.client(service), operation)(**params)
        except Exception as exc:
            if is_not_found(exc):
                raise
            raise CloudError(f"{service}.{operation} failed: {error_text(exc)}") from exc


def is_not_found(exc: BaseException) -> bool:
    """True for the 'no such thing' errors a plan expects (then it creates the thing)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in {"EntityNotFoundException", "ResourceNotFoundException", "NoSuchKey", "404", "NotFound"}


def error_text(exc: BaseException) -> str:
    """An AWS error's code and message (or the exception's first line)."""
    error = getattr(exc, "response", {}).get("Error", {})
    if error:
        return f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": ")
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` (or ``s3a://``) -> (``bucket``, ``a/b``)."""
    scheme, _, rest = uri.partition("://")
    if scheme not in {"s3", "s3a"} or not rest:
        raise ConfigError(f"expected an s3:// URI, got {uri!r}")
    bucket, _, key = rest.partition("/")
    return bucket, key.strip("/")


def s3_uri(uri: str) -> str:
    """The ``s3://`` form of an ``s3a://`` or ``s3://`` URI (what AWS services expect)."""
    bucket, key = split_s3(uri)
    return f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
