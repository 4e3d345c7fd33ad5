"""The fast path of the structure check for contacts and wires leaves: a whole leaf's entries in a few passes.

:mod:`casstore.model.schema` checks each contact and wire entry on its own,
which is about half of a verify's time (a 100,000-contact network has 200,000
entries).  Here a leaf's entries are checked together, each check one pass over
all of them in C (``map``, ``set``, ``str.join``), and the answer is only
*valid* or *look closer*: entries this path is unsure of (large contents,
attributes, a non-ASCII name, anything that fails) make it answer *look
closer*, and the per-entry check then runs and names the problem.  So this
path may only accept what the per-entry check accepts; a test holds the two to
that on valid and broken leaves alike.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import partial
from itertools import chain
from typing import Any

import libipld

from casstore.model.types import BLEND_MODES, BOUNDARY_DIRECTIONS, WIRE_TYPES

__all__ = ["contact_records_valid", "member_keys_valid", "wire_records_valid"]


def _strings(values: list[Any], non_empty: bool = False) -> bool:
    """All ``str``, ASCII (so they encode), and with ``non_empty`` none empty."""
    return set(map(type, values)) <= {str} and "".join(values).isascii() and not (non_empty and "" in values)


def _among(allowed: frozenset[str], values: list[Any]) -> bool:
    try:
        return set(values) <= allowed and set(map(type, values)) <= {str}
    except TypeError:  # an unhashable value: not one of them
        return False


def _counts(values: list[Any]) -> bool:
    return set(map(type, values)) <= {int} and min(values) >= 0


_ids = partial(_strings, non_empty=True)
#: Each optional field's test over all the values it has in a leaf (as schema's _CONTACT_FIELDS, _WIRE_FIELDS).
_CONTACT_TESTS: dict[str, Callable[[list[Any]], bool]] = {
    "b": partial(_among, frozenset(BLEND_MODES)),
    "B": lambda values: set(map(type, values)) <= {bool},
    "d": partial(_among, frozenset(d for d in BOUNDARY_DIRECTIONS if d is not None)),
    "n": _strings,
    "i": _ids,
    "g": _ids,
    "z": _counts,
}
_WIRE_TESTS: dict[str, Callable[[list[Any]], bool]] = {
    "f": _ids,
    "t": _ids,
    "y": partial(_among, frozenset(WIRE_TYPES)),
    "i": _ids,
    "g": _ids,
}


def member_keys_valid(keys: Collection[str]) -> bool:
    """Every key ``<length>:<group id><member id>``, its length in ASCII digits, from 1 to the rest's length - 1."""
    parts = [key.partition(":") for key in keys]
    lengths = {length for length, _, _ in parts}
    if not all(length.isdigit() and length.isascii() for length in lengths):
        return False
    numbers = {length: int(length) for length in lengths}
    return all(colon and 0 < numbers[length] < len(rest) for length, colon, rest in parts)


def _records(
    values: Collection[bytes], tests: dict[str, Callable[[list[Any]], bool]]
) -> tuple[list[dict[str, Any]], set[str]] | None:
    """The decoded records and their field names, if all are maps, every field a test names passes it, and
    none has attributes (looked at closer); else ``None``."""
    try:
        records = list(map(libipld.decode_dag_cbor, values))
    except Exception:  # the per-entry check names what does not decode
        return None
    if not set(map(type, records)) <= {dict}:
        return None
    names = set(chain.from_iterable(records))
    for name in names & tests.keys():
        if not tests[name]([record[name] for record in records if name in record]):
            return None
    return None if "a" in names else (records, names)


def contact_records_valid(values: Collection[bytes]) -> bool:
    """Whether every one is a valid contact record with its content inline (``False``: look closer)."""
    checked = _records(values, _CONTACT_TESTS)
    if checked is None or "C" in checked[1]:  # a separate content: looked at closer
        return False
    records = checked[0]
    contents = [record["c"] for record in records if "c" in record]
    if len(contents) != len(records) or not set(map(type, contents)) <= {bytes}:
        return False
    try:
        for _ in map(libipld.decode_dag_cbor, contents):
            pass
    except Exception:
        return False
    return True


def wire_records_valid(values: Collection[bytes]) -> bool:
    """Whether every one is a valid wire record (``False``: look closer)."""
    checked = _records(values, _WIRE_TESTS)
    return checked is not None and all("f" in record and "t" in record for record in checked[0])
