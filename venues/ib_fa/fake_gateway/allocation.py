"""The fake's own reading of IB's FA allocation methods: how many shares of a group order each account gets.

Written apart from strategies/allocation.py and venues/sim on purpose, in plain integers: the sim/IB
parity test compares the simulated venue's allocations with these, so they have to be a second
implementation of IB's rules, not one function called twice.

The methods the fake serves (anything else is refused when the order arrives):

- ContractsOrShares: the group's amounts are each account's shares; an order of another size is
  spread pro rata to them.
- NetLiq / AvailableEquity: pro rata to each account's net liquidation / available funds at the
  time the order is accepted.
- EqualQuantity ("Equal"): the same number of shares to every account, the shares left over one
  each to the accounts in the group's order (400 over 6 accounts: 67, 67, 67, 67, 66, 66).

Pro-rata fills: every fill is shared against what each account still has open. Each account first
gets the whole shares of its exact share; the few left over go one each to the largest fractional
parts, ties to the larger open quantity, then to the account listed first. Sharing each fill
against the open quantities, rather than re-spreading the running total, never takes a share
back from an account that already has it.

EqualQuantity fills: the order's running total is split equally as above and each fill gets what
that adds, so at every point the accounts' totals differ by at most one share and the extra
shares sit with the earliest accounts.
"""

from __future__ import annotations

CONTRACTS_OR_SHARES = "ContractsOrShares"
EQUAL_QUANTITY = "EqualQuantity"
NET_LIQ = "NetLiq"
AVAILABLE_EQUITY = "AvailableEquity"

# the account value a value-weighted method is pro rata to (the accountSummary tag)
VALUE_TAGS = {NET_LIQ: "NetLiquidation", AVAILABLE_EQUITY: "AvailableFunds"}

# IB takes the short name as well; a group with no defaultMethod allocates by its amounts
_ALIASES = {"": CONTRACTS_OR_SHARES, "Equal": EQUAL_QUANTITY}
_SERVED = frozenset({CONTRACTS_OR_SHARES, EQUAL_QUANTITY, NET_LIQ, AVAILABLE_EQUITY})


def served_method(order_method: str, group_method: str) -> str | None:
    """The method an order is allocated by (its faMethod, else the group's), or None if the fake has no rule for it."""
    name = order_method or group_method
    method = _ALIASES.get(name, name)
    return method if method in _SERVED else None


def amount_weights(amounts: list[float]) -> list[int]:
    """ContractsOrShares: the group's amounts as whole shares."""
    return [int(round(amount)) for amount in amounts]


def value_weights(values: list[float]) -> list[int]:
    """NetLiq / AvailableEquity: account values in whole cents, an account in deficit weighing nothing."""
    return [max(int(value * 100), 0) for value in values]


def pro_rata(qty: int, weights: list[int]) -> list[int]:
    """Share `qty` whole shares pro rata to `weights` (largest remainders; see the module docstring)."""
    if qty < 0 or any(w < 0 for w in weights):
        raise ValueError("shares and weights must not be negative")
    total = sum(weights)
    if qty > total:
        raise ValueError(f"{qty} shares cannot be spread over weights that add up to {total}")
    if qty == 0:
        return [0] * len(weights)
    shares, remainders = [], []
    for weight in weights:
        whole, remainder = divmod(weight * qty, total)
        shares.append(whole)
        remainders.append(remainder)
    left = qty - sum(shares)
    ranked = sorted(range(len(weights)), key=lambda i: (-remainders[i], -weights[i], i))
    for i in ranked[:left]:
        shares[i] += 1
    return shares


def equal_split(qty: int, accounts: int) -> list[int]:
    """EqualQuantity: `qty` shares over `accounts` accounts, the extra shares to the first ones."""
    each, extra = divmod(qty, accounts)
    return [each + 1 if i < extra else each for i in range(accounts)]


def pre_trade_targets(method: str, qty: int, weights: list[int]) -> list[int]:
    """Each account's shares of an order of `qty`, fixed when IB accepts it."""
    if method == EQUAL_QUANTITY:
        return equal_split(qty, len(weights))
    if sum(weights) == qty:
        return list(weights)
    return pro_rata(qty, weights)


def split_fill(method: str, qty: int, targets: list[int], allocated: list[int]) -> list[int]:
    """The shares of one fill of `qty` each account gets, given its target and what it already has."""
    if method == EQUAL_QUANTITY:
        after = equal_split(sum(allocated) + qty, len(targets))
        return [now - before for now, before in zip(after, allocated, strict=True)]
    return pro_rata(qty, [t - a for t, a in zip(targets, allocated, strict=True)])
