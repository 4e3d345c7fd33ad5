"""The URL options of ``postgresql://``: casstore's own and libpq's (no psycopg import here)."""

from __future__ import annotations

__all__ = ["LIBPQ_OPTIONS", "STORE_OPTIONS"]

#: The options that are casstore's, not libpq's.
STORE_OPTIONS = frozenset({"schema", "pool_size", "pool_timeout", "synchronous_commit", "insert", "tables"})

#: libpq connection parameters a URL's query (or a keyword option) may give, as libpq documents them.
LIBPQ_OPTIONS = frozenset(
    {
        "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "channel_binding",
        "connect_timeout", "client_encoding", "options", "application_name", "keepalives",
        "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout", "sslmode",
        "sslcert", "sslkey", "sslpassword", "sslrootcert", "sslcrl", "sslcompression", "requiressl",
        "gssencmode", "krbsrvname", "service", "target_session_attrs", "load_balance_hosts",
    }
)  # fmt: skip
