"""The marketplace's time texts: `yyyyMMddHHmmss` or `yyyyMMddHHmmssSSS`, in UTC."""

from datetime import UTC, datetime


def parse_marketplace_time(text: str) -> datetime:
    """Read a 14- or 17-digit UTC time; raises ValueError for anything else."""
    if not text.isascii() or not text.isdigit() or len(text) not in (14, 17):
        raise ValueError("time must be 14 or 17 digits")
    moment = datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return moment.replace(microsecond=int(text[14:] or 0) * 1000)
