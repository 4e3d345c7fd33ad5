"""Bearer tokens: a write token may do everything, a read token may read and subscribe only.

Tokens are compared in constant time (:func:`hmac.compare_digest`).  A server
given no token at all is open (meant for loopback use and tests); a server
with only a read token accepts no writes.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import Enum

__all__ = ["Role", "Tokens"]


class Role(Enum):
    NONE = 0
    READ = 1
    WRITE = 2


@dataclass(frozen=True)
class Tokens:
    write: str | None = None
    read: str | None = None

    @property
    def open(self) -> bool:
        return self.write is None and self.read is None

    def role(self, authorization: str | None) -> Role:
        """What the ``Authorization`` header's bearer token may do."""
        if self.open:
            return Role.WRITE
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return Role.NONE
        given = token.strip().encode()
        # both comparisons always run, so timing says nothing about which token was close
        is_write = self.write is not None and hmac.compare_digest(given, self.write.encode())
        is_read = self.read is not None and hmac.compare_digest(given, self.read.encode())
        if is_write:
            return Role.WRITE
        return Role.READ if is_read else Role.NONE
