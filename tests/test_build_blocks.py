"""build_blocks against a plain row-by-row grouping of random request tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.sizing import build_blocks

rows = st.lists(
    st.tuples(
        st.sampled_from(["ZZ.SMART", "AA.SMART", "MM.ARCA", "B.SMART"]),
        st.sampled_from(["BUY", "SELL"]),
        st.integers(min_value=0, max_value=10**9),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(rows, st.sampled_from(["BUY", "SELL"]))
def test_blocks_are_the_rows_of_each_instrument_in_plan_order(table, side):
    requests = pd.DataFrame(
        {
            "request_id": [f"R{n}" for n in range(len(table))],
            "account_id": [f"U{n % 7}" for n in range(len(table))],
            "instrument_id": [r[0] for r in table],
            "side": [r[1] for r in table],
            "sized": [r[2] for r in table],
        }
    )
    expected: dict[str, list[tuple[str, str, int]]] = {}
    for n, (instrument, row_side, qty) in enumerate(table):
        if row_side == side and qty > 0:
            expected.setdefault(instrument, []).append((f"R{n}", f"U{n % 7}", qty))

    blocks = build_blocks(requests, side, quantity_column="sized")

    assert [b.instrument_id for b in blocks] == sorted(expected)
    for block in blocks:
        assert block.side == side
        got = list(zip(block.request_ids.tolist(), block.accounts.tolist(), block.targets.tolist(), strict=True))
        assert got == expected[block.instrument_id]
        assert block.quantity == sum(q for _, _, q in expected[block.instrument_id])

    # with plan rows: the same blocks, each row's plan row carried
    plan_rows = np.arange(len(table), dtype=np.int64) * 3 + 1
    again = build_blocks(requests, side, "sized", plan_rows)
    assert [b.instrument_id for b in again] == [b.instrument_id for b in blocks]
    for block, other in zip(blocks, again, strict=True):
        assert other.request_ids.tolist() == block.request_ids.tolist()
        assert other.targets.tolist() == block.targets.tolist()
        assert other.plan_rows.tolist() == [int(r[1:]) * 3 + 1 for r in block.request_ids.tolist()]
