"""The layout's bookkeeping: saves appended to a log and folded into the table, as one model of the entries."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from casstore.layout import manifest
from casstore.layout.manifest import Entry, Manifest

paths = st.sampled_from(["metadata.json", "groups/a/structure.json", "groups/a/contacts/x.json", "snapshots/s.json"])
saves = st.lists(
    st.tuples(st.sampled_from(["n1", "n2"]), st.dictionaries(paths, st.none() | st.integers(0, 9), max_size=4)),
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(saves, st.integers(1, 6))
@example([("n1", {"metadata.json": 1}), ("n1", {"metadata.json": None, "snapshots/s.json": 3})], 2)  # log, then big
@example([("n1", {"metadata.json": 1, "snapshots/s.json": 2}), ("n2", {"metadata.json": 3}), ("n1", {})], 3)
def test_saves_fold_and_reload_as_the_model(history: list[tuple[str, dict[str, int | None]]], fold_at: int) -> None:
    model: dict[str, dict[str, Entry]] = {"n1": {}, "n2": {}}
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as tmp:
        patch.setattr(manifest, "FOLD_AT", fold_at)
        path = Path(tmp) / "layout.sqlite"
        writer = Manifest(path)
        for step, (network, changes) in enumerate(history):
            entries = {p: None if v is None else Entry(f"h{v}", step, v) for p, v in changes.items()}
            writer.save(network, f"root{step}", entries)
            for p, entry in entries.items():
                if entry is None:
                    model[network].pop(p, None)
                else:
                    model[network][p] = entry
            assert dict(writer.entries(network)) == model[network]  # the saving process's cache
        writer.close()
        reader = Manifest(path)  # another process: the table and the log read back
        for network in ("n1", "n2"):
            assert dict(reader.entries(network)) == model[network]
        reader.close()
