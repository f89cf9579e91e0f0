"""Small files and listings through Hadoop's FileSystem, so the same code serves local disks,
``s3://`` (EMR, Glue) and ``s3a://``."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from pyspark.sql import SparkSession


@dataclasses.dataclass(frozen=True)
class FileStatus:
    """One entry of a folder listing."""

    path: str
    name: str
    size: int
    modified_ms: int
    is_file: bool


def jvm(spark: SparkSession) -> Any:
    """The driver's Py4J view of the JVM."""
    return spark.sparkContext._jvm


def hadoop_path(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """(``org.apache.hadoop.fs.Path``, its ``FileSystem``) for ``path``: Py4J objects."""
    hpath = jvm(spark).org.apache.hadoop.fs.Path(path)
    return hpath, hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def exists(spark: SparkSession, path: str) -> bool:
    """True when ``path`` exists (a file or a folder)."""
    hpath, fs = hadoop_path(spark, path)
    return bool(fs.exists(hpath))


def list_folder(spark: SparkSession, folder: str) -> list[FileStatus]:
    """The entries of ``folder`` (empty when it does not exist), sorted by name."""
    hpath, fs = hadoop_path(spark, folder)
    if not fs.exists(hpath):
        return []
    return sorted(
        (
            FileStatus(
                str(s.getPath().toString()),
                str(s.getPath().getName()),
                int(s.getLen()),
                int(s.getModificationTime()),
                bool(s.isFile()),
            )
            for s in fs.listStatus(hpath)
        ),
        key=lambda status: status.name,
    )


def read_text(spark: SparkSession, path: str) -> str | None:
    """The UTF-8 content of a small file, or None when it does not exist."""
    hpath, fs = hadoop_path(spark, path)
    if not fs.exists(hpath):
        return None
    stream = fs.open(hpath)
    try:
        return str(jvm(spark).org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def write_text_atomic(spark: SparkSession, path: str, text: str) -> None:
    """Write a small file whole or not at all: to a hidden temporary name, then rename.

    A crash mid-write leaves at most a ``._tmp`` file that readers ignore, never a torn
    ``path``. (On S3 a single PUT is atomic anyway; the rename is a copy there.)
    """
    hpath, fs = hadoop_path(spark, path)
    temporary = hpath.getParent().suffix(f"/.{hpath.getName()}.{uuid.uuid4().hex}._tmp")
    stream = fs.create(temporary, True)
    try:
        stream.write(bytearray(text.encode()))
    finally:
        stream.close()
    fs.delete(hpath, False)
    if not fs.rename(temporary, hpath):
        fs.delete(temporary, False)
        raise OSError(f"could not rename {temporary} to {path}")


def delete(spark: SparkSession, path: str) -> None:
    """Delete a file (not a folder); a missing file is fine."""
    hpath, fs = hadoop_path(spark, path)
    fs.delete(hpath, False)
