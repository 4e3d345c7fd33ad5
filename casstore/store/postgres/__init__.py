"""``postgresql://user:password@host:port/dbname?schema=casstore&pool_size=4`` — objects and refs in PostgreSQL.

Modules: :mod:`.options` (the URL's options), :mod:`.backend` (the registry's declaration;
no psycopg import until a store is opened), :mod:`.connection` (conninfo,
the pool, error translation and :func:`~.connection.is_transient_error`),
:mod:`.schema` (the tables, their version and migrations), :mod:`.blobs`
(:class:`~.blobs.PostgresBlobs`), :mod:`.refs` (:class:`~.refs.PostgresRefs`),
:mod:`.store` (:class:`~.store.PostgresStore`) and :mod:`.throwaway` (a local
cluster for tests and benchmarks).  psycopg 3 and psycopg_pool come with the
``postgres`` extra: ``pip install 'casstore[postgres]'``.
"""

from casstore.store.postgres.backend import BACKEND
from casstore.store.postgres.options import LIBPQ_OPTIONS, STORE_OPTIONS

__all__ = ["BACKEND", "LIBPQ_OPTIONS", "STORE_OPTIONS"]
