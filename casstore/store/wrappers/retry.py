"""``RetryingStore``: retries the calls that failed transiently, with exponential backoff and jitter.

Whether a failure is transient is the backend's call: the store below answers
:meth:`~casstore.store.base.ObjectStore.is_transient` (a wrapper forwards it
to the backend at the bottom), so throttling or a dropped connection is
retried and a missing object, a conflict or bad input is raised at once.
After the last attempt the failure is raised as
:class:`~casstore.errors.StorageConnectionError` (the original is its
``__cause__``), so callers see one casstore error whatever the backend.

Every call the protocols define is safe to repeat: objects are immutable and
named by their hash, and a ref only moves by compare-and-swap.  The one
ambiguity is a ref move whose answer was lost: the retry then finds the ref
already moved.  A retried ``compare_and_swap`` / ``delete`` that meets a
:class:`~casstore.errors.RefConflict` with the ref already at the intended
value, and a retried ``commit`` / ``receive_pack`` whose required refs all
are, succeed: the earlier attempt landed.  ``iter_hashes`` is retried until
its first digest; a transient failure later in the iteration cannot resume
and is raised as :class:`~casstore.errors.StorageConnectionError`.  A
``fetch_packs`` answer cut part way is asked for again, whole.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

from casstore.errors import RefConflict, StorageConnectionError
from casstore.pack import read_pack
from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefStore, RefUpdate, validate_digest
from casstore.store.registry import redact_exception, redact_url
from casstore.store.wrappers.base import WrappedBlobs, WrappedRefs, WrappedStore

__all__ = ["DEFAULT_BASE_DELAY", "DEFAULT_MAX_DELAY", "RetriesExhausted", "RetryPolicy", "RetryingStore"]

T = TypeVar("T")
log = logging.getLogger("casstore.store.retry")

DEFAULT_BASE_DELAY = 0.1
DEFAULT_MAX_DELAY = 5.0


class RetriesExhausted(StorageConnectionError):
    """A call that kept failing transiently until its last attempt (the last failure is ``__cause__``)."""

    def __init__(self, message: str, call: str, attempts: int) -> None:
        super().__init__(message)
        self.call = call
        self.attempts = attempts


class RetryPolicy:
    """How often and how patiently to retry, and the count of attempts made (shared by a store's layers).

    Attempt ``n`` (from 1) that fails transiently waits ``min(max_delay, base_delay * 2**(n-1))``
    scaled by a random factor in ``[0.5, 1)`` (jitter, so many clients do not retry in step).
    """

    def __init__(
        self,
        is_transient: Callable[[BaseException], bool],
        url: str,
        *,
        attempts: int = 4,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        if base_delay < 0 or max_delay < 0:
            raise ValueError("retry delays cannot be negative")
        self.is_transient = is_transient
        self.url = redact_url(url)
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.jitter = jitter
        self._lock = threading.Lock()
        #: Every attempt made, first tries included (for tests and metrics).
        self.attempts_made = 0
        #: Attempts that failed transiently and were tried again.
        self.retries_made = 0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (from 1)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + self.jitter() / 2)

    def run(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, tried again while it fails transiently (``what`` names it in logs and errors)."""
        attempt = 0
        while True:
            attempt += 1
            with self._lock:
                self.attempts_made += 1
            try:
                return call()
            except (RefConflict, RetriesExhausted):  # a conflict needs a new plan; an inner retry already gave up
                raise
            except Exception as exc:
                if not self.is_transient(exc):
                    raise
                if attempt >= self.attempts:
                    raise self.exhausted(what, attempt, exc) from exc
                self.back_off(what, attempt, exc)

    def back_off(self, what: str, attempt: int, exc: BaseException) -> None:
        """Log failed attempt ``attempt`` of ``what`` and wait before the next one."""
        wait = self.delay(attempt)
        log.warning(
            "%s on %s failed (attempt %d of %d), retrying in %.2fs: %s",
            what,
            self.url,
            attempt,
            self.attempts,
            wait,
            redact_url(str(exc)),
        )
        with self._lock:
            self.retries_made += 1
        self.sleep(wait)

    def move(self, what: str, call: Callable[[], None], landed: Callable[[], bool]) -> None:
        """A ref move, retried; a retry that meets a :class:`RefConflict` succeeds if ``landed()`` (re-read) says so."""
        tries = 0

        def attempt() -> None:
            nonlocal tries
            tries += 1
            try:
                call()
            except RefConflict:
                if tries == 1 or not self.run(f"{what} (re-read)", landed):
                    raise

        self.run(what, attempt)

    def exhausted(self, what: str, attempts: int, exc: BaseException) -> RetriesExhausted:
        """The error raised when ``exc`` ended the last attempt (``exc`` becomes its cause, secrets redacted)."""
        redact_exception(exc)
        detail = redact_url(str(exc)) or type(exc).__name__
        noun = "attempt" if attempts == 1 else "attempts"
        return RetriesExhausted(f"{what} on {self.url} failed after {attempts} {noun}: {detail}", what, attempts)


class RetryingBlobs(WrappedBlobs):
    def __init__(self, inner: BlobStore, policy: RetryPolicy) -> None:
        super().__init__(inner)
        self.policy = policy

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        self.policy.run("blobs.put_frames", lambda: self.inner.put_frames(items))

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        return self.policy.run("blobs.get_frames", lambda: self.inner.get_frames(digests))

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        wanted = digests if isinstance(digests, Collection) else list(digests)  # a retry reads them again
        return self.policy.run("blobs.missing", lambda: self.inner.missing(wanted))

    def iter_hashes(self) -> Iterator[bytes]:
        def start() -> tuple[Iterator[bytes], list[bytes]]:
            inner = iter(self.inner.iter_hashes())
            first = next(inner, None)
            return inner, [] if first is None else [first]

        inner, first = self.policy.run("blobs.iter_hashes", start)
        return self._rest(inner, first)

    def _rest(self, inner: Iterator[bytes], first: list[bytes]) -> Iterator[bytes]:
        yield from first
        try:
            yield from inner
        except Exception as exc:
            if not self.policy.is_transient(exc):
                raise
            raise self.policy.exhausted("blobs.iter_hashes (after its first digests)", 1, exc) from exc

    def delete_many(self, digests: Iterable[bytes]) -> int:
        doomed = digests if isinstance(digests, Collection) else list(digests)
        return self.policy.run("blobs.delete_many", lambda: self.inner.delete_many(doomed))

    def written_since(self, timestamp: float) -> set[bytes]:
        return self.policy.run("blobs.written_since", lambda: self.inner.written_since(timestamp))

    def stats(self) -> BlobStats:
        return self.policy.run("blobs.stats", self.inner.stats)


def _at(refs: RefStore, name: str, new: bytes | str | None) -> Callable[[], bool]:
    """Whether ``name`` already holds ``new`` (``None``: is absent): a lost answer's move did land."""
    return lambda: refs.get(name) == validate_digest(new)


class RetryingRefs(WrappedRefs):
    def __init__(self, inner: RefStore, policy: RetryPolicy) -> None:
        super().__init__(inner)
        self.policy = policy

    def get(self, name: str) -> bytes | None:
        return self.policy.run("refs.get", lambda: self.inner.get(name))

    def compare_and_swap(self, name: str, expected: bytes | str | None, new: bytes | str) -> None:
        move = lambda: self.inner.compare_and_swap(name, expected, new)  # noqa: E731
        self.policy.move("refs.compare_and_swap", move, _at(self.inner, name, new))

    def delete(self, name: str, expected: bytes | str | None) -> None:
        self.policy.move("refs.delete", lambda: self.inner.delete(name, expected), _at(self.inner, name, None))

    def list(self, prefix: str = "") -> dict[str, bytes]:
        return self.policy.run("refs.list", lambda: self.inner.list(prefix))


class RetryingStore(WrappedStore):
    """Retries the transient failures of ``inner`` (see the module docstring).

    ``attempts`` counts the first try (``attempts=1`` never retries); the
    backoff is ``base_delay`` doubled per attempt up to ``max_delay``, with
    jitter.  :attr:`policy` holds the counts of attempts made (``attempts_made``,
    ``retries_made``).  ``sleep`` and ``jitter`` are injectable for tests.
    """

    blobs: RetryingBlobs
    refs: RetryingRefs

    def __init__(
        self,
        inner: ObjectStore,
        *,
        attempts: int = 4,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.policy = RetryPolicy(
            inner.is_transient,
            inner.url,
            attempts=attempts,
            base_delay=base_delay,
            max_delay=max_delay,
            sleep=sleep,
            jitter=jitter,
        )
        super().__init__(inner, RetryingBlobs(inner.blobs, self.policy), RetryingRefs(inner.refs, self.policy))

    @property
    def attempts_made(self) -> int:
        """Every attempt of every call so far, first tries included."""
        return self.policy.attempts_made

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        self.policy.move("commit", lambda: self.inner.commit(frames, updates), self._all_landed(updates))

    def receive_pack(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        stored: int | None = None

        def send() -> None:
            nonlocal stored
            stored = self.inner.receive_pack(pack, updates)

        self.policy.move("receive_pack", send, self._all_landed(updates))
        if stored is None:  # an earlier attempt landed but its answer was lost: it stored every entry
            stored = sum(1 for _ in read_pack(pack))
        return stored

    def fetch_packs(
        self,
        want: Sequence[tuple[bytes, str]],
        have: Sequence[tuple[bytes, str]],
        bases: Mapping[bytes, bytes] | None = None,
    ) -> Iterator[bytes] | None:
        # a read: opening it is retried, and so is an answer cut mid-stream (see _resumed)
        def ask() -> Iterator[bytes] | None:
            return self.inner.fetch_packs(want, have, bases)

        packs = self.policy.run("fetch_packs", ask)
        return None if packs is None else self._resumed(packs, ask)

    def _resumed(self, packs: Iterator[bytes], ask: Callable[[], Iterator[bytes] | None]) -> Iterator[bytes]:
        """``packs``, asked for again whole when the answer fails transiently part way (within the policy's
        attempts).  The packs yielded before the failure are whole and children first, so the caller has
        stored them; they come again in the new answer and are stored again, which changes nothing."""
        attempt = 1
        while True:
            try:
                yield from packs
                return
            except (RefConflict, RetriesExhausted):
                raise
            except Exception as exc:
                if not self.policy.is_transient(exc):
                    raise
                if attempt >= self.policy.attempts:
                    raise self.policy.exhausted("fetch_packs (its answer)", attempt, exc) from exc
                self.policy.back_off("fetch_packs (its answer)", attempt, exc)
                attempt += 1
                again: Iterator[bytes] | None = self.policy.run("fetch_packs", ask)
                packs = again if again is not None else iter(())

    def _all_landed(self, updates: Sequence[RefUpdate]) -> Callable[[], bool]:
        """Whether every required update of a commit already holds its new value (the earlier attempt landed)."""
        required = [update for update in updates if update.required]
        return lambda: bool(required) and all(self.inner.refs.get(u.name) == u.new for u in required)
