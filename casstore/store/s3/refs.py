"""Refs of the S3 backend: one small object per ref under ``refs/``, moved by conditional writes.

:class:`S3Refs` creates with ``IfNoneMatch="*"`` and replaces or deletes with
``IfMatch=<ETag>``; a failed precondition becomes :class:`~casstore.errors.RefConflict`.

S3 keys are at most 1,024 bytes, ref names up to 4,096 characters: a ref whose key
would be too long is stored at ``refs/<its name cut short>!<BLAKE3 of the name>``
(``!`` is no ref-name character) with the full name as the body's third line;
listings read it from there, so callers only ever see real names.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import blake3
from botocore.exceptions import ClientError

from casstore.codec import format_id, parse_id, ref_conflict
from casstore.errors import StorageError
from casstore.store.base import RefStore
from casstore.store.s3.client import S3Client, error_code, is_missing

__all__ = ["MAX_KEY_BYTES", "S3Refs"]

#: The longest object key S3 accepts, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
_HASHED = "!"  # marks a key named by the hash of a long ref name (never a character of a ref name)
_HASH_CHARS = 64


class S3Refs(RefStore):
    """Refs as small objects.  The ETag of each ref's last read or write is remembered, so a
    compare-and-swap whose expected value matches it is one conditional PUT (a stale ETag just
    fails the precondition and the ref is read again); creating a ref needs no read at all."""

    def __init__(self, client: S3Client, prefix: str, pool: ThreadPoolExecutor) -> None:
        self._client = client
        self._prefix = prefix + "refs/"
        self._pool = pool
        self._seen: dict[str, tuple[bytes, str]] = {}  # name → (id, ETag) as last read or written
        self._seen_lock = threading.Lock()
        # a long name keeps this many characters in its key; the hash of the whole name follows
        self._keep = max(0, MAX_KEY_BYTES - len(self._prefix.encode()) - len(_HASHED) - _HASH_CHARS)
        self._long_names: dict[str, str] = {}  # hashed key (after the prefix) → ref name

    def _key(self, name: str) -> str:
        """Where ref ``name`` is stored, after the prefix (names are ASCII: characters are bytes)."""
        if len(self._prefix.encode()) + len(name) <= MAX_KEY_BYTES:
            return name
        key = name[: self._keep] + _HASHED + blake3.blake3(name.encode()).hexdigest()
        self._long_names[key] = name
        return key

    def _remember(self, name: str, digest: bytes | None, etag: str | None) -> None:
        with self._seen_lock:
            if digest is None or etag is None:
                self._seen.pop(name, None)
            else:
                self._seen[name] = (digest, etag)

    def _read(self, name: str) -> tuple[bytes | None, str | None, str | None]:
        """``(id, ETag, write token)`` of a ref, or Nones when it does not exist."""
        stored_name, digest, etag, token = self._fetch(self._key(name))
        if digest is None:
            self._remember(name, None, None)
        elif stored_name != name:
            raise StorageError(f"{self._prefix}{self._key(name)}: holds ref {stored_name!r}, not {name!r}")
        return digest, etag, token

    def _fetch(self, key: str) -> tuple[str, bytes | None, str | None, str | None]:
        """``(ref name, id, ETag, write token)`` of the ref object at ``key``; Nones after the name when absent."""
        try:
            answer = self._client.call("get_object", Key=self._prefix + key)
        except ClientError as exc:
            if is_missing(exc):
                return self._long_names.get(key, key), None, None, None
            raise
        lines = answer["Body"].read().decode("ascii", "replace").split()
        name = key
        if _HASHED in key:
            name = lines[2] if len(lines) > 2 else key
            self._long_names[key] = name
        digest = parse_id(lines[0])
        self._remember(name, digest, answer["ETag"])
        return name, digest, answer["ETag"], lines[1] if len(lines) > 1 else None

    def _get(self, name: str) -> bytes | None:
        return self._read(name)[0]

    def _cas(self, name: str, expected: bytes | None, new: bytes | None) -> None:
        with self._seen_lock:
            seen = self._seen.get(name)
        if expected is None and new is not None:
            etag = None  # create: If-None-Match needs no read
        elif seen is not None and seen[0] == expected:
            etag = seen[1]
        else:
            actual, etag, _ = self._read(name)
            if actual != expected:
                raise ref_conflict(name, expected, actual)
        stored_as = self._key(name)
        key = self._prefix + stored_as
        # The body carries a token unique to this write, so that a retried request can tell
        # its own earlier, answered-but-lost attempt from another writer's.
        token = uuid.uuid4().hex
        full_name = f"{name}\n" if stored_as != name else ""
        body = f"{format_id(new)}\n{token}\n{full_name}".encode() if new is not None else b""
        try:
            if new is None:
                if etag is not None:
                    self._client.call("delete_object", Key=key, IfMatch=etag)
                self._remember(name, None, None)
            else:
                if etag is None:
                    answer = self._client.call("put_object", Key=key, Body=body, IfNoneMatch="*")
                else:
                    answer = self._client.call("put_object", Key=key, Body=body, IfMatch=etag)
                self._remember(name, new, answer.get("ETag"))
        except ClientError as exc:
            if error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict") or is_missing(exc):
                now, _, now_token = self._read(name)
                if (new is None and now is None) or (new is not None and now_token == token):
                    # An earlier attempt of this request landed and its answer was lost (a 5xx, a
                    # dropped connection), so botocore retried it against our own write.  (A delete
                    # that finds the ref gone is done either way.)
                    return
                raise ref_conflict(name, expected, now) from None
            raise

    def _list(self, prefix: str) -> dict[str, bytes]:
        """One LIST; a GET only for refs whose ETag differs from the one remembered (every write's body
        carries a unique token, so an unchanged ETag means an unchanged ref)."""
        out: dict[str, bytes] = {}
        stale = []
        unknown = []  # hashed keys of long names not seen yet: their name is in the body
        with self._seen_lock:
            # a long name's key keeps only its first characters, so list by those
            for item in self._client.list_keys(self._prefix + prefix[: self._keep]):
                key = item["Key"][len(self._prefix) :]
                name = self._long_names.get(key) if _HASHED in key else key
                if name is None:
                    unknown.append(key)
                    continue
                if not name.startswith(prefix):
                    continue
                seen = self._seen.get(name)
                if seen is not None and seen[1] == item.get("ETag"):
                    out[name] = seen[0]
                else:
                    stale.append(name)
        for name, value in zip(stale, self._pool.map(self._get, stale), strict=True):
            if value is not None:
                out[name] = value
        for name, value, _, _ in self._pool.map(self._fetch, unknown):
            if value is not None and name.startswith(prefix):
                out[name] = value
        return dict(sorted(out.items()))
