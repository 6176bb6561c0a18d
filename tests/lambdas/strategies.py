"""Hypothesis strategies the handler fuzz tests share."""

from __future__ import annotations

from hypothesis import strategies as st

# Any JSON value: what a body, a field or a claim might be instead of what was asked for.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
