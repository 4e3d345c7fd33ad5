"""The undo log of an image's transactions: what each open (nested) transaction changed, to roll it back.

Each level records, the first time a contact or group is touched in it, what
it was before (and whether it was dirty then, or a flush in flight held it); rolling back a level restores
those in reverse order.  Committing an inner level folds its records into the
outer one (the outer keeps its own, older, records).  Called under the image's lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from casstore.model import Contact, GroupState

if TYPE_CHECKING:
    from casstore.runtime.image import NetworkImage

__all__ = ["UndoLog"]

_ABSENT = object()


class UndoLog:
    """A stack of levels, one per open transaction; each maps a touched item to its prior state."""

    def __init__(self) -> None:
        self._levels: list[dict[Any, tuple[Any, ...]]] = []
        #: Whether a transaction is open (a plain attribute: the image's every write reads it).
        self.active = False

    def begin(self) -> None:
        self._levels.append({})
        self.active = True

    def contact(self, key: tuple[str, str], contact: Contact | None, was_dirty: bool) -> None:
        level = self._levels[-1]
        if key not in level:
            level[key] = ("contact", _ABSENT if contact is None else contact.content, was_dirty)

    def group(self, group_id: str, old: GroupState | None, was_put: bool, dirty: set[tuple[str, str]]) -> None:
        level = self._levels[-1]
        if ("group", group_id) not in level:
            level[("group", group_id)] = ("group", old, was_put, frozenset(dirty))

    def commit(self) -> bool:
        """Close the innermost level, keeping its changes; whether it was the outermost."""
        inner = self._levels.pop()
        self.active = bool(self._levels)
        if self._levels:
            outer = self._levels[-1]
            for key, record in inner.items():
                outer.setdefault(key, record)
        return not self._levels

    def rollback(self, image: NetworkImage) -> None:
        """Restore everything the innermost level touched, newest first, and close it."""
        level = self._levels.pop()
        self.active = bool(self._levels)
        state, members = image._state, image._members
        for key, record in reversed(level.items()):
            if record[0] == "group":
                _, old, was_put, dirty = record
                gid = key[1]
                if old is None:
                    state.groups.pop(gid, None)
                    members.pop(gid, None)
                else:
                    state.groups[gid] = old
                    members[gid] = old.contacts
                if not was_put:
                    image._group_ops.discard(gid)
                restored = members.get(gid, {})
                for dirty_key in dirty:  # dirty again, with the value restored
                    if (contact := restored.get(dirty_key[1])) is not None:
                        image._dirty[dirty_key] = contact.content
                continue
            _, old_content, was_dirty = record
            gid, cid = key
            contacts = members.get(gid)
            if contacts is None:
                continue
            if old_content is _ABSENT:
                if contacts.pop(cid, None) is not None:
                    ids = state.groups[gid].group.contact_ids
                    if cid in ids:
                        ids.remove(cid)
            elif cid in contacts:
                contacts[cid].content = old_content
            if not was_dirty or old_content is _ABSENT:
                image._dirty.pop(key, None)
            else:  # dirty before the transaction, with the value it had then
                image._dirty[key] = old_content
