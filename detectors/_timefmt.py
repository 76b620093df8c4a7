"""Event-time formatting shared by every alert: the contract's RFC 3339 UTC form."""

from __future__ import annotations

from driftline.schemas import format_timestamp as rfc3339

__all__ = ["rfc3339"]
