"""ContractsOrShares' leftover shares go to the largest remainders, ties to the larger open quantity,
then to the account listed first: `allocate_fill` against that rule restated in plain Python ints
(tests/largest_remainder.py), on groups built to tie often, and on groups large enough to take the
split's sorting path."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.allocation import allocate_fill
from tests.largest_remainder import by_the_rule


@settings(max_examples=200, deadline=None)
@given(open_qty=st.lists(st.sampled_from([0, 1, 2, 3, 6, 7]), min_size=1, max_size=40), data=st.data())
def test_ties_are_broken_as_the_rule_says(open_qty, data):
    if not sum(open_qty):
        return
    fill = data.draw(st.integers(1, sum(open_qty)))
    assert allocate_fill(fill, np.array(open_qty, dtype=np.int64)).tolist() == by_the_rule(fill, open_qty)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_groups_too_large_for_one_packed_key_split_the_same(seed):
    rng = np.random.default_rng(seed)
    open_qty = rng.integers(1, 10**7, size=1_000).tolist()
    open_qty[:10] = [open_qty[0]] * 10  # equal open quantities: remainders tie too
    fill = int(rng.integers(1, sum(open_qty)))
    assert allocate_fill(fill, np.array(open_qty, dtype=np.int64)).tolist() == by_the_rule(fill, open_qty)
