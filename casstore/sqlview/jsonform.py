"""The JSON form of network state in the SQL view's ``jsonb`` columns.

Values are written as casstore's Bassline JSON export writes them
(:mod:`casstore.model.bassline_json`): maps, lists, strings, numbers, booleans
and null as themselves; bytes as DAG-JSON's ``{"/": {"bytes": "<base64, no
padding>"}}``.  User data is never a link (see docs/format.md), so no other
form is needed.  One thing PostgreSQL cannot hold: the character U+0000, in
``text`` or ``jsonb``.  It is shown as U+FFFD (``\\ufffd``) in the tables, in
keys and values alike, and in the id columns; the objects keep the exact text.

The text is written by ``orjson`` (about 5x the standard library's encoder on
these rows; installed with the ``postgres`` extra, else the standard library
writes everything); a value it refuses (an integer outside 64 bits, nesting beyond
its limit) is written by the standard library instead, in the same form.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

try:  # installed with the postgres extra, as psycopg is; this module is imported without either
    import orjson

    _fast: Callable[..., bytes] | None = orjson.dumps
except ImportError:  # the standard library writes the same text
    _fast = None

__all__ = ["NUL_STANDIN", "dumps", "sql_text"]

#: What U+0000 is shown as in the tables.
NUL_STANDIN = "\ufffd"
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _bytes_form(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"/": {"bytes": base64.b64encode(value).decode("ascii").rstrip("=")}}
    raise TypeError(f"{type(value).__name__} is not in the data model")


_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_bytes_form).encode


def dumps(value: Any) -> str:
    """``value`` (of the data model; bytes become their DAG-JSON form) as JSON text ``jsonb`` accepts."""
    try:
        text = _fast(value, default=_bytes_form).decode() if _fast is not None else _encode(value)
    except TypeError:  # orjson.JSONEncodeError: what the standard library writes or names better
        text = _encode(value)
    if "\\u0000" in text:
        text = _ESCAPED_NUL.sub(lambda m: m.group(1) + "\\ufffd", text)
    return text


def sql_text(value: str) -> str:
    """An id for a ``text`` column (U+0000 shown as U+FFFD)."""
    return value.replace("\x00", NUL_STANDIN) if "\x00" in value else value
