"""The fill models (venues.sim.fill_models): the contract every registered one keeps in the venue's book.

Whatever a model says, the book the venue offers the matching engine never shows more at a level
than is displayed there, less what our orders already took from it: no fill beyond displayed depth.
"""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.enums import BookType, OrderSide
from nautilus_trader.model.objects import Price, Quantity

from tests.books import equity
from venues.sim.book_fill import BookFillModel
from venues.sim.fill_models import FILL_MODELS
from venues.sim.venue import SimVenueConfig

SPY = equity("SPY")
fractions = st.floats(min_value=0, max_value=1, exclude_min=True)


def bid_book(sizes: list[int]) -> tuple[OrderBook, list[Price]]:
    """Bids one cent apart from 100.00 down, of the given sizes."""
    book = OrderBook(SPY.id, BookType.L2_MBP)
    prices = [Price(Decimal("100.00") - Decimal("0.01") * k, 2) for k in range(len(sizes))]
    for k, (price, size) in enumerate(zip(prices, sizes, strict=True)):
        book.add(BookOrder(OrderSide.BUY, price, Quantity.from_int(size), k + 1), 0)
    return book, prices


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(FILL_MODELS.names()), fraction=fractions, shares=st.integers(0, 10**8))
def test_every_model_lets_us_take_at_most_what_is_displayed(name, fraction, shares):
    # in whole shares, as the venue rounds it: a float product may overshoot by a few raw units
    lot = Quantity.from_int(1).raw
    displayed = shares * lot
    assert 0 <= FILL_MODELS[name](fraction).usable(displayed) // lot * lot <= displayed


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(FILL_MODELS.names()),
    fraction=fractions,
    sizes=st.lists(st.integers(1, 5_000), min_size=1, max_size=5),
    orders=st.lists(st.tuples(st.integers(1, 20_000), st.integers(0, 4)), min_size=1, max_size=6),
)
def test_no_model_offers_more_than_the_displayed_depth_left(name, fraction, sizes, orders):
    real, prices = bid_book(sizes)
    displayed = {price.raw: Quantity.from_int(size).raw for price, size in zip(prices, sizes, strict=True)}
    fill = BookFillModel(FILL_MODELS[name](fraction))
    fill.cache = SimpleNamespace(order_book=lambda _: real)
    taken = dict.fromkeys(displayed, 0)
    for qty, deepest in orders:
        # a sell down to one of the levels, against a book that has not changed since the last
        order = SimpleNamespace(
            side=OrderSide.SELL,
            has_price=True,
            price=prices[min(deepest, len(prices) - 1)],
            leaves_qty=Quantity.from_int(qty),
        )
        offered = fill.get_orderbook_for_fill_simulation(SPY, order, None, None)
        if offered is None:
            assert fill.depth.whole_book()  # the real book, whose consumption NautilusTrader tracks
            continue
        remaining = order.leaves_qty.raw
        for level in offered.bids():
            size = level.orders()[0].size.raw
            assert taken[level.price.raw] + size <= displayed[level.price.raw]
            take = min(size, remaining)
            taken[level.price.raw] += take
            remaining -= take


def test_the_depth_haircut_keeps_the_stated_share_of_each_level():
    model = FILL_MODELS["depth_haircut"](0.5)
    assert model.usable(Quantity.from_int(150).raw) == Quantity.from_int(75).raw
    assert not model.whole_book()
    assert FILL_MODELS["depth_haircut"](1.0).whole_book()


def test_an_unknown_model_is_refused_with_the_registered_names():
    with pytest.raises(ValueError, match=r"fill_model: must be one of \('depth_haircut',\), was 'magic'"):
        SimVenueConfig(fill_model="magic")
