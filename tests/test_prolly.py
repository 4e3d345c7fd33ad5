"""Prolly trees: history independence, O(log n) rewrites, reads, scans and diff against a dict model."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casstore import codec, prolly
from casstore.prolly import NodeCache, ProllyTree, prefetch_together
from casstore.store.memory import MemoryStore


def make_tree() -> ProllyTree:
    return ProllyTree(MemoryStore().blobs, "test", NodeCache())


def val(i: int, size: int = 60) -> bytes:
    return codec.encode_value({"v": i, "pad": "x" * (size + i % 50)})


def build(tree: ProllyTree, model: dict[str, bytes]) -> bytes:
    root = tree.build(sorted(model.items()))
    tree.flush()
    return root


def check_canonical(tree: ProllyTree, root: bytes, model: dict[str, bytes]) -> None:
    assert dict(tree.items(root)) == model
    fresh = make_tree()
    assert build(fresh, model) == root, "update must give the same root as a fresh build"


def test_empty_tree_is_one_fixed_node() -> None:
    a, b = make_tree(), make_tree()
    assert a.build([]) == b.empty()
    assert list(a.items(a.build([]))) == []


def test_large_tree_has_several_levels_and_reads_back() -> None:
    tree = make_tree()
    model = {f"k{i:06d}": val(i) for i in range(20_000)}
    root = build(tree, model)
    assert tree.load(root).level >= 2
    sizes = [len(codec.encode({"k": n.keys, "v": n.values})) for _, n in tree.node_digests(root) if n.level == 0]
    assert prolly.MIN <= sorted(sizes)[len(sizes) // 2] <= prolly.MAX
    assert max(sizes) <= prolly.MAX + 200
    assert tree.get(root, "k001234") == model["k001234"]
    assert tree.get(root, "nope") is None
    assert tree.get_many(root, ["k000001", "k019999", "zz"]) == {
        "k000001": model["k000001"],
        "k019999": model["k019999"],
    }
    assert [k for k, _ in tree.items(root, "k010000", "k010005")] == [f"k{i:06d}" for i in range(10_000, 10_005)]
    assert list(tree.items(root, "k019999")) == [("k019999", model["k019999"])]
    assert list(tree.items(root, "zzz")) == []


def test_one_change_rewrites_only_its_path() -> None:
    tree = make_tree()
    model = {f"k{i:06d}": val(i) for i in range(50_000)}
    root = build(tree, model)
    height = tree.load(root).level
    for i in (0, 17_171, 49_999):
        new_root, old = tree.update(root, {f"k{i:06d}": val(i + 1)})
        written = len(tree.pending)
        tree.flush()
        assert old == {f"k{i:06d}": model[f"k{i:06d}"]}
        # the path (height + 1 nodes), plus at most one neighbour per level if a boundary moved
        assert height + 1 <= written <= 2 * (height + 1)
        assert new_root != root


def test_noop_edits_keep_the_root() -> None:
    tree = make_tree()
    model = {f"k{i:04d}": val(i) for i in range(3000)}
    root = build(tree, model)
    assert tree.update(root, {"k0007": model["k0007"]})[0] == root
    assert tree.update(root, {"absent": None})[0] == root


ops = st.lists(st.tuples(st.integers(0, 400), st.one_of(st.none(), st.integers(0, 5000))), min_size=1, max_size=120)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 1500), st.lists(ops, min_size=1, max_size=4), st.integers(0, 2**32))
def test_history_independence_and_dict_model(
    initial: int, batches: list[list[tuple[int, int | None]]], seed: int
) -> None:
    rnd = random.Random(seed)
    tree = make_tree()
    model = {f"k{rnd.randrange(4000):05d}": val(i, rnd.randrange(10, 400)) for i in range(initial)}
    root = build(tree, model)
    for batch in batches:
        edits: dict[str, bytes | None] = {}
        for key_n, value_n in batch:
            key = f"k{key_n * 10:05d}"
            edits[key] = None if value_n is None else val(value_n, rnd.randrange(10, 900))
        before = dict(model)
        root, old = tree.update(root, edits)
        tree.flush()
        assert old == {k: before[k] for k in edits if k in before}
        for key, value in edits.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        check_canonical(tree, root, model)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3000), ops, st.integers(0, 2**32))
def test_diff_matches_dict_diff(initial: int, batch: list[tuple[int, int | None]], seed: int) -> None:
    rnd = random.Random(seed)
    tree = make_tree()
    model = {f"k{rnd.randrange(9000):05d}": val(i) for i in range(initial)}
    old_root = build(tree, model)
    edits = {f"k{k * 20:05d}": (None if v is None else val(v)) for k, v in batch}
    new_root, _ = tree.update(old_root, edits)
    tree.flush()
    new_model = {k: v for k, v in {**model, **edits}.items() if v is not None}
    expected = [
        (k, model.get(k), new_model.get(k))
        for k in sorted(set(model) | set(new_model))
        if model.get(k) != new_model.get(k)
    ]
    assert list(tree.diff(old_root, new_root)) == expected
    assert list(tree.diff(new_root, old_root)) == [(k, n, o) for k, o, n in expected]
    assert list(tree.diff(old_root, old_root)) == []


def test_diff_reads_only_changed_paths() -> None:
    blobs = MemoryStore().blobs
    tree = ProllyTree(blobs, "test", NodeCache())
    model = {f"k{i:06d}": val(i) for i in range(50_000)}
    root = tree.build(sorted(model.items()))
    tree.flush()
    new_root, _ = tree.update(root, {"k025000": val(1)})
    tree.flush()
    cold = ProllyTree(blobs, "test", NodeCache())
    reads = 0
    real_get_many = blobs.get_many

    def counting(digests):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += len(digests)
        return real_get_many(digests)

    blobs.get_many = counting  # type: ignore[method-assign]
    assert [k for k, _, _ in cold.diff(root, new_root)] == ["k025000"]
    assert reads <= 4 * (cold.load(root).level + 1)


def test_build_rejects_unsorted_keys() -> None:
    with pytest.raises(ValueError):
        make_tree().build([("b", b"\xf6"), ("a", b"\xf6")])


def test_value_only_updates_keep_shape_and_match_a_fresh_build() -> None:
    tree = make_tree()
    model = {f"k{i:05d}": val(i) for i in range(5000)}
    root = build(tree, model)
    calls: list[str] = []

    def grow(key: str):  # type: ignore[no-untyped-def]
        def edit(old: bytes | None) -> bytes:
            calls.append(key)
            assert old == model[key]
            return old + b"!" if old is not None else b""

        return edit

    keys = [f"k{i:05d}" for i in range(0, 5000, 37)]
    new_root, old = tree.update(root, {k: grow(k) for k in keys})
    tree.flush()
    assert sorted(calls) == sorted(keys), "each edit function runs exactly once"
    assert old == {k: model[k] for k in keys}
    model.update({k: model[k] + b"!" for k in keys})
    check_canonical(tree, new_root, model)
    # a value big enough to hit the 16 KB cap falls back to re-chunking, still canonical
    big = codec.encode_value("x" * (prolly.MAX + 100))
    new_root, _ = tree.update(new_root, {"k00100": big})
    tree.flush()
    model["k00100"] = big
    check_canonical(tree, new_root, model)


def test_an_update_reuses_the_stored_nodes_it_would_rewrite_alike() -> None:
    from casstore.merge.treediff import DiffTrace, aligned_diff

    tree = make_tree()
    model = {f"k{i:05d}": val(i) for i in range(20_000)}
    base = build(tree, model)
    theirs_edits: dict[str, prolly.Edit] = {f"k{i:05d}": val(i + 7) for i in range(0, 20_000, 53)}
    ours_edits: dict[str, prolly.Edit] = {f"k{i:05d}": val(i + 9) for i in range(5, 10_000, 41)}
    theirs, _ = tree.update(base, theirs_edits)
    ours, _ = tree.update(base, ours_edits)
    tree.flush()
    trace = DiffTrace()
    aligned_diff(tree, base, theirs, trace)
    pairs = trace.pairs

    def fresh() -> ProllyTree:  # the same stored nodes, no pending writes
        return ProllyTree(tree.blobs, "test", NodeCache())

    # the side that changed nothing takes the other's tree whole: nothing is encoded or written
    unchanged = fresh()
    assert unchanged.update(base, theirs_edits, pairs)[0] == theirs
    assert len(unchanged.pending) == 0
    # both changed: the result is the canonical tree, with fewer nodes written than without reuse
    with_reuse, without = fresh(), fresh()
    merged, _ = with_reuse.update(ours, theirs_edits, pairs)
    assert without.update(ours, theirs_edits)[0] == merged
    assert 0 < len(with_reuse.pending) < len(without.pending)
    with_reuse.flush()
    model.update({k: v for k, v in {**ours_edits, **theirs_edits}.items() if isinstance(v, bytes)})
    check_canonical(tree, merged, model)
    # a candidate that does not match (a pair from another tree) is ignored, never taken
    wrong = {digest: theirs for digest in pairs}
    assert fresh().update(ours, theirs_edits, wrong)[0] == merged


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 3000), ops, ops, st.integers(0, 2**32))
def test_a_diff_within_another_reports_every_key_both_changed(
    initial: int, ours_batch: list[tuple[int, int | None]], theirs_batch: list[tuple[int, int | None]], seed: int
) -> None:
    from casstore.merge.treediff import DiffTrace, aligned_diff

    rnd = random.Random(seed)
    tree = make_tree()
    model = {f"k{rnd.randrange(9000):05d}": val(i) for i in range(initial)}
    base = build(tree, model)
    sides = []
    for batch in (ours_batch, theirs_batch):
        edits = {f"k{k * 20:05d}": (None if v is None else val(v + rnd.randrange(3))) for k, v in batch}
        root, _ = tree.update(base, edits)
        sides.append((root, {k: v for k, v in {**model, **edits}.items() if v is not None}))
    tree.flush()
    (ours, ours_model), (theirs, theirs_model) = sides
    trace = DiffTrace()
    d_theirs = aligned_diff(tree, base, theirs, trace)
    assert d_theirs == {
        k: (model.get(k), theirs_model.get(k))
        for k in set(model) | set(theirs_model)
        if model.get(k) != theirs_model.get(k)
    }
    d_ours = aligned_diff(tree, base, ours, within=trace)
    true_ours = {
        k: (model.get(k), ours_model.get(k)) for k in set(model) | set(ours_model) if model.get(k) != ours_model.get(k)
    }
    assert all(true_ours[k] == change for k, change in d_ours.items()), "only true changes"
    assert {k: true_ours[k] for k in d_theirs if k in true_ours} == {k: d_ours[k] for k in d_theirs if k in d_ours}
    assert all(k in d_ours for k in d_theirs if k in true_ours), "every key both sides changed"


def test_a_diff_within_another_reads_all_of_a_range_the_other_diffed_in_general() -> None:
    from casstore.merge.treediff import DiffTrace, aligned_diff

    tree = make_tree()
    model = {f"k{i:05d}": val(i) for i in range(3000)}
    base = build(tree, model)
    assert tree.load(base).level >= 1
    leaf_last = tree.load(base).keys[0]  # the last key of the root's first child: a boundary at every level
    theirs, _ = tree.update(base, {leaf_last: None})  # a boundary goes: theirs' pair above is not aligned
    ours, _ = tree.update(base, {leaf_last: val(7)})  # ours only changes the value: aligned all the way
    tree.flush()
    trace = DiffTrace()
    aligned_diff(tree, base, theirs, trace)
    assert trace.covered, "theirs' removal of a boundary is diffed by the general diff"
    assert aligned_diff(tree, base, ours, within=trace) == {leaf_last: (model[leaf_last], val(7))}


def counted_reads(store: MemoryStore) -> list[int]:
    """The sizes of the store's object reads from now on, one entry per call (``get`` counts as 1)."""
    reads: list[int] = []
    get, get_many = store.blobs.get, store.blobs.get_many

    def counted_get(digest: bytes) -> bytes:
        reads.append(1)
        return get(digest)

    def counted_get_many(digests: Sequence[bytes]) -> list[bytes]:
        reads.append(len(digests))
        return get_many(digests)

    store.blobs.get = counted_get  # type: ignore[method-assign]
    store.blobs.get_many = counted_get_many  # type: ignore[method-assign]
    return reads


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 399), min_size=1, max_size=40, unique=True), st.integers(0, 2**32))
def test_a_prefetch_of_prefixes_reads_in_one_batch_per_level_all_their_scans_need(groups: list[int], seed: int) -> None:
    store = MemoryStore()
    rnd = random.Random(seed)
    model = {f"{g:04d}:{m:03d}": val(g * 7 + m) for g in range(400) for m in range(rnd.randint(0, 12))}
    root = build(ProllyTree(store.blobs, "test", NodeCache()), model)
    prefixes = [f"{g:04d}:" for g in groups]

    def scans(tree: ProllyTree) -> list[list[tuple[str, bytes]]]:
        return [list(tree.items_with_prefix(root, prefix)) for prefix in prefixes]

    reads = counted_reads(store)
    expected = scans(ProllyTree(store.blobs, "test", NodeCache()))
    needed = sum(reads)  # the nodes the scans read without a prefetch
    prefetched = ProllyTree(store.blobs, "test", NodeCache())
    reads.clear()
    prefetched.prefetch_prefixes(root, prefixes)
    levels = prefetched.load(root).level + 1
    assert len(reads) <= levels  # one batch per level
    assert sum(reads) <= needed + levels  # and little else: at most one node per level beyond the scans'
    reads.clear()
    assert scans(prefetched) == expected
    assert reads == []  # everything the scans needed was prefetched


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(0, 299), min_size=1, max_size=30, unique=True),
    st.lists(st.integers(0, 20), min_size=3, max_size=3),
    st.integers(0, 2**32),
)
def test_prefetching_several_trees_together_reads_one_batch_per_level_of_the_deepest(
    groups: list[int], widths: list[int], seed: int
) -> None:
    store = MemoryStore()
    rnd = random.Random(seed)
    cache = NodeCache()
    roots = []
    for n, width in enumerate(widths):  # three trees of different sizes (so depths) over one store
        model = {
            f"{g:04d}:{m:03d}": val(n * 10_000 + g * 7 + m) for g in range(300) for m in range(rnd.randint(0, width))
        }
        roots.append(build(ProllyTree(store.blobs, f"t{n}", cache), model))
    prefixes = [f"{g:04d}:" for g in groups]

    def scans(trees: list[ProllyTree]) -> list[list[tuple[str, bytes]]]:
        return [list(t.items_with_prefix(r, p)) for t, r in zip(trees, roots, strict=True) for p in prefixes]

    reads = counted_reads(store)
    expected = scans([ProllyTree(store.blobs, f"t{n}", NodeCache()) for n in range(3)])
    shared = NodeCache()
    trees = [ProllyTree(store.blobs, f"t{n}", shared) for n in range(3)]
    reads.clear()
    prefetch_together([(t, r, prefixes) for t, r in zip(trees, roots, strict=True)])
    deepest = max(t.load(r).level for t, r in zip(trees, roots, strict=True)) + 1
    assert len(reads) <= deepest  # each level of all three trees in one batch
    reads.clear()
    assert scans(trees) == expected
    assert reads == []  # everything the scans needed was prefetched
