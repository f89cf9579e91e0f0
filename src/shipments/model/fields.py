"""Field names of the raw shipment record (contract 1.1), in the contract's column order.

Plain names, no Spark: the config and the layouts need them before any Spark import.
"""

from __future__ import annotations

RAW_SHIPMENT_FIELDS = (
    "shipment_id",
    "customer_id",
    "created_at",
    "updated_at",
    "status",
    "origin_region",
    "destination_region",
    "weight_kg",
    "charge_usd",
)
