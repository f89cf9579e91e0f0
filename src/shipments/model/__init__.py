"""Declarations only: every schema the project reads or writes, and one ``TableSpec`` per table.

Nothing here imports Spark I/O or Delta, so transforms and tests can use it freely.
"""
