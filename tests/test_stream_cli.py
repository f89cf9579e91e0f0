"""`shipments stream` / `shipments status` arguments are checked before Spark starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipments.cli import main
from shipments.config import StreamConfig
from shipments.stream.job import LOCAL_CHECKPOINT_WRITER, stream_session_settings


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "kafka", "--topic", "t", "--checkpoint", "CK"], "needs --bootstrap-servers"),
        (
            ["--source", "kafka", "--bootstrap-servers", "127.0.0.1:9092", "--checkpoint", "CK"],
            "needs --bootstrap-servers HOST:PORT and --topic",
        ),
        (
            ["--source", "kafka", "--bootstrap-servers", "nohostport", "--topic", "t", "--checkpoint", "CK"],
            "must look like HOST:PORT",
        ),
        (
            [
                "--source",
                "kafka",
                "--bootstrap-servers",
                "127.0.0.1:9092",
                "--topic",
                "bad topic!",
                "--checkpoint",
                "CK",
            ],
            "Kafka topic name",
        ),
        (["--source", "files", "--checkpoint", "CK"], "needs --input DIR"),
        (["--source", "files", "--input", "MISSING", "--checkpoint", "CK"], "does not exist"),
    ],
)
def test_bad_stream_arguments_fail_in_one_line_without_spark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    args = [a.replace("CK", str(tmp_path / "ck")).replace("MISSING", str(tmp_path / "missing")) for a in args]
    code = main(["stream", "--lake", str(tmp_path / "lake"), *args])
    err = capsys.readouterr().err
    assert code != 0
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "lake").exists() and not (tmp_path / "ck").exists()


def test_a_checkpoint_is_required(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "c.yaml"
    root = Path(__file__).resolve().parents[1]
    conf.write_text(f"extends: {root / 'conf' / 'base.yaml'}\nspark: {{platform: emr}}\nstream: {{checkpoint: ''}}\n")
    code = main(
        [
            "stream",
            "--conf",
            str(conf),
            "--raw",
            str(tmp_path),
            "--lake",
            str(tmp_path / "lake"),
            "--source",
            "files",
            "--input",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "checkpoint is required" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("checkpoint", "local"),
    [
        ("/data/checkpoints/status", True),
        ("file:///data/checkpoints/status", True),
        ("s3a://lake/checkpoints/status", False),
        ("s3://lake/checkpoints/status", False),
        ("hdfs:///checkpoints/status", False),
    ],
)
def test_a_local_checkpoint_gets_the_file_system_writer_and_others_spark_default(checkpoint: str, local: bool) -> None:
    settings = stream_session_settings(StreamConfig(), checkpoint)
    writer = settings.get("spark.sql.streaming.checkpointFileManagerClass")
    assert writer == (LOCAL_CHECKPOINT_WRITER if local else None)
    assert settings["spark.sql.shuffle.partitions"] == "4"
