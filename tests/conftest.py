"""Shared fixtures: fake AWS credentials, an in-process S3 (moto's mock_aws), a moto server over HTTP, PostgreSQL.

PostgreSQL (``postgres_server``): the server ``$CASSTORE_PG_URL`` names, else a
throwaway cluster started for the session when PostgreSQL's binaries are
installed; without either the PostgreSQL tests skip, naming what is missing,
except in CI (``CI=true``), where they fail instead."""

from __future__ import annotations

import itertools
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

# The conformance suites' asserts report their values, as the tests' own do (must precede their import).
pytest.register_assert_rewrite("casstore.testing")

if TYPE_CHECKING:
    from casstore.model import NetworkStore

BUCKET = "casstore-test"

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ[_name] = _value  # never real credentials, whatever the environment holds


@pytest.fixture(scope="session", autouse=True)
def _atomic_conditional_writes() -> Iterator[None]:
    """Make moto apply conditional writes atomically, as S3 does.

    moto checks ``If-Match`` / ``If-None-Match`` and then writes, without a lock, so
    two concurrent conditional PUTs can both succeed; S3 itself never allows that.
    The compare-and-swap race tests would otherwise be testing moto, not casstore.
    """
    from moto.s3.responses import S3Response

    lock = threading.Lock()
    originals = {name: getattr(S3Response, name) for name in ("put_object", "delete_object")}

    def atomic(original: Any) -> Any:
        def handler(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)

        return handler

    for name, original in originals.items():
        setattr(S3Response, name, atomic(original))
    yield
    for name, original in originals.items():
        setattr(S3Response, name, original)


@pytest.fixture
def mock_s3() -> Iterator[None]:
    """moto's in-process S3 with the test bucket."""
    from moto import mock_aws

    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield


@pytest.fixture(scope="session")
def _moto_server() -> Iterator[str]:
    """A moto S3 server on a free loopback port, over real HTTP; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def moto_server(_moto_server: str) -> str:
    """The server's endpoint, with the test bucket present.

    The server shares moto's in-process backend, which leaving a ``mock_aws`` block resets.
    """
    client = boto3.client("s3", endpoint_url=_moto_server, region_name="us-east-1")
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    return _moto_server


@pytest.fixture
def make(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], NetworkStore]]:
    """A factory of fresh stores of any backend case in ``tests/backends.py``, by name (``"s3"``: moto in-process)."""
    from backends import case_named  # backends imports this module

    from casstore.model import NetworkStore

    opened: list[NetworkStore] = []
    counter = itertools.count()

    def make_store(kind: str) -> NetworkStore:
        case = case_named(kind)
        store = NetworkStore(case.open(tmp_path / f"{kind}-{next(counter)}", case.fixture_values(request)))
        opened.append(store)
        return store

    yield make_store
    for store in opened:
        store.close()


@pytest.fixture
def cli(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the CLI in-process in a fresh directory: ``cli(*args, input=None, code=0)`` returns click's Result
    (``code=None``: any exit status, for the caller to judge)."""
    from click.testing import CliRunner

    from casstore.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("CASSTORE_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, code: int | None = 0) -> Any:
        result = runner.invoke(main, list(args), input=input, catch_exceptions=False)
        assert code is None or result.exit_code == code, result.output + result.stderr
        return result

    return invoke


class _Body:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body

    def read(self, *_: Any) -> bytes:
        return self.body


@contextmanager
def s3_faults(client: Any, rate: float, seed: int) -> Iterator[list[str]]:
    """Answer a fraction ``rate`` of an S3Client's requests with a throttle or a 500 (botocore event hook)."""
    from botocore.awsrequest import AWSResponse

    rnd = random.Random(seed)
    injected: list[str] = []

    def flaky(request: Any, **_: Any) -> Any:
        if rnd.random() < rate:
            status, code = rnd.choice([(503, "SlowDown"), (500, "InternalError")])
            injected.append(code)
            body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            return AWSResponse(request.url, status, {}, _Body(body))
        return None

    client.s3.meta.events.register("before-send.s3", flaky)
    try:
        yield injected
    finally:
        client.s3.meta.events.unregister("before-send.s3", flaky)


# ---------------------------------------------------------------- PostgreSQL


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason`` (a developer's machine), or fail with it in CI, where every test must run."""
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class PgTestServer:
    """The session's PostgreSQL server: a base URL (a database, no schema) and this session's schema names."""

    url: str
    #: Distinguishes this session's schemas from any other run's on the same server.
    token: str

    def schema_for(self, path: Path) -> str:
        """The schema of the store "at" ``path``: the same path, the same store (as for the file backends)."""
        import blake3

        return f"t{self.token}_{blake3.blake3(str(path).encode()).hexdigest()[:20]}"

    def store_url(self, path: Path, **options: str) -> str:
        extra = "".join(f"&{key}={value}" for key, value in options.items())
        return f"{self.url}{'&' if '?' in self.url else '?'}schema={self.schema_for(path)}{extra}"

    def fresh_url(self, **options: str) -> str:
        return self.store_url(Path(uuid.uuid4().hex), **options)


def _drop_schemas(url: str, token: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"t{token}\\_%",)).fetchall()
        for (name,) in rows:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def private_pool_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """psycopg_pool jitters connection lifetimes with the global ``random`` from its worker threads,
    which inside a Hypothesis state machine may happen mid-draw (Hypothesis then warns of global
    random use in a strategy): give the pool a ``Random`` of its own."""
    monkeypatch.setattr("psycopg_pool.base.random", random.Random(0).random)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgTestServer]:
    """``$CASSTORE_PG_URL``'s server, or a throwaway cluster for this session (see the module docstring)."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        skip_or_fail("psycopg / psycopg_pool are not installed (pip install -e '.[test]')")
    token = uuid.uuid4().hex[:8]
    given = os.environ.get("CASSTORE_PG_URL")
    if given:
        yield PgTestServer(given, token)
        _drop_schemas(given, token)
        return
    from casstore.store.postgres.throwaway import find_bin_dir, start_cluster

    if find_bin_dir() is None:
        skip_or_fail("no PostgreSQL server: CASSTORE_PG_URL is unset and initdb is not installed")
    cluster = start_cluster()
    try:
        yield PgTestServer(cluster.url(), token)
    finally:
        cluster.stop()


# ---------------------------------------------------------------- casstore serve (the http(s):// backend)


class ServedStores:
    """One ASGI app answering ``/t/<key>/…`` with a casstore server over a memory store per key (made on first use).

    The test's path names the key, so the same path reaches the same store (as for the file backends);
    :meth:`backing` is that store, for damaging an object behind the server's back.
    """

    def __init__(self) -> None:
        from casstore.store.memory import MemoryStore

        self._memory = MemoryStore
        self.stores: dict[str, Any] = {}
        self.apps: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.base = ""
        #: The httpx transport that reaches the app in this process (set by :func:`asgi_stores`).
        self.transport: Any = None

    @staticmethod
    def key_for(path: Path) -> str:
        import blake3

        return blake3.blake3(str(path).encode()).hexdigest()[:24]

    def backing(self, path: Path) -> Any:
        return self._app(self.key_for(path)).state.casstore.store

    def url_for(self, path: Path, **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"{self.base}/t/{self.key_for(path)}" + (f"?{query}" if query else "")

    def _app(self, key: str) -> Any:
        from casstore.server import create_app

        with self.lock:
            app = self.apps.get(key)
            if app is None:
                app = self.apps[key] = create_app(self._memory(f"memory://served-{key}"))
            return app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        parts = path.split("/", 3)
        if scope["type"] != "http" or len(parts) < 3 or parts[1] != "t":
            return
        key = parts[2]
        inner = dict(scope, path="/" + (parts[3] if len(parts) > 3 else ""), root_path=f"/t/{key}")
        await self._app(key)(inner, receive, send)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def uvicorn_thread(app: Any, **config: Any) -> Iterator[int]:
    """Serve ``app`` with uvicorn on a free loopback port in a daemon thread; yields the port."""
    import time

    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **config)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def served_stores() -> Iterator[ServedStores]:
    """A real uvicorn server on 127.0.0.1 (plain HTTP) serving a store per test path (see :class:`ServedStores`)."""
    served = ServedStores()
    with uvicorn_thread(served) as port:
        served.base = f"http://127.0.0.1:{port}"
        yield served


@pytest.fixture(scope="session")
def asgi_stores() -> ServedStores:
    """:class:`ServedStores` reached in this process through an ASGI transport (no socket, no uvicorn).

    Open its stores with ``open_object_store(asgi_stores.url_for(path), transport=asgi_stores.transport)``.
    """
    from casstore.store.http.transport import AsgiTransport

    served = ServedStores()
    served.base = "http://casstore.asgi"
    served.transport = AsgiTransport(served)
    return served


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1 and its key, generated for the session."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    where = tmp_path_factory.mktemp("tls")
    files = TlsFiles(where / "cert.pem", where / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


@pytest.fixture(scope="session")
def served_stores_tls(tls_files: TlsFiles) -> Iterator[ServedStores]:
    """:func:`served_stores` over HTTPS with the session's self-signed certificate."""
    served = ServedStores()
    with uvicorn_thread(served, ssl_certfile=str(tls_files.cert), ssl_keyfile=str(tls_files.key)) as port:
        served.base = f"https://127.0.0.1:{port}"
        yield served


class FaultyProxy:
    """A TCP proxy in front of a loopback server that drops and truncates what passes through it.

    Each chunk a client sends (a request, usually, on a kept-alive connection) is, with probability
    ``rate`` (off until set), met by one fault: the connection closed before it is forwarded, the
    request cut in its middle (an upload aborted mid-body), or the answer cut after a few bytes (a body
    truncated mid-stream).  :meth:`drop_all` closes every open connection.
    """

    def __init__(self, target_port: int, seed: int = 0) -> None:
        self.target = target_port
        self.rate = 0.0
        self.rnd = random.Random(seed)
        self.faults: list[str] = []
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open.update((client, upstream))
            cut: list[int] = []  # bytes of the answer still allowed through, when a response fault is armed
            threading.Thread(target=self._requests, args=(client, upstream, cut), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client, cut), daemon=True).start()

    def _fault(self) -> str:
        with self.lock:
            fault = self.rnd.choice(["drop", "request", "response"]) if self.rnd.random() < self.rate else ""
            if fault:
                self.faults.append(fault)
            return fault

    def _requests(self, src: socket.socket, dst: socket.socket, cut: list[int]) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                fault = self._fault()
                if fault == "drop":
                    break
                if fault == "request":
                    dst.sendall(data[: len(data) // 2])
                    break
                if fault == "response":
                    cut.append(self.rnd.randrange(1, 300))
                dst.sendall(data)
        self._close(src, dst)

    def _answers(self, src: socket.socket, dst: socket.socket, cut: list[int]) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                if cut:
                    dst.sendall(data[: cut[0]])
                    break
                dst.sendall(data)
        self._close(src, dst)

    def _close(self, *socks: socket.socket) -> None:
        for sock in socks:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self.lock:
                self.open.discard(sock)

    def drop_all(self) -> None:
        with self.lock:
            socks = list(self.open)
        for sock in socks:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        self.drop_all()
