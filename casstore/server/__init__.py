"""``casstore serve``: a casstore store over HTTP, for other processes and machines (see ``docs/remote.md``).

The server holds no state beyond its backing store (no ref cache), so several
servers can front one shared store (PostgreSQL, S3) behind a load balancer.
:func:`create_app` builds the ASGI app; :func:`casstore.server.run.serve`
runs it under uvicorn.  Clients open it as an ``http(s)://`` store
(:mod:`casstore.store.http`).
"""

from __future__ import annotations

from casstore.server.app import create_app
from casstore.server.auth import Role, Tokens
from casstore.server.state import Limits

__all__ = ["Limits", "Role", "Tokens", "create_app"]
