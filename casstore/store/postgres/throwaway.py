"""A throwaway local PostgreSQL cluster, for the tests and the benchmark (never for data you keep).

:func:`start_cluster` runs ``initdb`` into a fresh temporary directory and starts
a server listening on a Unix socket in that directory and on ``127.0.0.1`` at a
free port (local connections are trusted; TCP ones need a password, so the
authentication failures can be tested).  The server runs as the ``postgres``
system user when this process is root (PostgreSQL refuses to run as root).
:meth:`Cluster.stop` stops it and deletes the directory.  Nothing here imports psycopg.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cluster", "find_bin_dir", "start_cluster"]

_SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/usr/pgsql-*/bin")


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: ``$CASSTORE_PG_BIN``, ``$PATH``, then the usual places."""
    given = os.environ.get("CASSTORE_PG_BIN")
    if given:
        return Path(given) if (Path(given) / "initdb").exists() else None
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = [Path(path).parent for pattern in _SEARCH for path in glob.glob(f"{pattern}/initdb")]
    return max(candidates, key=lambda path: [int(n) for n in re.findall(r"\d+", str(path))]) if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    """A running throwaway cluster: where it lives, how to reach it, how to restart and stop it."""

    bin_dir: Path
    root: Path
    port: int
    superuser: str
    run_as: str | None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root

    def url(self, dbname: str = "postgres", **query: str) -> str:
        """A URL over the Unix socket as the superuser (trusted: no password)."""
        params = "&".join([f"host={self.socket_dir}", f"port={self.port}", *(f"{k}={v}" for k, v in query.items())])
        return f"postgresql://{self.superuser}@/{dbname}?{params}"

    def tcp_url(self, user: str, password: str, dbname: str = "postgres") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", *args, check=check)

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut; waits until the server accepts again."""
        self.pg_ctl("restart", "-m", "fast", "-l", str(self.root / "server.log"))

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(bin_dir: Path | None = None, *, settings: dict[str, str] | None = None) -> Cluster:
    """initdb a new cluster in a temporary directory and start it (see the module docstring)."""
    bin_dir = bin_dir or find_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL's initdb was not found (install postgresql or set CASSTORE_PG_BIN)")
    run_as = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="casstore-pg-"))
    if run_as:
        shutil.chown(root, run_as, run_as)
    superuser = run_as or os.environ.get("USER") or "postgres"
    cluster = Cluster(bin_dir, root, _free_port(), superuser, run_as)
    try:
        pwfile = root / "pw"
        pwfile.write_text("unused-superuser-password\n")
        if run_as:
            shutil.chown(pwfile, run_as, run_as)
        cluster._run(
            "initdb", "-D", str(cluster.data_dir), "-U", superuser, "--auth-local=trust",
            "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(cluster.port),
            "unix_socket_directories": str(cluster.socket_dir),
            "fsync": "on",
            "max_connections": "200",
            "shared_buffers": "64MB",
            **(settings or {}),
        }
        conf = cluster.data_dir / "postgresql.auto.conf"
        with conf.open("a") as handle:
            handle.writelines(f"{key} = '{value}'\n" for key, value in options.items())
        cluster.pg_ctl("start", "-l", str(root / "server.log"))
    except BaseException:
        cluster.stop()
        raise
    return cluster


if __name__ == "__main__":  # pragma: no cover - a manual helper: print a URL, keep running until Enter
    running = start_cluster()
    print(running.url(), flush=True)
    try:
        input("PostgreSQL running; press Enter to stop it\n")
    finally:
        running.stop()
