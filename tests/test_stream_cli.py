"""`shipments stream` / `shipments status` arguments are checked before Spark starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipments.cli import _command, _config, _stream_request, build_parser, main
from shipments.stream.job import LOCAL_CHECKPOINT_WRITER


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
    ("platform", "conf", "checkpoint_flag", "local"),
    [
        # local.yaml's checkpoint is a local folder.
        ("local", "local.yaml", None, True),
        # local-s3.yaml's is on s3a, unless --checkpoint names a local folder.
        ("local", "local-s3.yaml", None, False),
        ("local", "local-s3.yaml", "FOLDER", True),
        ("local", "local-s3.yaml", "file://FOLDER", True),
        # as Hadoop prints a local path (Spark's logs and errors), from where users copy it
        ("local", "local-s3.yaml", "file:FOLDER", True),
        # On EMR a path without a scheme is on HDFS, the cluster's default file system.
        ("emr", "base.yaml", "FOLDER", False),
        ("emr", "base.yaml", "s3a://lake/checkpoint", False),
    ],
)
def test_a_checkpoint_on_the_local_disk_gets_the_file_system_writer_and_others_spark_default(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    platform: str,
    conf: str,
    checkpoint_flag: str | None,
    local: bool,
) -> None:
    """The writer follows the checkpoint the command runs with (the flag over the config)."""
    monkeypatch.setattr("shipments.stream.metrics.enable_json_lines", lambda: None)
    root = Path(__file__).resolve().parents[1]
    config_file = tmp_path / "c.yaml"
    config_file.write_text(f"extends: {root / 'conf' / conf}\nspark: {{platform: {platform}}}\n")
    args = ["stream", "--conf", str(config_file), "--lake", str(tmp_path / "lake")]
    args += ["--source", "files", "--input", str(tmp_path)]
    if checkpoint_flag:
        args += ["--checkpoint", checkpoint_flag.replace("FOLDER", str(tmp_path / "checkpoint"))]
    parsed = build_parser().parse_args(args)
    if checkpoint_flag:  # a URI is kept as given, a path made absolute
        expected = checkpoint_flag.replace("FOLDER", str(tmp_path / "checkpoint"))
        assert _stream_request(_config(parsed), parsed).checkpoint == expected
    _, settings = _command(parsed, _config(parsed))
    writer = (settings or {}).get("spark.sql.streaming.checkpointFileManagerClass")
    assert writer == (LOCAL_CHECKPOINT_WRITER if local else None)
    assert not (tmp_path / "lake").exists() and not (tmp_path / "checkpoint").exists()
