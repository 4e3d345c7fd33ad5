"""Remotes, kept in the store itself: a name, the URL it stands for, and the name a store is tracked under."""

from __future__ import annotations

from casstore import codec
from casstore.errors import InvalidRefName, RemoteExists, RemoteNotFound
from casstore.model.refs import REMOTES_PREFIX, remote_config_ref, remote_of_config_ref
from casstore.store.base import ObjectStore, RefUpdate, validate_ref_name

__all__ = ["add_remote", "remote_name", "remotes", "remove_remote"]


def add_remote(store: ObjectStore, name: str, url: str) -> None:
    """Remember ``url`` as remote ``name`` in ``store`` (a small object named by ``config/remotes/<name>``)."""
    ref = remote_config_ref(validate_ref_name(name))
    if "/" in name:
        raise InvalidRefName(f"remote name {name!r} must be one ref component (no '/')")
    data = codec.encode_value({"url": url})
    digest = codec.hash_bytes(data)
    current = store.refs.get(ref)  # checked before anything is written: a refused add writes nothing
    if current is not None and current != digest:
        raise RemoteExists(f"remote {name!r} already exists with URL {remotes(store)[name]}; remove it first")
    if current is None:
        store.commit(codec.frame_many([data]), [RefUpdate(ref, None, digest)])


def remove_remote(store: ObjectStore, name: str) -> None:
    """Forget remote ``name``; :class:`~casstore.errors.RemoteNotFound` if there is none."""
    ref = remote_config_ref(validate_ref_name(name))
    current = store.refs.get(ref)
    if current is None:
        raise RemoteNotFound(f"no remote named {name!r}")
    store.refs.delete(ref, current)


def remotes(store: ObjectStore) -> dict[str, str]:
    """Remote name -> URL."""
    found = store.refs.list(REMOTES_PREFIX)
    names = list(found)
    values = store.blobs.get_many([found[name] for name in names])
    return {
        remote_of_config_ref(name): codec.decode_value(data)["url"] for name, data in zip(names, values, strict=True)
    }


def remote_name(store: ObjectStore) -> str:
    """The name a store is tracked under when no remote name is given: derived from its URL."""
    return "url-" + codec.hash_bytes(store.url.encode()).hex()[:16]
