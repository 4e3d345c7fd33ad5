"""The layout's errors (both :class:`~casstore.errors.StorageError` subclasses, documented in docs/errors.md)."""

from __future__ import annotations

from casstore.errors import StorageError

__all__ = ["InvalidLayout", "UncommittedEdits"]


class UncommittedEdits(StorageError):
    """A write to a network whose files hold hand edits not yet committed (``casstore commit``, or force)."""

    code = "UNCOMMITTED_EDITS"

    def __init__(self, message: str, paths: list[str]) -> None:
        super().__init__(message)
        self.paths = paths


class InvalidLayout(StorageError, ValueError):
    """A file of the layout that cannot be read: bad JSON or a bad field; the message names file and line."""

    code = "INVALID_LAYOUT"
