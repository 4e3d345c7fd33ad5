"""Refs of the S3 backend: one small object per ref under ``refs/``, moved by conditional writes.

:class:`S3Refs` creates with ``IfNoneMatch="*"`` and replaces or deletes with
``IfMatch=<ETag>``; a failed precondition becomes :class:`~casstore.errors.RefConflict`.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError

from casstore.codec import format_id, parse_id, ref_conflict
from casstore.store.base import RefStore
from casstore.store.s3.client import S3Client, error_code, is_missing

__all__ = ["S3Refs"]


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

    def _remember(self, name: str, digest: bytes | None, etag: str | None) -> None:
        with self._seen_lock:
            if digest is None or etag is None:
                self._seen.pop(name, None)
            else:
                self._seen[name] = (digest, etag)

    def _read(self, name: str) -> tuple[bytes | None, str | None, str | None]:
        """``(id, ETag, write token)`` of a ref, or Nones when it does not exist."""
        try:
            answer = self._client.call("get_object", Key=self._prefix + name)
        except ClientError as exc:
            if is_missing(exc):
                self._remember(name, None, None)
                return None, None, None
            raise
        lines = answer["Body"].read().decode("ascii", "replace").split()
        digest = parse_id(lines[0])
        self._remember(name, digest, answer["ETag"])
        return digest, answer["ETag"], lines[1] if len(lines) > 1 else None

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
        key = self._prefix + name
        # The body carries a token unique to this write, so that a retried request can tell
        # its own earlier, answered-but-lost attempt from another writer's.
        token = uuid.uuid4().hex
        body = f"{format_id(new)}\n{token}\n".encode() if new is not None else b""
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
        with self._seen_lock:
            for item in self._client.list_keys(self._prefix + prefix):
                name = item["Key"][len(self._prefix) :]
                seen = self._seen.get(name)
                if seen is not None and seen[1] == item.get("ETag"):
                    out[name] = seen[0]
                else:
                    stale.append(name)
        for name, value in zip(stale, self._pool.map(self._get, stale), strict=True):
            if value is not None:
                out[name] = value
        return dict(sorted(out.items()))
