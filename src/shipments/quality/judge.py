"""Judge a day's checks from what the daily run measured.

The Spark side (``batch.daily``) measures everything in the aggregations it runs anyway and
hands the numbers over as ``DayObservations``; judging them is plain Python, the same for every
engine and easy to test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections.abc import Mapping, Sequence

from shipments.ops_config import CheckSpec
from shipments.quality.results import CheckResult

# Checks of the day's volume, left unjudged when files lost a required field.
_VOLUME_KINDS = ("min_rows", "volume", "shrink", "unknown_customers")
# 1.4826 x the median absolute deviation estimates a normal distribution's standard deviation.
MAD_TO_SIGMA = 1.4826


@dataclasses.dataclass(frozen=True)
class DayObservations:
    """What one daily run measured for its checks.

    ``vanished``: required field -> names of the input files in which no record has it; ``new_fields``:
    field -> files whose first record carries it though the contract does not name it;
    ``rule_failures``: row-rule name -> rows breaking it, out of ``rule_rows[table]``;
    ``duplicate_keys``: unique-check name -> rows beyond the first per key; ``published``: the
    shipments partition D holds now (None when there is none); ``history``: D's shipments on the
    same weekday of earlier weeks, from ``pipeline_runs``.
    """

    run_date: dt.date
    read: int
    quarantined: int
    kept: int
    unknown_rows: int
    reasons: Mapping[str, int] = dataclasses.field(default_factory=dict)
    worst_files: tuple[str, ...] = ()
    # Records of the files in ``vanished``: all invalid, and the schema check's to report.
    drifted_records: int = 0
    drifted_files: int = 0
    vanished: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    new_fields: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    rule_failures: Mapping[str, int] = dataclasses.field(default_factory=dict)
    rule_rows: Mapping[str, int] = dataclasses.field(default_factory=dict)
    rule_samples: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    duplicate_keys: Mapping[str, int] = dataclasses.field(default_factory=dict)
    published: int | None = None
    history: Mapping[dt.date, int] = dataclasses.field(default_factory=dict)


def judge_day(specs: Sequence[CheckSpec], seen: DayObservations, *, allow_shrink: bool = False) -> list[CheckResult]:
    """Every check of ``specs`` judged on ``seen``, in declaration order."""
    results = []
    drifted = any(not _schema(s, seen, allow_shrink).passed for s in specs if s.check == "schema")
    for spec in specs:
        if drifted and spec.check in _VOLUME_KINDS:
            # Files without a required field make the day's volume meaningless: one cause, one
            # alert (the schema check's), not one more per volume check.
            judged = CheckResult(spec, True, None, None, "not judged: input files lost a required field (schema)")
        else:
            judged = _JUDGES[spec.check](spec, seen, allow_shrink)
        results.append(dataclasses.replace(judged, run_date=seen.run_date))
    return results


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _schema(spec: CheckSpec, seen: DayObservations, _: bool) -> CheckResult:
    # Names, not paths: two days' folders may each hold a part-00000.jsonl (counted apart).
    files = sorted({f for found in seen.vanished.values() for f in found})
    new = "; ".join(f"new field {name!r} in {len(found)} file(s)" for name, found in sorted(seen.new_fields.items()))
    if not seen.vanished:
        detail = "every required field present in every input file" + (f"; {new}" if new else "")
        return CheckResult(spec, True, 0, 0, detail)
    gone = "; ".join(
        f"{name!r} missing from every record of {len(found)} file(s)" for name, found in sorted(seen.vanished.items())
    )
    cause = "vanished:" + ",".join(sorted(seen.vanished))
    detail = f"{gone}{f'; {new}' if new else ''} (renamed upstream?)"
    return CheckResult(spec, False, seen.drifted_files, 0, detail, cause, tuple(files))


def _row_rule(spec: CheckSpec, seen: DayObservations, _: bool) -> CheckResult:
    failing = seen.rule_failures.get(spec.name, 0)
    rows = seen.rule_rows.get(spec.table, 0)
    share = _share(failing, rows)
    passed = failing == 0 or share <= spec.max_share
    what = {"not_null": "null or blank", "accepted_values": "not an accepted value", "range": "out of range"}
    detail = f"{failing} of {rows} rows {what[spec.check]} in {spec.column} ({share:.2%}, at most {spec.max_share:.2%})"
    samples = seen.rule_samples.get(spec.name, ())
    return CheckResult(spec, passed, share, spec.max_share, detail, f"{spec.check}:{spec.column}", samples)


def _unique(spec: CheckSpec, seen: DayObservations, _: bool) -> CheckResult:
    extra = seen.duplicate_keys.get(spec.name, 0)
    detail = f"{extra} row(s) repeat a key ({', '.join(spec.columns)})"
    return CheckResult(spec, extra == 0, extra, 0, detail, "duplicate_key")


def _invalid_share(spec: CheckSpec, seen: DayObservations, _: bool) -> CheckResult:
    # Files that lost a required field are the schema check's: one cause, one alert.
    read, invalid = seen.read - seen.drifted_records, seen.quarantined - seen.drifted_records
    share = _share(invalid, read)
    limit = float(spec.max or 0)
    top = sorted(seen.reasons.items(), key=lambda item: (-item[1], item[0]))[:3]
    reasons = ", ".join(f"{reason} {count}" for reason, count in top) or "none"
    detail = f"{invalid} of {read} records invalid ({share:.2%}, at most {limit:.2%}); top: {reasons}"
    if seen.drifted_records:
        detail += f"; {seen.drifted_records} records of files with a vanished field left to the schema check"
    if read < spec.min_rows:
        return CheckResult(spec, True, share, limit, f"{detail}; not judged below {spec.min_rows} records")
    cause = f"top_reason:{top[0][0]}" if top else "invalid"
    return CheckResult(spec, share <= limit, share, limit, detail, cause, seen.worst_files)


def _unknown_customers(spec: CheckSpec, seen: DayObservations, _: bool) -> CheckResult:
    share = _share(seen.unknown_rows, seen.kept)
    limit = float(spec.max or 0)
    detail = f"{seen.unknown_rows} of {seen.kept} shipments have no customer in the dimension ({share:.2%})"
    if seen.kept < spec.min_rows:
        return CheckResult(spec, True, share, limit, f"{detail}; not judged below {spec.min_rows} shipments")
    return CheckResult(spec, share <= limit, share, limit, detail, "unknown_customers")


def _min_rows(spec: CheckSpec, seen: DayObservations, _: bool) -> CheckResult:
    limit = float(spec.min or 0)
    detail = f"{seen.kept} shipments on {seen.run_date} (at least {limit:g})"
    return CheckResult(spec, seen.kept >= limit, seen.kept, limit, detail, "too_few_rows")


def _volume(spec: CheckSpec, seen: DayObservations, _: bool) -> CheckResult:
    past = [seen.history[d] for d in sorted(seen.history)]
    if len(past) < spec.min_history:
        detail = (
            f"{seen.kept} shipments; not judged: {len(past)} same-weekday day(s) of history, {spec.min_history} needed"
        )
        return CheckResult(spec, True, seen.kept, None, detail)
    median = statistics.median(past)
    spread = MAD_TO_SIGMA * statistics.median(abs(x - median) for x in past)
    allowed = max(spec.tolerance * median, spec.sigmas * spread)
    off = seen.kept - median
    detail = (
        f"{seen.kept} shipments against a median of {median:g} over {len(past)} same-weekday day(s) "
        f"(robust spread {spread:.1f}; allowed +/-{allowed:.1f})"
    )
    cause = "below_baseline" if off < 0 else "above_baseline"
    return CheckResult(spec, abs(off) <= allowed, seen.kept, allowed, detail, cause)


def _shrink(spec: CheckSpec, seen: DayObservations, allow_shrink: bool) -> CheckResult:
    limit = float(spec.max or 0)
    if not seen.published:
        return CheckResult(spec, True, 0, limit, "no published partition to compare with")
    drop = max(0.0, (seen.published - seen.kept) / seen.published)
    detail = (
        f"{seen.kept} shipments would replace the {seen.published} published ({drop:.2%} fewer, at most {limit:.2%})"
    )
    if drop > limit and allow_shrink:
        return CheckResult(spec, True, drop, limit, f"{detail}; allowed by --allow-shrink")
    return CheckResult(spec, drop <= limit, drop, limit, f"{detail}; rerun with --allow-shrink if intended", "shrinks")


_JUDGES = {
    "schema": _schema,
    "not_null": _row_rule,
    "accepted_values": _row_rule,
    "range": _row_rule,
    "unique": _unique,
    "invalid_share": _invalid_share,
    "unknown_customers": _unknown_customers,
    "min_rows": _min_rows,
    "volume": _volume,
    "shrink": _shrink,
}
