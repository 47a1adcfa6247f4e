"""ContractsOrShares' split restated in plain Python ints, kept apart from the code it checks: whole
shares pro rata, leftovers to the largest remainders, ties to the larger open quantity, then to the
account listed first."""

from __future__ import annotations


def by_the_rule(fill: int, open_qty: list[int]) -> list[int]:
    total = sum(open_qty)
    shares = [q * fill // total for q in open_qty]
    ranked = sorted(range(len(open_qty)), key=lambda i: (-(open_qty[i] * fill % total), -open_qty[i], i))
    for i in ranked[: fill - sum(shares)]:
        shares[i] += 1
    return shares
