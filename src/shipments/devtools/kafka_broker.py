"""A single-node Kafka broker (KRaft) on 127.0.0.1 from the pinned jars in ``jars/kafka``.

Used by the streaming tests, ``make demo-stream`` and the streaming benchmark::

    with KafkaBroker.start(workdir, jars_dir) as broker:
        broker.create_topic("shipment-events", partitions=2)
        ...  # broker.bootstrap_servers is "127.0.0.1:<port>"

The broker listens on free ports of 127.0.0.1 only, keeps its data and log under ``workdir``,
and is stopped by its pid (SIGTERM, then SIGKILL after a grace period).

From the shell, run a command with a broker around it (``KAFKA_BOOTSTRAP`` is exported)::

    python -m shipments.devtools.kafka_broker --topic T [--produce DIR] -- COMMAND ...

(``{bootstrap}`` in COMMAND is replaced by the broker's HOST:PORT.)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_JARS = ROOT / "jars" / "kafka"
HOST = "127.0.0.1"


class BrokerError(RuntimeError):
    """The broker did not start, or did not answer in time."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    return str(Path(home) / "bin" / "java") if home else "java"


def _properties(workdir: Path, port: int, controller_port: int) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{HOST}:{controller_port}",
            f"listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={workdir / 'data'}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=24",
            "",
        ]
    )


_LOG4J = """log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
"""

# A small heap and the client compiler: the broker starts in a few seconds and leaves the
# machine's two cores to Spark.
_JVM_OPTS = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]


class KafkaBroker:
    """A running single-node broker; stop it with ``stop()`` or by leaving the ``with`` block."""

    def __init__(self, process: subprocess.Popen[bytes], workdir: Path, port: int) -> None:
        self.process = process
        self.workdir = workdir
        self.port = port

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    @classmethod
    def start(
        cls, workdir: str | os.PathLike[str], jars_dir: str | os.PathLike[str] = DEFAULT_JARS, *, timeout: float = 90.0
    ) -> KafkaBroker:
        """Format a fresh KRaft storage under ``workdir`` and start the broker on free ports.

        Returns once the broker answers a metadata request (polled, no blind sleep).

        Raises:
            BrokerError: no jars, the storage format failed, or the broker did not come up
                within ``timeout`` seconds (the process is stopped and its log tail quoted).
        """
        jars = Path(jars_dir)
        if not any(jars.glob("kafka_2.13-*.jar")):
            raise BrokerError(f"no Kafka broker jars in {jars}: run `make setup` first")
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        port, controller_port = free_port(), free_port()
        while controller_port == port:
            controller_port = free_port()
        props = work / "server.properties"
        props.write_text(_properties(work, port, controller_port))
        log_file = work / "broker.log"
        (work / "log4j.properties").write_text(_LOG4J.format(log=log_file))
        classpath = str(jars / "*")
        jvm = [_java(), *_JVM_OPTS, f"-Dlog4j.configuration=file:{work / 'log4j.properties'}", "-cp", classpath]
        cluster_id = "-"
        # An id starting with "-" reads as an option to the storage tool (Kafka's own
        # Uuid.randomUuid skips those for the same reason): about 1 start in 64 failed.
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        formatted = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), "--ignore-formatted"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if formatted.returncode != 0:
            raise BrokerError(f"kafka storage format failed: {(formatted.stderr or formatted.stdout).strip()[-500:]}")
        with open(work / "broker.out", "wb") as out:
            process = subprocess.Popen(
                [*jvm, f"-Dkafka.logs.dir={work}", "kafka.Kafka", str(props)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C meant for the caller does not half-kill it
            )
        broker = cls(process, work, port)
        try:
            broker._wait_ready(time.monotonic() + timeout)
        except BaseException:
            broker.stop()
            raise
        return broker

    def _wait_ready(self, deadline: float) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"kafka broker exited with status {self.process.returncode}: {self._log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    pass
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=5000)
                try:
                    admin.describe_cluster()
                    return
                finally:
                    admin.close()
            except (OSError, KafkaError):
                time.sleep(0.2)  # polling interval while waiting for a condition with a deadline
        raise BrokerError(f"kafka broker did not answer on {self.bootstrap_servers} in time: {self._log_tail()}")

    def _log_tail(self) -> str:
        for name in ("broker.log", "broker.out"):
            path = self.workdir / name
            if path.exists() and path.stat().st_size:
                return path.read_text(errors="replace")[-800:].strip()
        return "(no broker log)"

    def create_topic(self, name: str, partitions: int = 1, *, timeout: float = 30.0) -> None:
        """Create ``name`` and wait until every partition has a leader."""
        from kafka import KafkaAdminClient, KafkaConsumer
        from kafka.admin import NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        try:
            admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        finally:
            admin.close()
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap_servers)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                found = consumer.partitions_for_topic(name)
                if found and len(found) == partitions:
                    return
                time.sleep(0.1)
        finally:
            consumer.close()
        raise BrokerError(f"topic {name} has no leaders after {timeout} s")

    def producer(self, **settings: object):  # type: ignore[no-untyped-def]
        """A ``kafka.KafkaProducer`` for this broker (acks=all, no retries duplicating records)."""
        from kafka import KafkaProducer

        return KafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all", **settings)

    def produce(self, topic: str, records: Iterable[tuple[str | None, str | bytes | None]]) -> list[tuple[int, int]]:
        """Send ``(key, value)`` records in order and wait for all; returns (partition, offset) each.
        A None value is a tombstone, as compacted topics and CDC tools send for a delete.

        A record with the same key always lands in the same partition (Kafka's key hashing).
        """
        producer = self.producer()
        try:
            futures = [
                producer.send(
                    topic,
                    key=key.encode() if key is not None else None,
                    value=value.encode() if isinstance(value, str) else value,
                )
                for key, value in records
            ]
            producer.flush()
            return [(meta.partition, meta.offset) for meta in (f.get(timeout=30) for f in futures)]
        finally:
            producer.close()

    def stop(self, grace: float = 15.0) -> None:
        """Stop the broker by its pid: SIGTERM, then SIGKILL if it is still running after ``grace``."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def __enter__(self) -> KafkaBroker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _event_records(folder: Path) -> Iterator[tuple[str | None, str]]:
    """JSON-lines event files -> (shipment_id or None, line), in file order."""
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                key = json.loads(line).get("shipment_id")
            except (ValueError, AttributeError):
                key = None
            yield (str(key) if key is not None else None), line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--produce", help="folder of *.jsonl status events to produce before the command")
    parser.add_argument("--workdir", help="broker folder (default: a new temporary folder)")
    parser.add_argument("--jars", default=str(DEFAULT_JARS))
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ... run with KAFKA_BOOTSTRAP set")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="kafka-"))
    with KafkaBroker.start(workdir, args.jars) as broker:
        broker.create_topic(args.topic, args.partitions)
        print(f"kafka broker pid {broker.pid} on {broker.bootstrap_servers}, topic {args.topic}", file=sys.stderr)
        if args.produce:
            sent = broker.produce(args.topic, _event_records(Path(args.produce)))
            print(f"produced {len(sent)} records from {args.produce}", file=sys.stderr)
        if not command:
            return 0
        env = {**os.environ, "KAFKA_BOOTSTRAP": broker.bootstrap_servers, "KAFKA_TOPIC": args.topic}
        return subprocess.call([part.replace("{bootstrap}", broker.bootstrap_servers) for part in command], env=env)


if __name__ == "__main__":
    sys.exit(main())
