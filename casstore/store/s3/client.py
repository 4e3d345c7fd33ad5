"""The S3 connection: one boto3 client per bucket, its errors translated and classified.

:class:`S3Client` turns every failure but the answers its callers act on
(:data:`ANSWER_CODES`) into casstore's :class:`~casstore.errors.StorageError`
subclasses, so no botocore exception escapes a public call, and counts requests by
operation; :func:`is_missing` and :func:`error_code` read a ``ClientError``;
:func:`is_transient_error` says which failures may succeed if retried.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from casstore.errors import StorageConnectionError, StoragePermissionError

__all__ = [
    "ANSWER_CODES",
    "THROTTLING_CODES",
    "TRANSIENT_CODES",
    "TRANSIENT_STATUSES",
    "S3Client",
    "error_code",
    "is_missing",
    "is_transient_error",
]

_PERMISSION_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}
#: Error codes of a throttled request (S3's ``SlowDown`` and the ones botocore's retry mode knows).
THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
    }
)
#: Error codes of a server-side failure or timeout that a later attempt may not meet.
TRANSIENT_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"}
)
#: Error codes :meth:`S3Client.call` raises as botocore's ``ClientError``: answers its callers act on.
ANSWER_CODES = frozenset(
    {"NoSuchKey", "404", "NotFound", "PreconditionFailed", "ConditionalRequestConflict", "InvalidRange"}
)
#: HTTP statuses of throttling (429) and server errors (5xx), whatever the error code says.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class S3Client:
    """A boto3 client for one bucket: errors translated, requests counted by operation."""

    def __init__(self, bucket: str, endpoint_url: str | None, region: str | None) -> None:
        self.bucket = bucket
        config = Config(
            retries={"mode": "standard", "max_attempts": 8},
            max_pool_connections=32,
            connect_timeout=5,
            read_timeout=60,
        )
        try:
            self.s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1", config=config)
        except BotoCoreError as exc:
            raise StorageConnectionError(f"cannot set up S3 access to {bucket!r}: {exc}") from None
        self.endpoint = self.s3.meta.endpoint_url
        self.requests: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self.s3.meta.events.register("before-call.s3", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        with self._count_lock:
            self.requests[model.name] += 1

    def call(self, operation: str, **kwargs: Any) -> Any:
        """Run one S3 operation on the bucket; every failure but an *answer* becomes a StorageError.

        Answers are the ``ClientError`` s a caller acts on (:data:`ANSWER_CODES`: a missing key, a failed
        precondition, a range past the end), raised as botocore raised them.  Anything else — throttling
        or server errors left after botocore's retries, dropped connections, timeouts, any other botocore
        failure — is a :class:`~casstore.errors.StorageConnectionError`, or a
        :class:`~casstore.errors.StoragePermissionError` for denied access and bad credentials (raised
        ``from None``, the original kept as ``__context__`` for :func:`is_transient_error`).
        """
        where = f"S3 bucket {self.bucket!r} at {self.endpoint}"
        try:
            return getattr(self.s3, operation)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket" or (operation == "head_bucket" and status == 404):
                raise StorageConnectionError(f"{where}: the bucket does not exist") from None
            if code in _PERMISSION_CODES or status == 403:
                raise StoragePermissionError(f"{where}: permission denied ({code or status})") from None
            if code in ANSWER_CODES:
                raise
            raise StorageConnectionError(f"{where}: {operation} failed ({code or status}): {exc}") from None
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise StoragePermissionError(f"{where}: {exc}") from None
        except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
            raise StorageConnectionError(f"{where} unreachable: {exc}") from None
        except BotoCoreError as exc:  # a dropped connection, a failed checksum, …
            raise StorageConnectionError(f"{where}: {operation} failed: {exc}") from None

    def read(self, key: str, **kwargs: Any) -> bytes:
        """The body of ``get_object`` (a failure while streaming it is a StorageConnectionError too)."""
        answer = self.call("get_object", Key=key, **kwargs)
        try:
            body: bytes = answer["Body"].read()
        except (BotoCoreError, OSError, ValueError) as exc:  # botocore's and urllib3's streaming errors
            raise StorageConnectionError(f"S3 bucket {self.bucket!r}: reading {key} failed: {exc}") from None
        return body

    def list_keys(self, prefix: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.call("list_objects_v2", **kwargs)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_missing(exc: ClientError) -> bool:
    return error_code(exc) in ("NoSuchKey", "404", "NotFound")


def is_transient_error(exc: BaseException) -> bool:
    """Whether ``exc``, raised by an S3 call, may succeed if the call is made again.

    True for throttling and server errors (by code or HTTP status), timeouts and
    dropped or refused connections, and a :class:`~casstore.errors.StorageConnectionError`
    raised while handling one of those (:meth:`S3Client.call` raises it ``from None``,
    so the original is its ``__context__``).  False for everything else: missing
    keys, failed preconditions, denied access, conflicts, corrupt data, bad input.
    These errors arrive after botocore's own retries (its "standard" mode) ran out.
    """
    if isinstance(exc, ClientError):
        if error_code(exc) in THROTTLING_CODES or error_code(exc) in TRANSIENT_CODES:
            return True
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in TRANSIENT_STATUSES
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True  # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError, ...
    if isinstance(exc, StorageConnectionError):
        wrapped = exc.__cause__ or exc.__context__
        return wrapped is not None and is_transient_error(wrapped)
    return False
