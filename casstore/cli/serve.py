"""``casstore serve``: serve a store over HTTP to other processes and machines (see ``docs/remote.md``)."""

from __future__ import annotations

import socket
import sys

import click

from casstore.cli.locations import check_store_url
from casstore.cli.output import emit, say, verb
from casstore.errors import StorageError
from casstore.store import open_object_store
from casstore.store.base import os_error

__all__ = ["serve"]


@verb("casstore serve lmdb:///srv/casstore --token-file /etc/casstore/token --append-only", name="serve")
@click.argument("store_url", required=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", default=8750, show_default=True, type=click.IntRange(0, 65535), help="Port to bind (0: any free one)."
)
@click.option("--token-file", type=click.Path(dir_okay=False), help="File whose first line is the write token.")
@click.option("--read-token-file", type=click.Path(dir_okay=False), help="File whose first line is the read token.")
@click.option("--append-only", is_flag=True, help="Refuse deletes; keep every replaced head as a snapshot.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), help="PEM certificate (with --tls-key).")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="PEM private key (with --tls-cert).")
@click.option("--insecure", is_flag=True, help="Allow plain HTTP on a non-loopback address.")
@click.option("--init", "create", is_flag=True, help="Create the store if it does not exist.")
@click.pass_context
def serve(
    ctx: click.Context,
    store_url: str | None,
    host: str,
    port: int,
    token_file: str | None,
    read_token_file: str | None,
    append_only: bool,
    tls_cert: str | None,
    tls_key: str | None,
    insecure: bool,
    create: bool,
) -> None:
    """Serve STORE_URL (default: --store) over HTTP until SIGTERM. A missing store is refused unless --init."""
    try:  # the server's libraries are the `server` extra: the rest of the CLI works without them
        from casstore.server.auth import Tokens
        from casstore.server.run import ServeOptions, make_server
        from casstore.store.http import read_token_file as read_token
    except ImportError as exc:
        raise StorageError(f"casstore serve needs the server extra: pip install 'casstore[server]' ({exc})") from None
    url = store_url or ctx.find_root().obj["url"]
    check_store_url(url, create=create)
    tokens = Tokens(
        write=read_token(token_file) if token_file else None,
        read=read_token(read_token_file) if read_token_file else None,
    )
    options = ServeOptions(
        host=host,
        port=port,
        tokens=tokens,
        append_only=append_only,
        tls_cert=tls_cert,
        tls_key=tls_key,
        insecure=insecure,
    )
    store = open_object_store(url, create=create)
    try:
        server = make_server(store, options)
        listening = _listen(host, port)  # bound before the banner: a taken port is an error, port 0 a real port
        try:
            port = listening.getsockname()[1]
            scheme = "https" if tls_cert else "http"
            document = {"url": f"{scheme}://{host}:{port}/", "store": store.url, "append_only": append_only}
            emit(document, lambda: say(f"serving {store.url} at {scheme}://{host}:{port}/ (Ctrl-C or SIGTERM stops)"))
            sys.stdout.flush()
            server.run(sockets=[listening])
        finally:
            listening.close()
    finally:
        store.close()


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (uvicorn listens on it), or the ``StorageError`` saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as exc:
        raise StorageError(f"cannot listen on {host}:{port}: the address does not resolve ({exc})") from None
    listening = socket.socket(family, kind, proto)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
    except OSError as exc:
        listening.close()
        raise os_error(exc, f"cannot listen on {host}:{port}") from None
    return listening
