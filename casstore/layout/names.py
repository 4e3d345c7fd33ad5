"""Ids as file names: a reversible, safe mapping, and the paths of the seed's layout.

An id becomes one path component (see ``docs/layout.md``, "File names"):

* ASCII letters, digits and ``-_.@+=,`` stand for themselves, except that an
  upper-case letter ``X`` is written ``!x`` (so ids differing only in case never
  share a name on a case-insensitive filesystem);
* every other character is written as ``%XX`` per UTF-8 byte (upper-case hex), so
  ``/``, ``\\``, ``:``, ``%``, ``!``, control characters and all non-ASCII text
  (no Unicode normalisation can touch the name);
* a leading or trailing ``.`` is escaped (``%2E``): no ``.``, ``..`` or hidden file;
* a name whose stem is a reserved Windows device name (``CON``, ``nul``, ``COM1``…)
  has its first character escaped;
* a name over :data:`MAX_NAME` bytes is cut to :data:`KEEP` bytes (never inside an
  escape) and ends ``~`` + 16 hex digits of the id's BLAKE3 hash.  ``~`` never
  appears otherwise, so such a name is recognised; the id itself is then read
  from the file (every file names its id).

Every name decodes back to its id (``decode_name``) except the hashed long ones,
and no name is empty, contains a separator, or is ``.``/``..``: nothing is ever
written outside the directory.
"""

from __future__ import annotations

import re
import string
from urllib.parse import unquote

import blake3

__all__ = ["KEEP", "MAX_NAME", "decode_name", "encode_name", "is_hashed_name", "slug"]

#: The longest name written (bytes, before ``.json``): filesystems allow 255.
MAX_NAME = 200
#: How much of a long name is kept before its hash suffix.
KEEP = MAX_NAME - 17

_PLAIN = frozenset(string.ascii_lowercase + string.digits + "-_.@+=,")
_UPPER = frozenset(string.ascii_uppercase)
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul", "conin$", "conout$"]
    + [f"{base}{n}" for base in ("com", "lpt") for n in [*"123456789", "¹", "²", "³"]]
)
_ESCAPE = re.compile(r"%[0-9A-F]{2}|![a-z]")
_BANG = re.compile(r"!([a-z])")


def _upper(match: re.Match[str]) -> str:
    return match.group(1).upper()


_UNSAFE = re.compile(r"[^a-z0-9\-_.@+=,]")


def _escape_match(match: re.Match[str]) -> str:
    char = match.group()
    return "!" + char.lower() if char in _UPPER else _escape_char(char)


def _escape_char(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode())


def encode_name(item_id: str) -> str:
    """The file name (without extension) of an id; safe on Linux, macOS and Windows."""
    # the common case has nothing to escape (but maybe a dot or a reserved stem)
    name = item_id if _PLAIN.issuperset(item_id) else _UNSAFE.sub(_escape_match, item_id)
    if name[0] == ".":
        name = "%2E" + name[1:]
    if name[-1] == ".":
        name = name[:-1] + "%2E"
    stem = name.split(".", 1)[0]
    if stem.rstrip(" ") in _RESERVED:
        name = _escape_char(name[0]) + name[1:]
    if len(name) > MAX_NAME:
        cut = KEEP
        while "%" in name[cut - 2 : cut]:  # never inside an escape
            cut -= 1
        if name[cut - 1] == "!":
            cut -= 1
        name = name[:cut] + "~" + blake3.blake3(item_id.encode()).hexdigest(8)
    return name


def is_hashed_name(name: str) -> bool:
    """Whether ``name`` is a long id cut short (its id must be read from the file)."""
    return "~" in name


def decode_name(name: str) -> str | None:
    """The id a name stands for; ``None`` for a hashed long name or one this mapping never writes."""
    if is_hashed_name(name):
        return None
    if name and _PLAIN.issuperset(name):  # the common case: nothing escaped (valid unless it should have been)
        return name if encode_name(name) == name else None
    if not _PLAIN.issuperset(_ESCAPE.sub("", name)):  # a character outside the escapes that is not plain
        return None
    try:  # upper-case letters first: a %21 decoded later is a "!" of the id, not an escape
        text = unquote(_BANG.sub(_upper, name), errors="strict")
    except UnicodeDecodeError:
        return None
    return text if text and encode_name(text) == name else None


_SLUG_DROP = re.compile(r"[^a-z0-9._-]+")


def slug(label: str, limit: int = 60) -> str:
    """A label as a short, safe, lower-case file-name part (``""`` if nothing is left)."""
    text = _SLUG_DROP.sub("-", label.lower()).strip("-.")
    return text[:limit].rstrip("-.")
