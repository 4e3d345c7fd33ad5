"""The connection side of the PostgreSQL backend: conninfo, the pool, and what a failure means.

:class:`Database` turns a parsed ``postgresql://`` URL into a libpq conninfo
(the URL's own libpq parameters and the ``PG*`` environment variables apply as
libpq applies them), owns the :class:`psycopg_pool.ConnectionPool`, and runs
each call on one pooled connection (:meth:`Database.run`), translating every
psycopg failure into a :class:`~casstore.errors.StorageError` that names the
server (user, host, port, database; never the password).
:func:`is_transient_error` says which of those may succeed if retried.

Connections are in autocommit mode: a one-statement call costs one round trip,
and a call of several statements opens its own transaction
(``Database.run(..., transaction=True)``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

import psycopg
import psycopg_pool
from psycopg import conninfo as pg_conninfo
from psycopg import pq

from casstore.errors import (
    InvalidStoreURL,
    RefConflict,
    StorageConnectionError,
    StorageError,
    StoragePermissionError,
)
from casstore.store.postgres.options import LIBPQ_OPTIONS
from casstore.store.registry import redact_url

__all__ = ["LIBPQ_OPTIONS", "Database", "is_transient_error"]

T = TypeVar("T")
log = logging.getLogger("casstore.store.postgres")

#: SQLSTATEs worth another attempt: serialization failure, deadlock, the server shutting down or
#: starting, too many connections, connection exceptions (class 08), a lock wait that timed out.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300", "55P03"})
#: What libpq says (no SQLSTATE is given for a failure to connect) when retrying cannot help.
_PERMANENT_CONNECT = re.compile(
    r"password authentication failed|authentication failed|no pg_hba\.conf entry|"
    r"database \".*\" does not exist|role \".*\" does not exist|permission denied|"
    r"password is required|no password supplied|certificate|invalid (?:connection option|URI|integer value)",
    re.IGNORECASE,
)
#: libpq refusing a connection option's value: the URL is wrong, and no retry can help.
_BAD_OPTION = re.compile(
    r"invalid \w+ value|definition of service .* not found|invalid (?:connection option|URI|integer value)",
    re.IGNORECASE,
)
_PERMISSION_CONNECT = re.compile(
    r"authentication failed|no pg_hba\.conf entry|role \".*\" does not exist|permission denied|password",
    re.IGNORECASE,
)


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None) if isinstance(exc, psycopg.Error) else None


def is_transient_error(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a call on a PostgreSQL store, may succeed if the call is made again.

    True for a lost or refused connection, a pool that had no connection in
    time, serialization failures (40001), deadlocks (40P01), a server shutting
    down or starting (57P01 to 57P03) and too many connections; also for the
    :class:`~casstore.errors.StorageConnectionError` raised in their place
    (its ``__cause__`` is the original).  False for authentication, a missing
    database or role, missing privileges, conflicts and bad input.
    """
    if isinstance(exc, StorageError):
        cause = exc.__cause__
        return isinstance(exc, StorageConnectionError) and cause is not None and is_transient_error(cause)
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return True
    state = _sqlstate(exc)
    if state is not None:
        return state in TRANSIENT_SQLSTATES or state.startswith("08")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return not _PERMANENT_CONNECT.search(str(exc))
    return False


def _is_connection_loss(exc: BaseException) -> bool:
    state = _sqlstate(exc)
    if state is not None:
        return state.startswith("08") or state in ("57P01", "57P02", "57P03")
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | psycopg_pool.PoolTimeout)


class Database:
    """One PostgreSQL database reached through a pool (see the module docstring).

    The connection parameters are the URL's (its libpq query parameters
    included; other query parameters are casstore's and ignored here), then
    ``libpq`` (which wins).
    """

    def __init__(
        self,
        url: str,
        libpq: Mapping[str, Any] | None = None,
        *,
        pool_size: int = 4,
        pool_timeout: float = 30.0,
        synchronous_commit: bool = True,
    ) -> None:
        self.scrub = secret_scrubber(url, libpq)
        if pool_size < 1:
            raise InvalidStoreURL(f"pool_size in {self.scrub(url)} must be at least 1, not {pool_size}")
        if not (isinstance(pool_timeout, int | float) and 0 < pool_timeout <= MAX_POOL_TIMEOUT):
            raise InvalidStoreURL(
                f"pool_timeout in {self.scrub(url)} must be a number of seconds above 0 and at most "
                f"{MAX_POOL_TIMEOUT:g}, not {pool_timeout!r}"
            )
        base, _, query = url.split("#", 1)[0].partition("?")
        given = {k: v for k, v in parse_qsl(query) if k in LIBPQ_OPTIONS}  # the URL's own libpq parameters
        given.update((k, str(v)) for k, v in (libpq or {}).items())
        try:
            self.conninfo = pg_conninfo.make_conninfo(base, **given)
            params = pg_conninfo.conninfo_to_dict(self.conninfo)
        except psycopg.ProgrammingError as exc:
            shown = " ".join(str(exc).split())
            raise InvalidStoreURL(self.scrub(f"malformed PostgreSQL URL {url!r}: {shown}")) from None
        self.where = self.scrub(_describe(params))
        self.pool_timeout = pool_timeout
        self._session = [] if synchronous_commit else ["SET synchronous_commit TO off"]
        self.pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pool_size = pool_size

    # ---- connections

    def connect(self) -> psycopg.Connection[Any]:
        """One connection outside the pool (opening: schema checks, migrations), failures translated."""
        try:
            return psycopg.connect(self.conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise self.translate(exc, "connect") from exc

    def open_pool(self) -> None:
        """Start the pool (at least one connection kept open; more opened on demand up to ``pool_size``)."""
        self.pool = psycopg_pool.ConnectionPool(
            self.conninfo,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=self._pool_size,
            configure=self._configure if self._session else None,
            timeout=self.pool_timeout,
            reconnect_timeout=max(60.0, self.pool_timeout),
            name=f"casstore {self.where}",
            open=True,
        )

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        for statement in self._session:
            conn.execute(statement)

    def run(self, what: str, body: Callable[[psycopg.Connection[Any]], T], *, transaction: bool = False) -> T:
        """``body(conn)`` on a pooled connection (in one transaction if asked); failures become StorageErrors.

        A lost connection is dropped by the pool; then every idle one is checked,
        so that after a server restart the next call gets a live connection.
        """
        pool = self.pool
        if pool is None or pool.closed:
            raise StorageError(f"PostgreSQL store {self.where} is closed")
        try:
            with pool.connection() as conn:
                if not transaction:
                    return body(conn)
                with conn.transaction():
                    return body(conn)
        except (RefConflict, StorageError):
            raise
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            if _is_connection_loss(exc) and not pool.closed:
                pool.check()
            raise self.translate(exc, what) from exc

    def translate(self, exc: BaseException, what: str) -> StorageError:
        """``exc`` as the StorageError a caller sees: permission, connection, or plain storage failure."""
        message = self.scrub(f"PostgreSQL {what} on {self.where}: {_first_lines(exc)}")
        state = _sqlstate(exc)
        if isinstance(exc, psycopg_pool.PoolTimeout):
            return StorageConnectionError(
                f"PostgreSQL {what} on {self.where}: no connection within {self.pool_timeout}s"
            )
        if state == "42501" or (state or "").startswith("28"):
            return StoragePermissionError(message)
        if state == "3D000":
            return StorageConnectionError(message)
        if state is None and isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            if _BAD_OPTION.search(str(exc)):
                return InvalidStoreURL(message)
            if _PERMISSION_CONNECT.search(str(exc)):
                return StoragePermissionError(message)
            return StorageConnectionError(message)
        if is_transient_error(exc):
            return StorageConnectionError(message)
        return StorageError(message)

    def close(self) -> None:
        if self.pool is not None and not self.pool.closed:
            self.pool.close()


#: The longest wait for a pooled connection a URL may ask for (an hour).
MAX_POOL_TIMEOUT = 3600.0


def secret_scrubber(url: str, libpq: Mapping[str, Any] | None = None) -> Callable[[str], str]:
    """A function that takes every form of ``url``'s password out of a text (a message, a URL).

    :func:`redact_url` handles a well-formed URL; a malformed one (an unescaped space or ``#`` in
    the password, a bad ``%`` escape) is echoed by libpq in pieces, so the password as written, as
    unquoted and each of its longer pieces are replaced too.
    """
    rest = url.split("://", 1)[-1]
    userinfo = rest.rsplit("@", 1)[0] if "@" in rest else ""
    secrets = {userinfo.partition(":")[2]}
    secrets |= {str(v) for k, v in (libpq or {}).items() if "pass" in k}
    secrets |= {v for k, v in parse_qsl(url.partition("?")[2]) if "pass" in k}
    for secret in list(secrets):
        secrets.add(unquote(secret))
        secrets.update(re.split(r"[\s#%?/@:]+", secret))
    pieces = sorted((piece for piece in secrets if len(piece) >= 3), key=len, reverse=True)

    def scrub(text: str) -> str:
        text = redact_url(text)
        for piece in pieces:
            text = text.replace(piece, "***")
        return text

    return scrub


def _first_lines(exc: BaseException) -> str:
    text = redact_url(str(exc).strip()) or type(exc).__name__
    return " ".join(line.strip() for line in text.splitlines()[:2])


def _describe(params: Mapping[str, Any]) -> str:
    """``user@host:port/database`` as libpq will resolve it (the URL, then ``PG*`` variables, then defaults)."""
    defaults = {opt.keyword.decode(): opt.val.decode() for opt in pq.Conninfo.get_defaults() if opt.val is not None}

    def value(name: str, fallback: str) -> str:
        given = params.get(name) or defaults.get(name)
        return str(given) if given else fallback

    user = value("user", "?")
    host = value("host", "") or value("hostaddr", "the default socket")
    port = value("port", "5432")
    dbname = value("dbname", user)
    return f"{user}@{host}:{port}/{dbname}"
