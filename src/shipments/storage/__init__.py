"""The only code that reads or writes: raw files, Delta tables, streams, DynamoDB, Hadoop FS.

Paths may be local folders or any URI Hadoop understands (``s3://`` on EMR/Glue, ``s3a://``,
``file://``); listing and small files go through Hadoop's FileSystem for that reason.
"""
