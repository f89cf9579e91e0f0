"""A seeded generator of a realistic raw zone, traps included.

``generate_raw_zone(out, start, days)`` writes::

    out/customers/customers.csv                      the dimension (one id duplicated)
    out/shipments/ingest_date=D/part-00000.jsonl     shipments landed on D (plain)
    out/shipments/ingest_date=D/part-00001.jsonl.gz  ... and gzipped
    out/events/events-D.jsonl                        status events for the stream

with what real feeds do: exact re-sends, newer versions landing a day later, older versions
landing after newer ones, versions re-sent with the same ``updated_at`` but other content
(settled by the tie-break rule of ``transforms/dedup.py``), shipments arriving one or two
days late, timestamps in non-UTC offsets near midnight (their local date is not their UTC
ship date), extra fields (schema drift), customers missing from the dimension, and invalid
lines of every kind the contract names. The same seed always gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from pathlib import Path

from shipments.devtools.landings import write_day
from shipments.errors import EXIT_OK
from shipments.model.layouts import DEFAULT, DMS_CSV, DMS_PARQUET
from shipments.model.shipments import SHIPMENT_STATUSES

SEGMENTS = ("RETAIL", "SMB", "ENTERPRISE")
REGIONS = ("NA", "EU", "APAC", "LATAM")
OFFSETS = ("Z", "+00:00", "+02:00", "-05:00", "+05:30", "-08:00", "+09:00")
LOCATIONS = ("Rotterdam", "Memphis", "Louisville", "Leipzig", "Hong Kong", "Dubai", "Sao Paulo")
_FINAL_STATUSES = ("DELIVERED", "CANCELLED", "RETURNED", "EXCEPTION")

# Shares of shipments (per day) that get each trap.
NEWER_VERSION = 0.10
OLDER_VERSION_AFTER_NEWER = 0.02
EXACT_RESEND = 0.05
# The latest version re-sent with the same updated_at and other content (another status, at
# times another charge): only the documented tie-break decides which one counts.
SAME_TIME_TIE = 0.01
LATE_ONE_DAY = 0.03
LATE_TWO_DAYS = 0.005
NEAR_MIDNIGHT = 0.05
UNKNOWN_CUSTOMER = 0.01
SCHEMA_DRIFT = 0.05
INVALID = 0.02


def iso(instant: dt.datetime, offset: str) -> str:
    """Render a UTC instant in the given offset, ISO-8601 with the offset spelled out."""
    if offset in ("Z", "+00:00"):
        return instant.strftime("%Y-%m-%dT%H:%M:%S") + offset
    sign = 1 if offset[0] == "+" else -1
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    local = instant + sign * dt.timedelta(hours=hours, minutes=minutes)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + offset


def _shipment_line(
    shipment_id: str,
    customer_id: str,
    created: str,
    updated: str,
    status: str,
    origin: str,
    destination: str,
    weight: str,
    charge: str,
    extra: str = "",
) -> str:
    return (
        f'{{"shipment_id":"{shipment_id}","customer_id":"{customer_id}","created_at":"{created}",'
        f'"updated_at":"{updated}","status":"{status}","origin_region":"{origin}",'
        f'"destination_region":"{destination}","weight_kg":{weight},"charge_usd":{charge}{extra}}}'
    )


INVALID_KINDS = 17


def _invalid_lines(rng: random.Random, day: dt.date, serial: int) -> str:
    """One invalid line, of a kind chosen in turn so every kind appears every day."""
    sid = f"BAD{day:%Y%m%d}-{serial:06d}"
    created = iso(dt.datetime.combine(day, dt.time(12, 0)), "Z")
    good = dict(
        shipment_id=sid,
        customer_id="C0001",
        created_at=created,
        updated_at=created,
        status="CREATED",
        weight_kg=1.5,
        charge_usd=10.25,
    )
    kinds = (
        lambda: json.dumps(good)[:-9],  # truncated: not JSON
        lambda: "",  # blank line
        lambda: "[" + json.dumps(good) + "]",  # JSON, but not an object
        lambda: json.dumps({k: v for k, v in good.items() if k != "shipment_id"}),
        lambda: json.dumps({**good, "customer_id": ""}),
        lambda: json.dumps({k: v for k, v in good.items() if k != "created_at"}),
        lambda: json.dumps({k: v for k, v in good.items() if k != "weight_kg"}),
        lambda: json.dumps({k: v for k, v in good.items() if k != "charge_usd"}),
        lambda: json.dumps({**good, "created_at": f"{day:%Y}-13-45T10:00:00Z"}),
        lambda: json.dumps({**good, "updated_at": "yesterday"}),
        lambda: json.dumps({**good, "created_at": f"{day.isoformat()}T10:00:00"}),  # no offset
        lambda: json.dumps({**good, "weight_kg": "heavy"}),
        lambda: json.dumps({**good, "weight_kg": -3.0}),
        lambda: json.dumps({**good, "weight_kg": 100000.5}),
        lambda: json.dumps({**good, "charge_usd": -0.01}),
        lambda: json.dumps({**good, "charge_usd": 12.345}),
        lambda: json.dumps({**good, "status": "LOST_IN_SPACE"}),
    )
    assert len(kinds) == INVALID_KINDS
    return kinds[serial % len(kinds)]()


@dataclasses.dataclass(frozen=True)
class GenerateResult:
    text: str
    exit_code: int = EXIT_OK

    def summary(self) -> str:
        return self.text


def generate_raw_zone(
    out: Path,
    start: dt.date,
    days: int,
    *,
    shipments_per_day: int = 2000,
    customers: int = 200,
    seed: int = 7,
    events_per_day: int | None = None,
    gzip_share: float = 0.5,
    layout: str = DEFAULT,
    deletes: float = 0.0,
) -> GenerateResult:
    """Write a raw zone for ``days`` ingest dates from ``start`` in ``layout``; the result says
    what it wrote. ``deletes`` (dms-* layouts) is the share of each day's records that DMS also
    lands as a delete (``Op`` D, same values) the next day."""
    rng = random.Random(seed)
    # Ties draw from their own stream: the shipments and their other traps stay those the seed
    # gave before ties existed (only the order of lines in files, and the events, moved).
    ties = random.Random(f"ties-{seed}")
    out = Path(out)
    _write_customers(out / "customers", customers, rng)
    # Lines landing on each ingest date, filled as shipments are made (late ones land later):
    # up to 2 days late, and a re-send or newer version of such a late line one day after that.
    landing: dict[dt.date, list[str]] = {start + dt.timedelta(days=i): [] for i in range(days + 3)}
    shipments_made: list[tuple[str, dt.datetime]] = []
    counts = {"shipments": 0, "lines": 0, "invalid": 0, "deletes": 0}
    seen: set[str] = set()

    for day_index in range(days):
        day = start + dt.timedelta(days=day_index)
        midnight = dt.datetime.combine(day, dt.time())
        for i in range(shipments_per_day):
            sid = f"S{day:%Y%m%d}-{i:07d}"
            if rng.random() < NEAR_MIDNIGHT:
                # Within 90 minutes of a UTC midnight, shown in an offset that puts it on
                # another local calendar day.
                created = midnight + dt.timedelta(
                    seconds=rng.choice((rng.randrange(0, 5400), 86400 - rng.randrange(1, 5400)))
                )
                offset = "-05:00" if created.hour < 12 else "+05:30"
            else:
                created = midnight + dt.timedelta(seconds=rng.randrange(0, 86400))
                offset = rng.choice(OFFSETS)
            updated = created + dt.timedelta(seconds=rng.randrange(0, 3600))
            customer = (
                f"C9{rng.randrange(0, 999):03d}"
                if rng.random() < UNKNOWN_CUSTOMER
                else f"C{rng.randrange(1, customers + 1):04d}"
            )
            origin, destination = rng.choice(REGIONS), rng.choice(REGIONS)
            weight = f"{rng.uniform(0.1, 950.0):.3f}"
            charge = f"{rng.randrange(100, 250000) / 100:.2f}"
            extra = ',"carrier":"ACME","dms_op":"I"' if rng.random() < SCHEMA_DRIFT else ""
            first = _shipment_line(
                sid,
                customer,
                iso(created, offset),
                iso(updated, offset),
                "CREATED",
                origin,
                destination,
                weight,
                charge,
                extra,
            )
            roll = rng.random()
            land = day + dt.timedelta(
                days=1 if roll < LATE_ONE_DAY else 2 if roll < LATE_ONE_DAY + LATE_TWO_DAYS else 0
            )
            landing[land].append(first)
            if rng.random() < EXACT_RESEND:
                landing[rng.choice((land, land + dt.timedelta(days=1)))].append(first)
            latest = (iso(updated, offset), "CREATED", charge, land)
            if rng.random() < NEWER_VERSION:
                newer_at = updated + dt.timedelta(seconds=rng.randrange(60, 20 * 3600))
                status = rng.choice((*_FINAL_STATUSES, "IN_TRANSIT", "OUT_FOR_DELIVERY"))
                newer_charge = charge if status != "RETURNED" else f"{float(charge) + 5:.2f}"
                newer = _shipment_line(
                    sid,
                    customer,
                    iso(created, offset),
                    iso(newer_at, "Z"),
                    status,
                    origin,
                    destination,
                    weight,
                    newer_charge,
                )
                newer_land = rng.choice((land, land + dt.timedelta(days=1)))
                landing[newer_land].append(newer)
                latest = (iso(newer_at, "Z"), status, newer_charge, newer_land)
                if rng.random() < OLDER_VERSION_AFTER_NEWER / NEWER_VERSION:
                    # The stale version lands after the newer one: the newer must still win.
                    older = _shipment_line(
                        sid,
                        customer,
                        iso(created, offset),
                        iso(created, offset),
                        "PICKED_UP",
                        origin,
                        destination,
                        weight,
                        charge,
                    )
                    landing[newer_land].append(older)
            if ties.random() < SAME_TIME_TIE:
                at, latest_status, latest_charge, latest_land = latest
                tie_charge = latest_charge if ties.random() < 0.5 else f"{float(latest_charge) + 1:.2f}"
                tie = _shipment_line(
                    sid,
                    customer,
                    iso(created, offset),
                    at,
                    ties.choice([s for s in SHIPMENT_STATUSES if s != latest_status]),
                    origin,
                    destination,
                    weight,
                    tie_charge,
                )
                later = latest_land + dt.timedelta(days=1)
                landing[ties.choice((latest_land, later)) if later in landing else latest_land].append(tie)
            shipments_made.append((sid, created))
            counts["shipments"] += 1
        # At least one of every kind each day, however small the day.
        for serial in range(max(INVALID_KINDS, int(shipments_per_day * INVALID))):
            landing[day].append(_invalid_lines(rng, day, serial))
            counts["invalid"] += 1

    for day_index in range(days):
        day = start + dt.timedelta(days=day_index)
        # Anything that would land after the last generated day lands on it instead.
        lines = landing[day] + (
            [line for extra in (1, 2, 3) for line in landing[day + dt.timedelta(days=extra)]]
            if day_index == days - 1
            else []
        )
        deleted = _deletes(lines, deletes, rng) if layout in (DMS_CSV, DMS_PARQUET) and day_index else []
        counts["lines"] += write_day(out, layout, day, lines, rng, gzip_share=gzip_share, seen=seen, deletes=deleted)
        counts["deletes"] += len(deleted)

    events = _write_events(out / "events", shipments_made, start, days, rng, events_per_day)
    return GenerateResult(
        f"wrote {counts['lines']} shipment records in layout {layout} ({counts['shipments']} shipments, "
        f"{counts['invalid']} invalid lines, {counts['deletes']} deletes) "
        f"for ingest dates {start}..{start + dt.timedelta(days=days - 1)}, {customers} customers, "
        f"{events} status events, under {out}"
    )


def _write_customers(folder: Path, customers: int, rng: random.Random) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["customer_id,customer_name,segment,region"]
    for n in range(1, customers + 1):
        rows.append(f"C{n:04d},Customer {n:04d} Ltd,{rng.choice(SEGMENTS)},{rng.choice(REGIONS)}")
    # The same id twice with different attributes: must not multiply fact rows.
    rows.append(f"C0002,Customer 0002 Ltd (old name),{SEGMENTS[0]},{REGIONS[0]}")
    (folder / "customers.csv").write_text("\n".join(rows) + "\n")


def _deletes(lines: list[str], share: float, rng: random.Random) -> list[str]:
    """A share of the day's valid records that DMS lands again as deletes (same values, so the
    delete wins the tie on updated_at and the shipment leaves every total)."""
    if share <= 0:
        return []
    candidates = sorted({line for line in lines if line.startswith('{"shipment_id":"S')})
    return rng.sample(candidates, int(len(candidates) * share))


def _write_events(
    folder: Path,
    shipments: list[tuple[str, dt.datetime]],
    start: dt.date,
    days: int,
    rng: random.Random,
    events_per_day: int | None,
) -> int:
    """Status events: duplicates, out-of-order, late (hours behind) and malformed ones."""
    folder.mkdir(parents=True, exist_ok=True)
    per_day: dict[dt.date, list[str]] = {start + dt.timedelta(days=i): [] for i in range(days)}
    budget = {day: (events_per_day if events_per_day is not None else None) for day in per_day}
    serial = 0
    for sid, created in shipments:
        day = created.date()
        if day not in per_day:
            continue
        if budget[day] is not None and len(per_day[day]) >= budget[day]:  # type: ignore[operator]
            continue
        steps = SHIPMENT_STATUSES[: rng.randrange(1, 6)]
        moment = created
        for status in steps:
            moment += dt.timedelta(seconds=rng.randrange(60, 4 * 3600))
            serial += 1
            event = json.dumps(
                {
                    "event_id": f"E{serial:09d}",
                    "shipment_id": sid,
                    "status": status,
                    "event_time": iso(moment, rng.choice(OFFSETS)),
                    "location": rng.choice(LOCATIONS),
                },
                separators=(",", ":"),
            )
            per_day[day].append(event)
            if rng.random() < 0.05:
                per_day[day].append(event)  # delivered twice
        if rng.random() < 0.01:
            per_day[day].append('{"event_id": "broken", "shipment_id": ')  # malformed
    total = 0
    for day, events in per_day.items():
        # Mostly in time order, with local shuffles (out-of-order delivery).
        for i in range(0, len(events) - 1, 7):
            if rng.random() < 0.3:
                events[i], events[i + 1] = events[i + 1], events[i]
        (folder / f"events-{day.isoformat()}.jsonl").write_text("".join(f"{e}\n" for e in events))
        total += len(events)
    return total
