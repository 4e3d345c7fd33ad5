"""What a store URL typed at the CLI points at, checked before it is opened.

``open_object_store`` takes anything without ``://`` for a local LMDB path, so ``s3:/bkt`` would
become a directory named ``s3:``; and a missing store is reported the same whether the path is
empty, a regular file, or a store of another backend.  These checks say what is there instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from casstore.cli.output import fail
from casstore.store.file import MARKER as FILE_STORE_MARKER
from casstore.store.registry import known_schemes, parse_location

__all__ = ["check_store_url", "local_kind", "looks_like_url"]

LMDB_MARKER = "data.mdb"
# a scheme-like start ("s3:", "lmdb:") that is not a Windows drive letter ("C:")
_SCHEME_LIKE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def looks_like_url(text: str) -> bool:
    return "://" in text or _SCHEME_LIKE.match(text) is not None


def local_kind(path: Path) -> str | None:
    """``"lmdb"``, ``"file"`` (a casstore store of that backend), ``"regular file"``, ``"other"`` or None (absent)."""
    if not path.exists():
        return None
    if not path.is_dir():
        return "regular file"
    if (path / LMDB_MARKER).exists():
        return "lmdb"
    if (path / FILE_STORE_MARKER).exists():
        return "file"
    return "other"


def check_store_url(url: str, *, create: bool) -> None:
    """Fail with a clear one-line error if ``url`` is malformed or points at something that is not its store.

    A good URL passes silently (the backend reports anything else); a missing store is left to the
    backend, whose message already says to run ``casstore init``.
    """
    match = _SCHEME_LIKE.match(url)
    if "://" not in url and match:
        scheme, rest = match.group(1), url[match.end() :]
        if scheme.lower() in known_schemes():
            fixed = f"{scheme}://{rest.lstrip('/')}" if scheme.lower() == "s3" else f"{scheme}:///{rest.lstrip('/')}"
            fail(f"store URL {url!r} is malformed: a URL needs '://' (did you mean {fixed!r}?)", "INVALID_STORE_URL")
        fail(
            f"store URL {url!r} looks like a URL with the unknown scheme {scheme!r}; "
            f"known: {', '.join(known_schemes())} (for a local path with a colon, write ./{url})",
            "INVALID_STORE_URL",
        )
    location = parse_location(url)
    if location.scheme not in ("lmdb", "file") or not location.where:
        return
    path = Path(location.where)
    kind = local_kind(path)
    if kind == "regular file":
        fail(f"{path} is a regular file, not a casstore store; choose another path", "NOT_A_STORE")
    if kind in ("lmdb", "file") and kind != location.scheme:
        right = f"lmdb://{path.resolve()} (or the bare path)" if kind == "lmdb" else f"file://{path.resolve()}"
        fail(f"{url} holds a casstore {kind} store, not a {location.scheme} one: use {right}", "WRONG_BACKEND")
    if kind == "other" and not create:
        fail(
            f"{path} is a directory but not a casstore store (create one with `casstore init {path}`)",
            "STORE_NOT_FOUND",
        )
