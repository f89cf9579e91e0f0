"""shipments: raw shipment data -> trustworthy Delta tables, in batch and in real time."""

__version__ = "0.1.0"
