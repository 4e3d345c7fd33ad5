"""The SQL view's JSON text: orjson's output means what the standard library's would, and its refusals fall back."""

from __future__ import annotations

import base64
import json
from typing import Any
from unittest.mock import patch

from hypothesis import given
from hypothesis import strategies as st

from casstore.sqlview import jsonform
from casstore.sqlview.jsonform import NUL_STANDIN, dumps

_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=8)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


def expected(value: Any) -> Any:
    """What the text must parse to: bytes in DAG-JSON's form, U+0000 shown as U+FFFD."""
    if isinstance(value, bytes):
        return {"/": {"bytes": base64.b64encode(value).decode().rstrip("=")}}
    if isinstance(value, str):
        return value.replace("\x00", NUL_STANDIN)
    if isinstance(value, list):
        return [expected(v) for v in value]
    if isinstance(value, dict):
        return {expected(k): expected(v) for k, v in value.items()}
    return value


@given(values)
def test_dumps_means_the_value(value: Any) -> None:
    assert json.loads(dumps(value)) == expected(value)


@given(values)
def test_without_orjson_the_standard_library_writes_the_same(value: Any) -> None:
    with patch.object(jsonform, "_fast", None):  # a base install (no postgres extra)
        assert json.loads(dumps(value)) == expected(value)


def test_what_orjson_refuses_is_written_by_the_standard_library() -> None:
    deep: Any = "bottom"
    for _ in range(300):  # deeper than orjson's nesting limit, within the data model's
        deep = [deep]
    assert json.loads(dumps(deep)) == deep
    assert json.loads(dumps({"low": -(2**64), "nul\x00": b"\x01"})) == {
        "low": -(2**64),
        "nul" + NUL_STANDIN: {"/": {"bytes": "AQ"}},
    }
