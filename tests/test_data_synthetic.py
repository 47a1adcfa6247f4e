"""The synthetic L2 generator and the catalog round trip: books stay valid, seeds reproduce, reads re-batch."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import (
    AccountType,
    AggressorSide,
    BookAction,
    BookType,
    OmsType,
    OrderSide,
    RecordFlag,
)
from nautilus_trader.model.identifiers import InstrumentId, Venue
from nautilus_trader.model.objects import Money

from data.catalog import batched_deltas, catalog_instruments, catalog_time_range, stream_catalog
from data.synthetic import (
    DEFAULT_START,
    DEMO_ETFS,
    SyntheticInstrumentSpec,
    generate_l2_session,
    make_equity,
    write_synthetic_catalog,
)

SHORT = pd.Timedelta(minutes=3)
F_LAST = int(RecordFlag.F_LAST)
F_SNAPSHOT = int(RecordFlag.F_SNAPSHOT)


def session(specs=DEMO_ETFS, duration=SHORT, seed=7, **kwargs) -> dict[InstrumentId, list]:
    streams: dict[InstrumentId, list] = defaultdict(list)
    for iid, chunk in generate_l2_session(specs, DEFAULT_START, duration, seed, **kwargs):
        streams[iid].extend(chunk)
    return dict(streams)


def fingerprint(items) -> list:
    """Everything a backtest can observe, as plain values."""
    out = []
    for item in items:
        if isinstance(item, OrderBookDeltas):
            out.append(
                (
                    item.instrument_id.value,
                    *(
                        (
                            d.action,
                            d.order.side,
                            str(d.order.price),
                            int(d.order.size),
                            d.order.order_id,
                            d.flags,
                            d.sequence,
                            d.ts_event,
                            d.ts_init,
                        )
                        for d in item.deltas
                    ),
                )
            )
        else:
            out.append(
                (
                    item.instrument_id.value,
                    str(item.price),
                    int(item.size),
                    item.aggressor_side,
                    item.trade_id.value,
                    item.ts_event,
                    item.ts_init,
                )
            )
    return out


class MirrorBook:
    """A price -> size map per side that rejects any delta an L2 venue could not have sent."""

    def __init__(self) -> None:
        self.sides = {OrderSide.BUY: {}, OrderSide.SELL: {}}

    def apply(self, delta: OrderBookDelta) -> None:
        if delta.action == BookAction.CLEAR:
            for levels in self.sides.values():
                levels.clear()
            return
        levels = self.sides[delta.order.side]
        price, size = delta.order.price.as_decimal(), int(delta.order.size)
        if delta.action == BookAction.ADD:
            assert price not in levels, f"ADD on existing level {price}: {delta}"
            assert size > 0, delta
            levels[price] = size
        elif delta.action == BookAction.UPDATE:
            assert price in levels, f"UPDATE of missing level {price}: {delta}"
            assert size > 0, delta
            levels[price] = size
        else:
            assert price in levels, f"DELETE of missing level {price}: {delta}"
            del levels[price]

    def best(self, side: OrderSide) -> Decimal:
        levels = self.sides[side]
        return max(levels) if side == OrderSide.BUY else min(levels)


@pytest.fixture(scope="module")
def demo() -> dict[InstrumentId, list]:
    return session()


@pytest.fixture(scope="module")
def demo_catalog(tmp_path_factory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("synthetic") / "catalog"
    summary = write_synthetic_catalog(path, duration=SHORT, seed=7, chunk_rows=3_000)
    return path, summary


def test_demo_etfs_have_realistic_prices_on_a_cent_grid():
    prices = {s.symbol: s.start_price for s in DEMO_ETFS}
    assert set(prices) == {"SPY", "QQQ", "IEF", "GLD"}
    assert (
        500 < prices["SPY"] < 700
        and 400 < prices["QQQ"] < 600
        and 80 < prices["IEF"] < 110
        and 200 < prices["GLD"] < 300
    )
    assert all(s.price_increment == Decimal("0.01") for s in DEMO_ETFS)


def test_make_equity_builds_a_fee_free_whole_share_equity():
    spy = make_equity("SPY")
    assert spy.id == InstrumentId.from_str("SPY.SMART")
    assert spy.quote_currency == USD
    assert spy.price_precision == 2 and spy.price_increment.as_decimal() == Decimal("0.01")
    assert spy.size_increment.as_decimal() == 1 and spy.lot_size.as_decimal() == 1
    assert spy.maker_fee == 0 and spy.taker_fee == 0
    es = make_equity("ES", "XCME", "0.25")
    assert es.price_precision == 2 and es.price_increment.as_decimal() == Decimal("0.25")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start_price": Decimal("100.005")},
        {"start_price": Decimal("-1")},
        {"daily_vol": -0.1},
        {"depth_levels": 0},
        {"level_size_mean": 0},
        {"start_price": Decimal("0.20")},
        {"daily_drift": 1.0},
        {"daily_drift": -1.5},
        {"daily_drift": math.nan},
    ],
)
def test_spec_rejects_impossible_instruments(kwargs):
    base = {"symbol": "X", "start_price": Decimal("100.00"), "daily_vol": 0.01, "level_size_mean": 100}
    with pytest.raises(ValueError):
        SyntheticInstrumentSpec(**(base | kwargs))


def test_same_seed_reproduces_and_another_seed_differs(demo):
    again = session()
    assert {k: fingerprint(v) for k, v in demo.items()} == {k: fingerprint(v) for k, v in again.items()}
    other = session(seed=8)
    spy = InstrumentId.from_str("SPY.SMART")
    assert fingerprint(other[spy]) != fingerprint(demo[spy])


def test_chunk_size_does_not_change_the_data(demo):
    spy = InstrumentId.from_str("SPY.SMART")
    rechunked = session(specs=DEMO_ETFS[:1], chunk_events=97)
    assert fingerprint(rechunked[spy]) == fingerprint(demo[spy])


def test_adding_an_instrument_leaves_the_others_unchanged(demo):
    spy = InstrumentId.from_str("SPY.SMART")
    alone = session(specs=DEMO_ETFS[:1])
    assert fingerprint(alone[spy]) == fingerprint(demo[spy])


def test_same_seed_writes_byte_identical_catalogs(tmp_path):
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}

    short = pd.Timedelta(seconds=20)
    write_synthetic_catalog(tmp_path / "a", duration=short, seed=3, chunk_rows=500)
    write_synthetic_catalog(tmp_path / "b", duration=short, seed=3, chunk_rows=500)
    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert len(a) > len(DEMO_ETFS) * 2
    assert a == b


def test_first_batch_is_a_snapshot_and_every_batch_ends_with_f_last(demo):
    for items in demo.values():
        batches = [x for x in items if isinstance(x, OrderBookDeltas)]
        snapshot = batches[0].deltas
        assert snapshot[0].action == BookAction.CLEAR
        assert all(d.flags & F_SNAPSHOT for d in snapshot)
        assert all(d.action == BookAction.ADD for d in snapshot[1:])
        assert len(snapshot) == 1 + 2 * 10
        for batch in batches:
            deltas = batch.deltas
            assert deltas[-1].flags & F_LAST
            assert not any(d.flags & F_LAST for d in deltas[:-1])
            assert len({d.ts_init for d in deltas}) == 1 and len({d.sequence for d in deltas}) == 1
        assert not any(d.flags & F_SNAPSHOT for batch in batches[1:] for d in batch.deltas)


def test_timestamps_are_ordered_and_inside_the_session(demo):
    end = DEFAULT_START.value + SHORT.value
    for items in demo.values():
        ts = [x.ts_init for x in items]
        assert ts == sorted(ts)
        assert ts[0] == DEFAULT_START.value and ts[-1] < end
        batch_ts = [x.ts_init for x in items if isinstance(x, OrderBookDeltas)]
        assert all(a < b for a, b in zip(batch_ts, batch_ts[1:], strict=False)), "one venue event per timestamp"
        assert all(x.ts_event == x.ts_init for x in items)


def test_books_stay_uncrossed_consistent_and_full_depth(demo):
    for iid, items in demo.items():
        book = OrderBook(iid, BookType.L2_MBP)
        mirror = MirrorBook()
        for item in items:
            if not isinstance(item, OrderBookDeltas):
                continue
            for delta in item.deltas:
                mirror.apply(delta)
            book.apply_deltas(item)
            bid, ask = book.best_bid_price(), book.best_ask_price()
            assert bid < ask, f"{iid} crossed at {item.ts_init}: {bid} >= {ask}"
            assert (bid.as_decimal(), ask.as_decimal()) == (mirror.best(OrderSide.BUY), mirror.best(OrderSide.SELL))
            assert len(book.bids()) == len(book.asks()) == 10
            assert all(level.size() > 0 for level in (*book.bids(), *book.asks()))
            assert all(p.as_decimal() % Decimal("0.01") == 0 for p in (bid, ask))


def test_trades_take_the_touch_and_the_book_shows_it(demo):
    """Each print hits the best opposite level left by earlier prints of the same event, and the
    event's own book update removes exactly the traded size."""
    checked = 0
    for items in demo.values():
        mirror = MirrorBook()
        for n, item in enumerate(items):
            if not isinstance(item, OrderBookDeltas):
                continue
            trades = []
            for follower in items[n + 1 :]:
                if not isinstance(follower, TradeTick):
                    break
                trades.append(follower)
            before = {side: dict(levels) for side, levels in mirror.sides.items()}
            for delta in item.deltas:
                mirror.apply(delta)
            remaining = {side: dict(levels) for side, levels in before.items()}
            traded: dict[tuple, int] = defaultdict(int)
            for trade in trades:
                assert trade.ts_init == item.ts_init
                side = OrderSide.SELL if trade.aggressor_side == AggressorSide.BUYER else OrderSide.BUY
                assert trade.aggressor_side in (AggressorSide.BUYER, AggressorSide.SELLER)
                levels = remaining[side]
                touch = min(levels) if side == OrderSide.SELL else max(levels)
                price, size = trade.price.as_decimal(), int(trade.size)
                assert price == touch, f"trade {trade} not at the touch {touch}"
                assert 0 < size <= levels[price]
                levels[price] -= size
                if levels[price] == 0:
                    del levels[price]
                traded[(side, price)] += size
                checked += 1
            for (side, price), size in traded.items():
                left = before[side][price] - size
                assert mirror.sides[side].get(price, 0) == left
            if trades:
                bid, ask = mirror.best(OrderSide.BUY), mirror.best(OrderSide.SELL)
                assert bid < ask
    assert checked > 1_000


def test_mid_price_volatility_matches_daily_vol():
    spec = DEMO_ETFS[0]
    items = session(specs=(spec,), duration=pd.Timedelta(minutes=30), seed=11)[InstrumentId.from_str("SPY.SMART")]
    book = OrderBook(InstrumentId.from_str("SPY.SMART"), BookType.L2_MBP)
    minute = 60 * 10**9
    next_mark, mids = DEFAULT_START.value, []
    for item in items:
        if isinstance(item, OrderBookDeltas):
            while item.ts_init >= next_mark + minute:
                mids.append(float(book.midpoint()))
                next_mark += minute
            book.apply_deltas(item)
    changes = [b - a for a, b in zip(mids, mids[1:], strict=False)]
    realised = math.sqrt(sum(c * c for c in changes) / len(changes))
    expected = float(spec.start_price) * spec.daily_vol * math.sqrt(60 / (6.5 * 3600))
    assert 0.6 < realised / expected < 1.6, (realised, expected)


def _mid_after(spec: SyntheticInstrumentSpec, duration: pd.Timedelta, seed: int) -> Decimal:
    items = session(specs=(spec,), duration=duration, seed=seed)[InstrumentId.from_str(f"{spec.symbol}.SMART")]
    book = OrderBook(InstrumentId.from_str(f"{spec.symbol}.SMART"), BookType.L2_MBP)
    for item in items:
        if isinstance(item, OrderBookDeltas):
            book.apply_deltas(item)
    return Decimal(str(book.midpoint()))


@pytest.mark.parametrize("drift", [0.26, -0.26])
def test_a_trend_moves_the_book_by_its_drift(drift):
    # no noise, so the fair value is start x (1 + drift x elapsed / session) and the book follows it
    spec = SyntheticInstrumentSpec("TRD", Decimal("100.00"), daily_vol=0.0, level_size_mean=200, daily_drift=drift)
    minutes = 15
    expected = Decimal("100.005") * (1 + Decimal(str(drift)) * minutes / Decimal(6.5 * 60))
    mid = _mid_after(spec, pd.Timedelta(minutes=minutes), seed=3)
    # the move is 1 % (100 ticks); the touch trails the fair value by at most a couple of ticks
    assert abs(mid - expected) <= Decimal("0.03"), (mid, expected)


def test_no_drift_is_the_book_without_a_trend(demo):
    flat = tuple(dataclasses.replace(s, daily_drift=0.0) for s in DEMO_ETFS)
    assert fingerprint(session(specs=flat)[InstrumentId.from_str("SPY.SMART")]) == fingerprint(
        demo[InstrumentId.from_str("SPY.SMART")]
    )


def test_event_rate_follows_events_per_sec():
    duration = pd.Timedelta(minutes=2)
    for rate in (5.0, 40.0):
        items = session(specs=DEMO_ETFS[2:3], duration=duration, events_per_sec=rate)
        batches = sum(isinstance(x, OrderBookDeltas) for x in next(iter(items.values())))
        expected = rate * duration.total_seconds()
        # refills after moves add events on top of the Poisson arrivals
        assert 0.9 * expected < batches < 1.5 * expected


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    price_cents=st.integers(2_000, 100_000),
    daily_vol=st.floats(0.0, 0.08),
    depth=st.integers(1, 12),
    size_mean=st.integers(1, 5_000),
    trade_mean=st.integers(1, 2_000),
)
def test_any_spec_keeps_a_valid_book(seed, price_cents, daily_vol, depth, size_mean, trade_mean):
    spec = SyntheticInstrumentSpec(
        "ZZZ", Decimal(price_cents) / 100, daily_vol, size_mean, depth_levels=depth, trade_size_mean=trade_mean
    )
    items = session(specs=(spec,), duration=pd.Timedelta(seconds=20), seed=seed, events_per_sec=50.0)
    mirror = MirrorBook()
    for item in next(iter(items.values())):
        if isinstance(item, OrderBookDeltas):
            for delta in item.deltas:
                mirror.apply(delta)
            assert mirror.best(OrderSide.BUY) < mirror.best(OrderSide.SELL)
            assert len(mirror.sides[OrderSide.BUY]) == len(mirror.sides[OrderSide.SELL]) == depth
        else:
            assert int(item.size) > 0


def test_batched_deltas_groups_per_instrument_and_keeps_unfinished_tails(demo):
    spy, qqq = (InstrumentId.from_str(s) for s in ("SPY.SMART", "QQQ.SMART"))
    a = [b for b in demo[spy] if isinstance(b, OrderBookDeltas)][:50]
    b = [b for b in demo[qqq] if isinstance(b, OrderBookDeltas)][:50]
    interleaved = [d for pair in zip(a, b, strict=False) for batch in pair for d in batch.deltas]
    regrouped = list(batched_deltas(interleaved))
    assert fingerprint(regrouped) == fingerprint([x for pair in zip(a, b, strict=False) for x in pair])

    tail = a[1].deltas
    unfinished = list(batched_deltas([*a[0].deltas, *tail[:-1]]))
    assert [len(x.deltas) for x in unfinished] == [len(a[0].deltas), len(tail) - 1]


def test_catalog_round_trip_restores_batches_in_time_order(demo_catalog, demo):
    path, summary = demo_catalog
    for iid, items in demo.items():
        assert summary.deltas[iid.value] == sum(len(x.deltas) for x in items if isinstance(x, OrderBookDeltas))
        assert summary.trades[iid.value] == sum(isinstance(x, TradeTick) for x in items)
        assert len(list((path / "data" / "order_book_deltas" / iid.value).glob("*.parquet"))) > 1
        assert len(list((path / "data" / "trade_tick" / iid.value).glob("*.parquet"))) > 1

    chunks = list(stream_catalog(path, list(demo), chunk_size=2_000))
    assert len(chunks) > 10 and all(chunks)
    merged = [x for chunk in chunks for x in chunk]
    ts = [x.ts_init for x in merged]
    assert ts == sorted(ts)
    for earlier, later in zip(merged, merged[1:], strict=False):
        if earlier.ts_init == later.ts_init:
            assert not (isinstance(earlier, TradeTick) and isinstance(later, OrderBookDeltas))
    for iid, items in demo.items():
        assert fingerprint([x for x in merged if x.instrument_id == iid]) == fingerprint(items)


def test_catalog_window_start_and_end_are_inclusive(demo_catalog, demo):
    path, _ = demo_catalog
    spy = InstrumentId.from_str("SPY.SMART")
    trades = [x for x in demo[spy] if isinstance(x, TradeTick)]
    lo, hi = trades[10].ts_init, trades[200].ts_init
    streamed = [x for chunk in stream_catalog(path, [spy], start=lo, end=hi, chunk_size=500) for x in chunk]
    expected = [x for x in demo[spy] if lo <= x.ts_init <= hi]
    assert fingerprint(streamed) == fingerprint(expected)
    assert list(stream_catalog(path, [spy], start=hi + 1, end=hi + 1)) == []


def test_catalog_metadata(demo_catalog):
    path, summary = demo_catalog
    assert summary.start_ns == DEFAULT_START.value
    assert catalog_time_range(path, list(summary.instrument_ids)) == (summary.start_ns, summary.end_ns)
    assert sorted(i.id.value for i in catalog_instruments(path)) == sorted(summary.instrument_ids)
    with pytest.raises(ValueError, match="no order book deltas"):
        catalog_time_range(path, ["NOPE.SMART"])


def test_writing_twice_needs_overwrite(tmp_path):
    short = pd.Timedelta(seconds=5)
    first = write_synthetic_catalog(tmp_path, DEMO_ETFS[:1], duration=short, seed=1)
    with pytest.raises(FileExistsError, match="SPY.SMART"):
        write_synthetic_catalog(tmp_path, DEMO_ETFS[:1], duration=short, seed=2)
    second = write_synthetic_catalog(tmp_path, DEMO_ETFS[:1], duration=short, seed=2, overwrite=True)
    assert second.total_deltas != first.total_deltas
    streamed = sum(
        len(x.deltas) for c in stream_catalog(tmp_path, ["SPY.SMART"]) for x in c if isinstance(x, OrderBookDeltas)
    )
    assert streamed == second.total_deltas
    assert len(catalog_instruments(tmp_path)) == 1


def test_engine_consumes_the_stream(demo_catalog):
    path, summary = demo_catalog
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR"), run_analysis=False))
    engine.add_venue(
        Venue("SMART"),
        OmsType.NETTING,
        AccountType.CASH,
        [Money(1_000_000, USD)],
        base_currency=USD,
        book_type=BookType.L2_MBP,
        bar_execution=False,
    )
    for instrument in catalog_instruments(path):
        engine.add_instrument(instrument)
    engine.add_data_iterator("synthetic", stream_catalog(path, list(summary.instrument_ids), chunk_size=20_000))
    engine.run()
    batches = sum(1 for c in stream_catalog(path, list(summary.instrument_ids)) for x in c)
    assert engine.iteration == batches
    engine.dispose()
