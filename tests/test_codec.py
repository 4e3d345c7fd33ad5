"""The object format: vectors from docs/format.md, determinism, round trips, bad input, ids, frames."""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path
from typing import Any

import libipld
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casstore import codec
from casstore.errors import CorruptObject, InvalidId, SerializationError

FORMAT_DOC = Path(__file__).resolve().parents[1] / "docs" / "format.md"
CID_LIKE = codec.CID_PREFIX + bytes(range(32))

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(max_size=40)
    | st.just(CID_LIKE)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


def same(a: Any, b: Any) -> bool:
    """Equality that also requires equal types (1 != 1.0, False != 0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b) or (a != a and b != b)


def shuffled(value: Any, rnd: random.Random) -> Any:
    if isinstance(value, list):
        return [shuffled(v, rnd) for v in value]
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: shuffled(v, rnd) for k, v in items}
    return value


def cbor_tags(data: bytes) -> list[int]:
    """Every CBOR tag number in ``data``: an independent walker, not libipld."""
    tags: list[int] = []

    def arg(pos: int) -> tuple[int, int]:
        info = data[pos] & 0x1F
        if info < 24:
            return info, pos + 1
        width = 1 << (info - 24)
        return int.from_bytes(data[pos + 1 : pos + 1 + width], "big"), pos + 1 + width

    def item(pos: int) -> int:
        major = data[pos] >> 5
        if major == 7:
            info = data[pos] & 0x1F
            return pos + 1 + {25: 2, 26: 4, 27: 8}.get(info, 0)
        value, pos = arg(pos)
        if major in (2, 3):
            return pos + value
        if major == 4:
            for _ in range(value):
                pos = item(pos)
            return pos
        if major == 5:
            for _ in range(2 * value):
                pos = item(pos)
            return pos
        if major == 6:
            tags.append(value)
            return item(pos)
        return pos

    assert item(0) == len(data)
    return tags


def doc_vectors() -> list[tuple[str, str, str]]:
    rows = re.findall(r"^\| `(.+?)` \| `([0-9a-f]+)` \| `(bafyr4i[a-z2-7]+)` \|$", FORMAT_DOC.read_text(), re.M)
    assert len(rows) >= 10, "docs/format.md lost its test vectors"
    return rows


@pytest.mark.parametrize(("literal", "hexbytes", "printable"), doc_vectors())
def test_format_doc_vectors(literal: str, hexbytes: str, printable: str) -> None:
    value = eval(literal, {"bytes": bytes})  # literals from our own doc, e.g. b'..' + bytes(32)
    data = codec.encode_value(value)
    assert data.hex() == hexbytes
    assert codec.format_id(codec.hash_bytes(data)) == printable
    assert same(codec.decode_value(data), value)
    assert libipld.decode_cid(printable)["hash"]["digest"] == codec.hash_bytes(data)


@settings(max_examples=300, deadline=None)
@given(values, st.randoms())
def test_encoding_is_deterministic_and_round_trips(value: Any, rnd: random.Random) -> None:
    data = codec.encode_value(value)
    assert codec.encode_value(shuffled(value, rnd)) == data
    assert same(codec.decode_value(data), value)
    assert 42 not in cbor_tags(data), "user data must never encode a link"


def test_cid_like_bytes_are_escaped_not_linked() -> None:
    raw = libipld.encode_dag_cbor({"x": CID_LIKE})
    assert 42 in cbor_tags(raw)  # what the bare encoder would do
    data = codec.encode_value({"x": CID_LIKE, "plain": b"\x00abc"})
    assert cbor_tags(data) == []
    assert codec.decode_value(data) == {"x": CID_LIKE, "plain": b"\x00abc"}


def test_value_that_looks_escaped_round_trips() -> None:
    tricky = ["\x00casstore:escaped", b"\x00\x01"]
    assert codec.decode_value(codec.encode_value(tricky)) == tricky


@pytest.mark.parametrize(
    ("value", "path", "words"),
    [
        ({"a": [1, 2, 3, float("nan")]}, 'content["a"][3]', "finite"),
        ({"a": {"b": float("inf")}}, 'content["a"]["b"]', "finite"),
        ({"a": [2**64]}, 'content["a"][0]', "64-bit"),
        ([-(2**64) - 1], "content[0]", "64-bit"),
        ({1: "x"}, "content[1]", "str keys"),
        ({"s": {1, 2}}, 'content["s"]', "set"),
        ({"t": (1, 2)}, 'content["t"]', "list"),
        ([object()], "content[0]", "object"),
        ({"u": "\ud800"}, 'content["u"]', "Unicode"),
    ],
)
def test_bad_values_name_their_path(value: Any, path: str, words: str) -> None:
    with pytest.raises(SerializationError) as info:
        codec.encode_value(value, "content")
    assert info.value.path == path
    assert path in str(info.value) and words in str(info.value)
    assert info.value.code == "STORAGE_SERIALIZATION_ERROR"


def test_id_forms() -> None:
    digest = codec.hash_bytes(b"abc")
    printable = codec.format_id(digest)
    assert printable.startswith("bafyr4i") and len(printable) == 59
    for form in (printable, digest.hex(), digest.hex().upper(), digest, codec.link(digest), f"  {printable}\n"):
        assert codec.parse_id(form) == digest
    for bad in ("", "bafyr4ixyz", "zz" * 32, b"short", "b" + "a" * 58, 42):
        with pytest.raises(InvalidId):
            codec.parse_id(bad)  # type: ignore[arg-type]


@settings(max_examples=200)
@given(st.binary(min_size=32, max_size=32), st.integers(min_value=8, max_value=59))
def test_prefix_range_contains_exactly_matching_digests(digest: bytes, length: int) -> None:
    printable = codec.format_id(digest)
    low, high = codec.id_prefix_range(printable[:length])
    assert low <= digest <= high
    other = bytes(b ^ 0xFF for b in digest)
    if not codec.format_id(other).startswith(printable[:length]):
        assert not low <= other <= high
    hex_low, hex_high = codec.id_prefix_range(digest.hex()[:length])
    assert hex_low <= digest <= hex_high


def test_frames_compress_only_where_it_pays() -> None:
    small = codec.encode_value("x" * 20)
    big = codec.encode_value("abc" * 500)
    noise = codec.encode_value(random.Random(1).randbytes(2000))
    (d1, f1), (d2, f2), (d3, f3) = codec.frame_many([small, big, noise])
    assert f1[:1] == b"\x00" and f2[:1] == b"\x01" and f3[:1] == b"\x00"
    assert len(f2) < len(big) / 10
    assert codec.unframe(f2, d2) == big and codec.unframe(f1, d1) == small and d3 == codec.hash_bytes(noise)


def test_unframe_rejects_damage() -> None:
    data = codec.encode_value("abc" * 500)
    [(digest, stored)] = codec.frame_many([data])
    damaged = bytearray(stored)
    damaged[len(damaged) // 2] ^= 0xFF
    for bad in (bytes(damaged), b"\x09" + data, b"", b"\x00" + data[:-1]):
        with pytest.raises(CorruptObject, match=codec.format_id(digest)):
            codec.unframe(bad, digest)


def test_link_helpers() -> None:
    digest = codec.hash_bytes(b"child")
    node = codec.encode({"child": codec.link(digest)})
    assert 42 in cbor_tags(node)
    assert codec.link_digest(codec.decode(node)["child"]) == digest
    with pytest.raises(SerializationError):
        codec.link_digest(b"\x01\x02")


def test_literal_parser_guard() -> None:
    # the vector table only holds literals plus bytes(); keep it that way
    for literal, _, _ in doc_vectors():
        tree = ast.parse(literal, mode="eval")
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert names <= {"None", "True", "False", "bytes"}
