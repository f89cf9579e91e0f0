"""Small files and listings through Hadoop's FileSystem, so the same code serves local disks,
``s3://`` (EMR, Glue) and ``s3a://``."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import urllib.parse
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


def file_name(uri: str) -> str:
    """The last part of a path or of the URI Spark gives a file (``_metadata.file_path``, which
    percent-encodes it), as people name the file: ``export%20(1).jsonl`` -> ``export (1).jsonl``."""
    return urllib.parse.unquote(uri.rstrip("/").rsplit("/", 1)[-1])


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


_GLOB_CHARACTERS = re.compile(r"([\\*?\[\]{}])")


def literal(path: str) -> str:
    """``path`` with Hadoop's glob characters escaped, so Spark reads the file of that very name.

    Spark treats every path it is given as a glob pattern: a landed ``export[1].jsonl`` would not
    be found, and a file named ``*.jsonl`` would stand for every file in its folder.
    """
    return _GLOB_CHARACTERS.sub(r"\\\1", path)


def read_first_line(spark: SparkSession, path: str) -> str | None:
    """The first line of a text file (decompressed by its suffix, e.g. ``.gz``), without a UTF-8
    byte-order mark; None for an empty file."""
    hpath, filesystem = hadoop_path(spark, path)
    view = jvm(spark)
    codec = view.org.apache.hadoop.io.compress.CompressionCodecFactory(
        spark.sparkContext._jsc.hadoopConfiguration()
    ).getCodec(hpath)
    stream = filesystem.open(hpath)
    if codec is not None:
        stream = codec.createInputStream(stream)
    reader = view.java.io.BufferedReader(view.java.io.InputStreamReader(stream, "UTF-8"))
    try:
        line = reader.readLine()
    finally:
        reader.close()
    return None if line is None else str(line).removeprefix("\ufeff")


# Content digests of local files, by what changes whenever the content does: ``ctime`` moves on
# every write, and unlike ``mtime`` no tool (cp -p, rsync -t, touch) can put it back.
_LOCAL_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def content_checksum(spark: SparkSession, path: str) -> str | None:
    """A checksum of the file's content, from what the file system offers cheaply: its own
    checksum where it has one (HDFS; S3A's ETag with ``fs.s3a.etag.checksum.enabled``), an MD5
    of a local file (cached while the file is unchanged), otherwise None."""
    hpath, filesystem = hadoop_path(spark, path)
    checksum = filesystem.getFileChecksum(hpath)
    if checksum is not None:
        return str(checksum.toString())
    uri = hpath.toUri()
    if uri.getScheme() not in (None, "file"):
        return None
    local = str(uri.getPath())
    stat = os.stat(local)
    key = (local, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
    if key not in _LOCAL_DIGESTS:
        with open(local, "rb") as handle:
            _LOCAL_DIGESTS[key] = "MD5:" + hashlib.file_digest(handle, "md5").hexdigest()
    return _LOCAL_DIGESTS[key]
