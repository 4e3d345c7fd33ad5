"""casstore errors as HTTP answers: a status and a JSON body ``{"code", "message", …}`` the client maps back."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from casstore import errors

__all__ = ["HttpError", "error_response", "status_of"]


class HttpError(Exception):
    """An answer decided by the server itself (auth, limits, append-only): status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_STATUS: list[tuple[type[errors.StorageError], int]] = [
    (errors.RefConflict, 409),
    (errors.ObjectNotFound, 404),
    (errors.StoreNotFound, 404),
    (errors.StoragePermissionError, 403),
    (errors.StoreReadOnly, 403),
    (errors.StorageConnectionError, 503),
    (errors.CorruptObject, 400),
    (errors.InvalidPack, 400),
    (errors.InvalidId, 400),
    (errors.InvalidRefName, 400),
    (errors.SerializationError, 400),
]


def status_of(exc: errors.StorageError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(exc: Exception) -> JSONResponse:
    if isinstance(exc, HttpError):
        return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status)
    if not isinstance(exc, errors.StorageError):
        return JSONResponse({"code": "SERVER_ERROR", "message": f"{type(exc).__name__}"}, status_code=500)
    body: dict[str, Any] = {"code": exc.code, "message": str(exc)}
    if isinstance(exc, errors.RefConflict):
        body.update(name=exc.name, expected=exc.expected, actual=exc.actual)
    if isinstance(exc, errors.ObjectNotFound | errors.CorruptObject):
        body["object_id"] = exc.object_id
    return JSONResponse(body, status_code=status_of(exc))
