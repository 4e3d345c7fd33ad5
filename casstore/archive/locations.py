"""Where images live: local files (temp file, then rename) and S3 objects (streamed multipart upload and GET).

A ``.zst`` name means zstd, read with a bounded window and a bounded decompression ratio.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import parse_qs, urlsplit

import zstandard

from casstore.archive.car import _READ_BYTES, DECOMPRESSED_FLOOR, MAX_RATIO, MAX_WINDOW_BYTES
from casstore.errors import (
    InvalidArchive,
    InvalidStoreURL,
    ObjectNotFound,
    StorageConnectionError,
    StorageError,
)
from casstore.store.base import os_error

#: Bytes per multipart upload part (S3's minimum is 5 MiB).
PART_BYTES = 8 << 20

# ---------------------------------------------------------------- where images live: files and S3


def _split_s3(url: str) -> tuple[str, str, dict[str, str]]:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    key = parts.path.lstrip("/")
    if not parts.netloc or not key:
        raise InvalidStoreURL(f"an S3 image URL names a bucket and a key: s3://bucket/path/image.car, not {url!r}")
    unknown = set(query) - {"endpoint_url", "region"}
    if unknown:
        raise InvalidStoreURL(f"unknown option(s) {sorted(unknown)} in {url!r} (takes endpoint_url, region)")
    return parts.netloc, key, query


def _s3_client(bucket: str, query: dict[str, str]) -> Any:
    from casstore.store.s3 import S3Client

    return S3Client(bucket, query.get("endpoint_url"), query.get("region"))


class _MultipartWriter(io.RawIOBase):
    """A write-only stream uploaded to S3 in parts as it fills; nothing is visible until :meth:`finish`."""

    def __init__(self, client: Any, key: str) -> None:
        self.client, self.key = client, key
        self.upload_id = client.call("create_multipart_upload", Key=key)["UploadId"]
        self.parts: list[dict[str, Any]] = []
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        while len(self.buffer) >= PART_BYTES:
            self._upload(bytes(self.buffer[:PART_BYTES]))
            del self.buffer[:PART_BYTES]
        return len(data)

    def _upload(self, body: bytes) -> None:
        number = len(self.parts) + 1
        etag = self.client.call("upload_part", Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body)
        self.parts.append({"ETag": etag["ETag"], "PartNumber": number})

    def finish(self) -> None:
        if self.buffer or not self.parts:
            self._upload(bytes(self.buffer))
            self.buffer.clear()
        self.client.call(
            "complete_multipart_upload", Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def abort(self) -> None:
        self.client.call("abort_multipart_upload", Key=self.key, UploadId=self.upload_id)


@contextmanager
def open_target(target: str) -> Iterator[IO[bytes]]:
    """A stream that becomes ``target`` only if the block exits cleanly (temp file + rename, or multipart)."""
    compress = target.endswith(".zst")
    if target.startswith("s3://"):
        bucket, key, query = _split_s3(target)
        raw: Any = _MultipartWriter(_s3_client(bucket, query), key)
        try:
            yield from _compressed(raw, compress)
        except BaseException:
            raw.abort()
            raise
        raw.finish()
        return
    path = Path(target)
    try:
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:
        raise os_error(exc, f"cannot write an image at {target}") from None
    try:
        with os.fdopen(handle, "wb") as raw:
            yield from _compressed(raw, compress)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise os_error(exc, f"cannot write an image at {target}") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _compressed(raw: IO[bytes], compress: bool) -> Iterator[IO[bytes]]:
    if not compress:  # both targets buffer already (a file object; the multipart writer's parts)
        yield raw
        return
    with zstandard.ZstdCompressor(level=9, threads=-1).stream_writer(raw, closefd=False) as writer:
        yield writer


class _Counted(io.RawIOBase):
    """A raw stream that counts the bytes read from it (the compressed side of a ``.zst`` image)."""

    def __init__(self, raw: Any) -> None:
        super().__init__()
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.raw.read(n)
        self.count += len(data)
        return data

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Reader:
    """``read(n)`` over any stream with ``read``, refilled in chunks of :data:`_READ_BYTES` (varints are read
    a byte at a time).  Over a decompressing stream, refuses to produce more than the ratio bound allows;
    any failure of the stream below becomes a StorageError naming ``source``."""

    def __init__(self, raw: Any, source: str, compressed: _Counted | None = None) -> None:
        self.raw, self.buffer, self.at = raw, b"", 0
        self.source, self.compressed, self.produced = source, compressed, 0

    def read(self, n: int) -> bytes:
        if self.at + n > len(self.buffer):
            self.buffer = self.buffer[self.at :] + self._refill(max(n, _READ_BYTES))
            self.at = 0
        out = self.buffer[self.at : self.at + n]
        self.at += len(out)
        return out

    def _refill(self, n: int) -> bytes:
        try:
            data: bytes = self.raw.read(n)
        except zstandard.ZstdError as exc:
            raise InvalidArchive(f"{self.source} is not a valid zstd stream: {exc}") from None
        except StorageError:
            raise
        except OSError as exc:
            raise os_error(exc, f"cannot read {self.source}") from None
        except Exception as exc:  # a dropped S3 stream (botocore, urllib3): the connection failed
            raise StorageConnectionError(f"reading {self.source} failed: {exc}") from None
        self.produced += len(data)
        if self.compressed is not None and self.produced > DECOMPRESSED_FLOOR + MAX_RATIO * self.compressed.count:
            raise InvalidArchive(
                f"{self.source} decompresses to more than {MAX_RATIO} times its size "
                f"({self.produced:,} bytes from {self.compressed.count:,}): refused as a zstd bomb"
            )
        return data


@contextmanager
def open_source(source: str) -> Iterator[IO[bytes]]:
    """A stream of an image's bytes (decompressed if the name ends in ``.zst``, with the bounds above)."""
    if source.startswith("s3://"):
        from botocore.exceptions import ClientError

        bucket, key, query = _split_s3(source)
        try:
            raw: Any = _s3_client(bucket, query).call("get_object", Key=key)["Body"]
        except ClientError as exc:
            raise ObjectNotFound(str(source), f"no image at {source}: {exc}") from None
    else:
        if not Path(source).is_file():
            raise ObjectNotFound(str(source), f"no image at {source}")
        try:
            raw = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise os_error(exc, f"cannot read {source}") from None
    try:
        if source.endswith(".zst"):
            counted = _Counted(raw)
            decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_BYTES)
            raw = decompressor.stream_reader(cast(IO[bytes], counted), read_size=_READ_BYTES // 8, closefd=True)
            yield _Reader(raw, source, counted)  # type: ignore[misc]
        else:
            yield _Reader(raw, source)  # type: ignore[misc]
    except zstandard.ZstdError as exc:
        raise InvalidArchive(f"{source} is not a valid zstd stream: {exc}") from None
    finally:
        raw.close()
