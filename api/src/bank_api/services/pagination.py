"""Keyset pagination: a page ends with an opaque cursor holding the last id seen.

Keyset (WHERE id > last) stays fast on any page, unlike OFFSET, and never skips or repeats
rows while new ones are inserted.
"""

import base64
import binascii
import json
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class InvalidCursor(ValueError):
    pass


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeError) as exc:
        raise InvalidCursor("cursor is not one this API returned") from exc
    if type(value) is not int or not 0 < value < 2**63:
        raise InvalidCursor("cursor is not one this API returned")
    return value


def page_of(rows: Sequence[T], limit: int, key) -> tuple[list[T], str | None]:
    """Rows were fetched with LIMIT limit+1: the extra row only says whether a next page exists."""
    items = list(rows[:limit])
    next_cursor = encode_cursor(key(items[-1])) if len(rows) > limit else None
    return items, next_cursor
