"""Every error casstore raises on purpose.

Each is a :class:`StorageError` with a stable machine-readable ``code``; the
message names what was wrong (an id, a ref, a path inside a value).
"""

from __future__ import annotations

__all__ = [
    "CorruptObject",
    "GroupNotFound",
    "InvalidArchive",
    "InvalidConfig",
    "InvalidId",
    "InvalidPack",
    "InvalidRefName",
    "InvalidStoreURL",
    "NetworkExists",
    "NetworkNotFound",
    "ObjectNotFound",
    "RefConflict",
    "RemoteExists",
    "RemoteNotFound",
    "SerializationError",
    "SnapshotNotFound",
    "StorageConnectionError",
    "StorageError",
    "StoragePermissionError",
    "StoreNotFound",
    "StoreReadOnly",
]


class StorageError(Exception):
    """Base class of every casstore error."""

    code = "STORAGE_ERROR"


class SerializationError(StorageError, ValueError):
    """A value is outside the object format's data model.

    ``path`` names the offending part, e.g. ``content["a"][3]``.
    """

    code = "STORAGE_SERIALIZATION_ERROR"

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class InvalidId(StorageError, ValueError):
    """Text or bytes that do not name an object (or name one ambiguously)."""

    code = "INVALID_ID"


class InvalidRefName(StorageError, ValueError):
    """A ref name that could escape its namespace or is otherwise malformed."""

    code = "INVALID_REF_NAME"


class InvalidStoreURL(StorageError, ValueError):
    """A store URL with an unknown scheme or a malformed location."""

    code = "INVALID_STORE_URL"


class InvalidConfig(StorageError, ValueError):
    """A storage or scheduler configuration with bad fields; the message lists every one of them."""

    code = "INVALID_CONFIG"


class StoreNotFound(StorageError):
    """The store named by a URL does not exist (and was not asked to be created)."""

    code = "STORE_NOT_FOUND"


class ObjectNotFound(StorageError, KeyError):
    """An object id that the store does not hold."""

    code = "OBJECT_NOT_FOUND"

    def __init__(self, object_id: str, message: str | None = None) -> None:
        super().__init__(message or f"object {object_id} not found")
        self.object_id = object_id

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class CorruptObject(StorageError):
    """Stored bytes that do not hash to their id, or cannot be unframed."""

    code = "STORAGE_CORRUPTION_ERROR"

    def __init__(self, object_id: str, reason: str = "content does not match its id") -> None:
        super().__init__(f"object {object_id} is corrupt: {reason}")
        self.object_id = object_id


class RefConflict(StorageError):
    """A compare-and-swap found a ref at a value other than the expected one.

    ``expected`` and ``actual`` are printable ids (``None``: no ref); build one
    from raw digests with :func:`casstore.codec.ref_conflict`.
    """

    code = "REF_CONFLICT"

    def __init__(self, name: str, expected: str | None, actual: str | None) -> None:
        super().__init__(f"ref {name!r} is at {actual or 'nothing'}, expected {expected or 'nothing'}")
        self.name = name
        self.expected = expected
        self.actual = actual


class StorageConnectionError(StorageError):
    """A remote store could not be reached (or its bucket does not exist)."""

    code = "STORAGE_CONNECTION_ERROR"


class StoragePermissionError(StorageError):
    """A remote store refused the credentials or the operation."""

    code = "STORAGE_PERMISSION_ERROR"


class NetworkNotFound(StorageError):
    code = "NETWORK_NOT_FOUND"


class NetworkExists(StorageError):
    """A restore would replace a network whose head differs from the image (pass ``force``)."""

    code = "NETWORK_EXISTS"


class GroupNotFound(StorageError):
    code = "GROUP_NOT_FOUND"


class SnapshotNotFound(StorageError):
    code = "SNAPSHOT_NOT_FOUND"


class RemoteNotFound(StorageError):
    """A remote name that the store has no record of."""

    code = "REMOTE_NOT_FOUND"


class RemoteExists(StorageError):
    """``remote add`` of a name the store already knows, with another URL."""

    code = "REMOTE_EXISTS"


class InvalidPack(StorageError):
    """A sync pack (the byte stream a transfer sends) that is truncated or malformed."""

    code = "INVALID_PACK"


class InvalidArchive(StorageError):
    """An archive (CAR image) that is truncated, malformed, or fails its hashes."""

    code = "INVALID_ARCHIVE"


class StoreReadOnly(StorageError):
    """A write to a store opened read-only (``read_only=on``); the message names the store and the call."""

    code = "READ_ONLY"
