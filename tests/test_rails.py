"""Pre-trade rails (strategies/rails.py): exact Decimal limits, clear messages, monotone verdicts."""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nautilus_trader.config import StrategyConfig

from strategies.rails import (
    MAX_ORDER_NOTIONAL,
    MAX_ORDER_SHARES,
    MAX_SESSION_NOTIONAL,
    PRICE_BAND,
    ProposedBlock,
    RailsConfig,
    check_blocks,
    halts_session,
    notional_sent,
)

TENTH = Decimal("0.1")
CENT = Decimal("0.01")


def block(name: str, qty: int, limit: str, reference: str, side: str = "BUY") -> ProposedBlock:
    return ProposedBlock(
        f"RB-20261123-{side[0]}-{name}", f"{name}.SMART", side, qty, Decimal(limit), Decimal(reference)
    )


def refused(blocks, rails, so_far=Decimal(0)) -> set[str]:
    return {b.client_order_id for b in check_blocks(blocks, rails, so_far)}


# ---------------------------------------------------------------------------------------------
# Messages and semantics


def test_price_band_message_names_the_block_and_the_numbers():
    [breach] = check_blocks([block("SPY", 10, "530.00", "500.00")], RailsConfig(price_band_bps=200.0))
    assert breach.rule == PRICE_BAND
    assert breach.client_order_id == "RB-20261123-B-SPY"
    assert breach.message == (
        "RB-20261123-B-SPY (BUY SPY.SMART): limit 530.00 is 600.0 bps above the reference 500.00; the band is 200 bps"
    )
    [below] = check_blocks([block("SPY", 10, "480.00", "500.00", "SELL")], RailsConfig(price_band_bps=200.0))
    assert "limit 480.00 is 400.0 bps below the reference 500.00" in below.message


def test_a_breach_just_over_the_band_never_shows_a_number_inside_it():
    # 200.02 bps over a 200.01 bps band: rounding to 0.1 bps up shows 200.1, never "200.0"
    [breach] = check_blocks([block("SPY", 1, "100.020002", "98.0")], RailsConfig(price_band_bps=200.01))
    shown = Decimal(breach.message.split(" is ")[1].split(" bps")[0])
    assert shown > Decimal("200.01")


def test_order_notional_and_share_caps_say_what_was_asked_and_the_cap():
    rails = RailsConfig(max_order_notional="50000", max_order_shares=100)
    breaches = check_blocks([block("SPY", 101, "500.00", "500.00")], rails)
    assert [b.rule for b in breaches] == [MAX_ORDER_NOTIONAL, MAX_ORDER_SHARES]
    assert breaches[0].message == (
        "RB-20261123-B-SPY (BUY SPY.SMART): 101 shares x limit 500.00 = 50500.00 USD is above the cap of 50000 USD "
        "per order"
    )
    assert (
        breaches[1].message == "RB-20261123-B-SPY (BUY SPY.SMART): 101 shares is above the cap of 100 shares per order"
    )


def test_per_order_breach_refuses_only_that_block_the_rest_of_the_phase_goes_on():
    blocks = [block("SPY", 10, "530.00", "500.00"), block("IVV", 10, "501.00", "500.00"), block("AGG", 5, "98", "98")]
    assert refused(blocks, RailsConfig(price_band_bps=200.0)) == {"RB-20261123-B-SPY"}


def test_session_cap_refuses_the_crossing_block_and_everything_after_it():
    blocks = [
        block("SPY", 100, "500", "500"),  # 50,000
        block("IVV", 100, "400", "400"),  # 40,000 -> 90,000 + 20,000 already sent
        block("AGG", 100, "100", "100"),  # 10,000 would still fit on its own, but the session stopped
        block("VTI", 1, "10", "10"),
    ]
    rails = RailsConfig(max_session_notional="100000")
    breaches = check_blocks(blocks, rails, Decimal("20000"))
    assert [(b.client_order_id, b.rule) for b in breaches] == [
        ("RB-20261123-B-IVV", MAX_SESSION_NOTIONAL),
        ("RB-20261123-B-AGG", MAX_SESSION_NOTIONAL),
        ("RB-20261123-B-VTI", MAX_SESSION_NOTIONAL),
    ]
    assert breaches[0].message == (
        "RB-20261123-B-IVV (BUY IVV.SMART): 70000 USD of orders this session before this one + 40000 USD for it "
        "= 110000 USD is above the session cap of 100000 USD; nothing more is sent this session"
    )
    assert "reached at RB-20261123-B-IVV" in breaches[1].message
    assert halts_session(breaches)
    assert not halts_session(check_blocks(blocks, RailsConfig(price_band_bps=1.0, max_order_shares=1)))


def test_session_notional_so_far_comes_from_the_blocks_already_sent():
    class Sent:  # what the journal keeps of a sent block (BlockIntent), reduced to what counts
        def __init__(self, quantity: int, limit_price: str) -> None:
            self.quantity, self.limit_price = quantity, Decimal(limit_price)

    assert notional_sent([Sent(100, "499.51"), Sent(3, "0.05")]) == Decimal("49951.15")
    assert notional_sent([]) == 0


def test_no_rails_refuse_nothing():
    assert check_blocks([block("SPY", 10**9, "1e6", "0.01")], RailsConfig()) == []


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"price_band_bps": 0.0}, "price_band_bps"),
        ({"price_band_bps": -5.0}, "price_band_bps"),
        ({"price_band_bps": math.nan}, "price_band_bps"),
        ({"price_band_bps": math.inf}, "price_band_bps"),
        ({"price_band_bps": True}, "price_band_bps"),
        ({"max_order_notional": "ten"}, "max_order_notional"),
        ({"max_order_notional": "0"}, "max_order_notional"),
        ({"max_session_notional": "-1"}, "max_session_notional"),
        ({"max_session_notional": "NaN"}, "max_session_notional"),
        ({"daily_traded_value_cap": "Infinity"}, "daily_traded_value_cap"),
        ({"daily_traded_value_cap": 100}, "daily_traded_value_cap"),
        ({"max_order_shares": 0}, "max_order_shares"),
        ({"max_order_shares": 2.5}, "max_order_shares"),
    ],
)
def test_bad_rails_are_refused_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"^RailsConfig\.{field}: "):
        RailsConfig(**kwargs)
    with pytest.raises(msgspec.ValidationError, match=field):  # ours, or msgspec naming `$.field`
        msgspec.convert(kwargs, RailsConfig)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"side": "HOLD"}, "side"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 1.0}, "quantity"),
        ({"limit_price": Decimal("0")}, "limit_price"),
        ({"reference_price": Decimal("NaN")}, "reference_price"),
        ({"reference_price": 500.0}, "reference_price"),
    ],
)
def test_a_malformed_block_is_an_error_naming_it_and_the_field(kwargs, field):
    fields = dict(
        client_order_id="RB-1-B-SPY", instrument_id="SPY.SMART", side="BUY", quantity=1,
        limit_price=Decimal("1"), reference_price=Decimal("1"),
    )  # fmt: skip
    with pytest.raises(ValueError, match=rf"^block RB-1-B-SPY: {field} "):
        ProposedBlock(**(fields | kwargs))


def test_session_notional_so_far_must_be_a_real_amount():
    with pytest.raises(ValueError, match="session_notional_so_far"):
        check_blocks([], RailsConfig(), Decimal("-1"))


def test_rails_round_trip_through_json_also_inside_a_strategy_config():
    rails = RailsConfig(price_band_bps=150.5, max_order_notional="250000.00", max_order_shares=20_000)
    assert RailsConfig.parse(rails.json()) == rails

    class Holder(StrategyConfig, frozen=True):
        rails: RailsConfig | None = None

    holder = Holder(rails=rails)
    assert Holder.parse(holder.json()) == holder
    decoded = msgspec.json.decode(msgspec.json.encode(holder), type=Holder)
    assert decoded.rails == rails and decoded.rails.order_notional_cap == Decimal("250000.00")
    assert msgspec.json.decode(b'{"rails": null}', type=Holder).rails is None


# ---------------------------------------------------------------------------------------------
# Invariants

prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("5000"), places=4)
quantities = st.integers(min_value=1, max_value=1_000_000)
sides = st.sampled_from(["BUY", "SELL"])


@st.composite
def blocks(draw, min_size=1, max_size=8) -> list[ProposedBlock]:
    n = draw(st.integers(min_size, max_size))
    return [
        ProposedBlock(f"RB-{i}", f"I{i}.SMART", draw(sides), draw(quantities), draw(prices), draw(prices))
        for i in range(n)
    ]


def deviation_bps(b: ProposedBlock) -> Decimal:
    return abs(b.limit_price - b.reference_price) * 10_000 / b.reference_price


def band_at_least(bps: Decimal, slack: int) -> float:
    """A float band whose exact decimal value is >= bps (one decimal, as a user would type it)."""
    return float(max(bps, TENTH).quantize(TENTH, rounding=ROUND_CEILING) + slack)


@st.composite
def rails_covering(draw, proposed: list[ProposedBlock], so_far: Decimal) -> RailsConfig:
    """Rails each of whose limits every proposed block respects (or that leave the rail off)."""

    def maybe(value):
        return draw(st.one_of(st.none(), st.just(value)))

    slack = draw(st.integers(0, 3))
    band = band_at_least(max(deviation_bps(b) for b in proposed), slack)
    notional = max(b.notional for b in proposed) + slack
    shares = max(b.quantity for b in proposed) + slack
    session = so_far + sum(b.notional for b in proposed) + slack
    return RailsConfig(
        price_band_bps=maybe(band),
        max_order_notional=maybe(f"{notional:f}"),
        max_order_shares=maybe(shares),
        max_session_notional=maybe(f"{session:f}"),
    )


so_fars = st.decimals(min_value=0, max_value=Decimal("1e9"), places=2)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), proposed=blocks(), so_far=so_fars)
def test_blocks_within_every_limit_are_never_refused(data, proposed, so_far):
    rails = data.draw(rails_covering(proposed, so_far))
    assert check_blocks(proposed, rails, so_far) == []


@settings(max_examples=200, deadline=None)
@given(proposed=blocks(), so_far=so_fars)
def test_limits_exactly_at_the_boundary_are_accepted(proposed, so_far):
    exact_band = [
        ProposedBlock(
            b.client_order_id, b.instrument_id, b.side, b.quantity, b.reference_price * Decimal(k), b.reference_price
        )
        for b, k in zip(proposed, ("1.0125", "0.9875") * len(proposed), strict=False)
    ]  # 125 bps either side, exactly
    rails = RailsConfig(
        price_band_bps=125.0,
        max_order_notional=f"{max(b.notional for b in exact_band):f}",
        max_order_shares=max(b.quantity for b in exact_band),
        max_session_notional=f"{so_far + sum(b.notional for b in exact_band):f}",
    )
    assert check_blocks(exact_band, rails, so_far) == []


@st.composite
def one_limit_exceeded(draw):
    """A block and rails under which exactly one named limit is below what the block needs."""
    b = draw(blocks(max_size=1))[0]
    rule = draw(st.sampled_from([PRICE_BAND, MAX_ORDER_NOTIONAL, MAX_ORDER_SHARES, MAX_SESSION_NOTIONAL]))
    so_far = draw(so_fars)
    if rule == PRICE_BAND:
        if deviation_bps(b) <= TENTH:  # no positive band below it: move the limit away
            b = ProposedBlock(
                b.client_order_id, b.instrument_id, b.side, b.quantity, b.reference_price * 2, b.reference_price
            )
        need = deviation_bps(b)
        band = need.quantize(TENTH, rounding=ROUND_FLOOR)
        if band == need:
            band -= TENTH
        band = max(band - draw(st.integers(0, 50)) * TENTH, TENTH)
        return b, RailsConfig(price_band_bps=float(band)), so_far, rule
    if rule == MAX_ORDER_NOTIONAL:
        cap = b.notional - draw(st.decimals(min_value=Decimal("0.0001"), max_value=b.notional, places=4))
        if cap <= 0:
            cap = b.notional / 2
        return b, RailsConfig(max_order_notional=f"{cap:f}"), so_far, rule
    if rule == MAX_ORDER_SHARES:
        if b.quantity == 1:
            b = ProposedBlock(b.client_order_id, b.instrument_id, b.side, 2, b.limit_price, b.reference_price)
        cap = draw(st.integers(1, b.quantity - 1))
        return b, RailsConfig(max_order_shares=cap), so_far, rule
    total = so_far + b.notional
    cap = total - draw(st.decimals(min_value=Decimal("0.0001"), max_value=total, places=4))
    if cap <= 0:
        cap = total / 2
    return b, RailsConfig(max_session_notional=f"{cap:f}"), so_far, rule


@settings(max_examples=300, deadline=None)
@given(case=one_limit_exceeded())
def test_a_block_beyond_any_limit_is_refused_by_that_rule(case):
    b, rails, so_far, rule = case
    breaches = check_blocks([b], rails, so_far)
    assert [(x.client_order_id, x.rule) for x in breaches] == [(b.client_order_id, rule)]
    assert b.client_order_id in breaches[0].message and b.instrument_id in breaches[0].message


factors = st.sampled_from([Decimal(1), Decimal("0.99"), Decimal("0.9"), Decimal("0.5"), Decimal("0.1")])


@st.composite
def loose_and_tight(draw):
    """Two rails where every limit of the second is at most the first's (an off rail may be turned on)."""

    def amount():
        return draw(st.one_of(st.none(), st.decimals(min_value=1, max_value=Decimal("1e9"), places=2)))

    loose = {
        PRICE_BAND: draw(st.one_of(st.none(), st.integers(1, 5000).map(lambda t: Decimal(t) / 10))),
        MAX_ORDER_NOTIONAL: amount(),
        MAX_SESSION_NOTIONAL: amount(),
        MAX_ORDER_SHARES: draw(st.one_of(st.none(), st.integers(1, 2_000_000))),
    }
    tight = {}
    for name, value in loose.items():
        if value is None:
            tight[name] = draw(st.one_of(st.none(), st.just(Decimal(draw(st.integers(1, 10**7))))))
        else:
            tight[name] = value * draw(factors)
    tight[PRICE_BAND] = tight[PRICE_BAND] and max(tight[PRICE_BAND].quantize(TENTH, rounding=ROUND_FLOOR), TENTH)
    tight[MAX_ORDER_SHARES] = tight[MAX_ORDER_SHARES] and max(int(tight[MAX_ORDER_SHARES]), 1)
    if loose[PRICE_BAND] is not None:
        tight[PRICE_BAND] = min(tight[PRICE_BAND], loose[PRICE_BAND])

    def config(values) -> RailsConfig:
        return RailsConfig(
            price_band_bps=None if values[PRICE_BAND] is None else float(values[PRICE_BAND]),
            max_order_notional=None if values[MAX_ORDER_NOTIONAL] is None else f"{values[MAX_ORDER_NOTIONAL]:f}",
            max_session_notional=None if values[MAX_SESSION_NOTIONAL] is None else f"{values[MAX_SESSION_NOTIONAL]:f}",
            max_order_shares=values[MAX_ORDER_SHARES],
        )

    return config(loose), config(tight)


@settings(max_examples=200, deadline=None)
@given(pair=loose_and_tight(), proposed=blocks(), so_far=so_fars)
def test_tightening_a_limit_never_accepts_a_block_that_was_refused(pair, proposed, so_far):
    loose, tight = pair
    assert refused(proposed, loose, so_far) <= refused(proposed, tight, so_far)
