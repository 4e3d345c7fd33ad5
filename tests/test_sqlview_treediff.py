"""The SQL view's tree diff (casstore.sqlview.treediff) against the prolly layer's own, on trees of several levels."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from casstore import codec
from casstore.prolly import NodeCache, ProllyTree
from casstore.sqlview.treediff import changed_entries
from casstore.store.memory import MemoryStore

KEYS = st.integers(0, 3000).map(lambda i: f"k{i:05}")


@settings(max_examples=25, deadline=None)
@given(
    base=st.dictionaries(KEYS, st.integers(0, 5), min_size=0, max_size=2500),
    edits=st.dictionaries(KEYS, st.none() | st.integers(0, 5), max_size=60),
)
def test_changed_entries_equals_the_prolly_diff(base: dict[str, int], edits: dict[str, int | None]) -> None:
    tree = ProllyTree(MemoryStore().blobs, "test", NodeCache(), value_hint=64)
    value = {k: codec.encode_value({"v": v, "pad": "x" * 40}) for k, v in base.items()}
    after = dict(value)
    for key, v in edits.items():
        if v is None:
            after.pop(key, None)
        else:
            after[key] = codec.encode_value({"v": v, "pad": "x" * 40})
    old, new = tree.build(sorted(value.items())), tree.build(sorted(after.items()))
    tree.flush()
    expected = {key: (a, b) for key, a, b in tree.diff(old, new)}
    assert changed_entries(tree, old, new) == expected
    assert changed_entries(tree, new, old) == {k: (b, a) for k, (a, b) in expected.items()}
    if len(value) > 500:
        assert tree.load(old).level >= 1, "the trees have several levels"
