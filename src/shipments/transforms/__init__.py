"""Pure, lazy ``DataFrame -> DataFrame`` stages, composed with ``DataFrame.transform``.

No stage reads, writes, counts or needs a SparkSession, so the batch job and the stream share
them and unit tests run each on a few rows.
"""
