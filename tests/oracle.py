"""The contract, implemented again in plain Python, independently of the Spark code.

End-to-end tests compare the job's tables with what this computes from the same raw files.
It follows CONTRACT.md sections 1.1, 1.2 and 2 literally and shares no code with the job.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import re
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from pathlib import Path

STATUSES = {"CREATED", "PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED", "EXCEPTION", "CANCELLED", "RETURNED"}
REQUIRED = ("shipment_id", "customer_id", "created_at", "updated_at", "weight_kg", "charge_usd")
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")


def read_lines(raw: Path, ingest_date: dt.date) -> list[tuple[str, str]]:
    """(file name, line) for every line landed on ``ingest_date``."""
    folder = raw / "shipments" / f"ingest_date={ingest_date.isoformat()}"
    lines: list[tuple[str, str]] = []
    if not folder.is_dir():
        return lines
    for path in sorted(folder.iterdir()):
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt") as handle:
                text = handle.read()
        elif path.name.endswith((".json", ".jsonl")):
            text = path.read_text()
        else:
            continue
        parts = text.split("\n")
        # A final newline ends the last line; it does not start an empty one.
        lines.extend((path.name, line) for line in (parts[:-1] if text.endswith("\n") else parts))
    return lines


def _timestamp(text: object) -> dt.datetime | None:
    if not isinstance(text, str) or not TS.fullmatch(text.strip()):
        return None
    try:
        return dt.datetime.fromisoformat(text.strip()).astimezone(dt.UTC)
    except ValueError:
        return None


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number


def _text(value: object) -> str | None:
    """A field as a string, the way a JSON reader into a string column gives it."""
    return None if value is None else value if isinstance(value, str) else json.dumps(value)


def version_key(record: dict) -> tuple:
    """How two versions of a shipment compare (the greater wins): updated_at first, as the
    contract says; on a tie, the job's documented rule (README: the remaining fields in order
    created_at, status, customer_id, origin_region, destination_region, weight_kg, charge_usd),
    where a missing value is the smallest."""

    def part(value: object) -> tuple:
        return (0,) if value is None else (1, value)

    fields = ("updated_at", "created_at", "status", "customer_id", "origin_region", "destination_region")
    return (*(part(record[f]) for f in fields), part(float(record["weight_kg"])), part(record["charge_usd"]))


def classify(line: str) -> tuple[str | None, dict | None]:
    """(reason, parsed record): reason None for a valid line."""
    try:
        record = json.loads(line, parse_float=Decimal)
    except ValueError:
        return "malformed_json", None
    if not isinstance(record, dict):
        return "malformed_json", None
    for name in REQUIRED:
        if _blank(record.get(name)):
            return f"missing_field:{name}", None
    created, updated = _timestamp(record["created_at"]), _timestamp(record["updated_at"])
    if created is None:
        return "bad_timestamp:created_at", None
    if updated is None:
        return "bad_timestamp:updated_at", None
    weight, charge = _number(record["weight_kg"]), _number(record["charge_usd"])
    if weight is None:
        return "bad_number:weight_kg", None
    if charge is None or not charge.is_finite():
        return "bad_number:charge_usd", None
    if not weight.is_finite() or weight < 0 or weight > 100000:
        return "out_of_range:weight_kg", None
    if charge < 0 or charge >= Decimal("1e16"):  # decimal(18,2) holds 16 digits before the point
        return "out_of_range:charge_usd", None
    if charge != charge.quantize(Decimal("0.01")):
        return "bad_precision:charge_usd", None
    status = record.get("status")
    if status is not None and status not in STATUSES:
        return "bad_value:status", None
    return None, {
        "shipment_id": str(record["shipment_id"]).strip(),
        "customer_id": str(record["customer_id"]).strip(),
        "created_at": created,
        "updated_at": updated,
        "status": status,
        "origin_region": _text(record.get("origin_region")),
        "destination_region": _text(record.get("destination_region")),
        "weight_kg": weight,
        "charge_usd": charge,
        "ship_date": created.date(),
    }


def customers(raw: Path) -> dict[str, tuple[str, str, str]]:
    """customer_id -> (name, segment, region); for a duplicated id the row with the most
    non-blank attributes, then the smallest such tuple."""
    ranked: dict[str, tuple[int, tuple[str, ...]]] = {}
    for path in sorted((raw / "customers").glob("*.csv")):
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                cid = (row["customer_id"] or "").strip()
                if not cid:
                    continue
                attrs = tuple((row[k] or "").strip() for k in ("customer_name", "segment", "region"))
                ranked[cid] = min(ranked.get(cid, (3, attrs)), (sum(not a for a in attrs), attrs))
    return {cid: attrs for cid, (_, attrs) in ranked.items()}  # type: ignore[misc]


def expected_run(raw: Path, run_date: dt.date, lookback_days: int = 1, lookbehind_days: int = 1) -> dict:
    """What the daily job for ``run_date`` must produce: totals, quarantine and counts. It reads
    the ingest dates D-lookbehind .. D+lookback (contract section 2)."""
    lines = [
        (ingest, name, line)
        for i in range(-lookbehind_days, lookback_days + 1)
        for ingest in [run_date + dt.timedelta(days=i)]
        for name, line in read_lines(raw, ingest)
    ]
    valid: list[dict] = []
    quarantine: list[tuple[str, str]] = []
    quarantined = 0
    for ingest, _, line in lines:
        reason, record = classify(line)
        if reason is None:
            valid.append(record)  # type: ignore[arg-type]
        else:
            quarantined += 1
            if ingest == run_date:
                quarantine.append((line, reason))
    latest: dict[str, dict] = {}
    for record in valid:
        best = latest.get(record["shipment_id"])
        if best is None or version_key(record) > version_key(best):
            latest[record["shipment_id"]] = record
    dimension = customers(raw)
    totals: dict[tuple, dict] = defaultdict(
        lambda: {"shipment_count": 0, "cancelled_count": 0, "weight": Decimal(0), "charge": Decimal(0)}
    )
    kept = 0
    for record in latest.values():
        if record["ship_date"] != run_date:
            continue
        kept += 1
        name, segment, region = dimension.get(record["customer_id"], ("UNKNOWN", "UNKNOWN", "UNKNOWN"))
        row = totals[(run_date, record["customer_id"], name, segment, region)]
        row["shipment_count"] += 1
        row["cancelled_count"] += record["status"] == "CANCELLED"
        row["weight"] += record["weight_kg"]
        row["charge"] += record["charge_usd"]
    return {
        "totals": {
            key: (v["shipment_count"], v["cancelled_count"], float(v["weight"]), v["charge"])
            for key, v in totals.items()
        },
        "quarantine": sorted(quarantine),
        "read": len(lines),
        "quarantined": quarantined,
        "duplicates": len(valid) - len(latest),
        "kept": kept,
        "other_dates": len(latest) - kept,
        "unknown_customers": len({k[1] for k in totals if k[2] == "UNKNOWN"}),
    }
