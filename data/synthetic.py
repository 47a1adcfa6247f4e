"""Seeded synthetic L2 (market-by-price) sessions for US ETFs, written to a ParquetDataCatalog.

The model is deliberately small but keeps the properties a rebalance backtest depends on:

* a latent fair value follows an arithmetic random walk whose variance matches ``daily_vol`` over a
  6.5 h session, with an optional steady trend of ``daily_drift`` over the same session, sampled on a
  Poisson event clock;
* the book is ``depth_levels`` contiguous one-tick levels per side whose size grows away from the touch;
* when the fair value leaves ``[best bid, best ask]`` the touch is swept by an aggressor (trades printed
  level by level) or pulled, and a follow-up event a few milliseconds later refills the spread, so the
  spread is one tick most of the time and occasionally two or three;
* between moves, events are size updates and partial trades that eat into the touch.

Every venue event becomes one batch of deltas whose last delta carries ``F_LAST``; a trade and the book
update it causes share one timestamp, the batch first. Nothing depends on wall-clock time or global random
state, so a seed reproduces the catalog byte for byte.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from nautilus_trader.core.data import Data
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookAction, OrderSide, RecordFlag
from nautilus_trader.model.identifiers import InstrumentId, Symbol, TradeId
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import FIXED_PRECISION, Price, Quantity
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from tqdm import tqdm

from data.catalog import (
    CatalogWriteSummary,
    catalog_time_range,
    open_catalog,
    prepare_instrument_slots,
    unix_nanos,
)

DEFAULT_START = pd.Timestamp("2024-03-04 14:30", tz="UTC")  # a Monday, 09:30 New York
SESSION_SECONDS = 6.5 * 3600  # daily_vol is quoted per regular US trading session

SyntheticCatalogSummary = CatalogWriteSummary


@dataclass(frozen=True)
class SyntheticInstrumentSpec:
    """One instrument of a synthetic session.

    ``daily_vol`` is the standard deviation of the price over one trading session as a fraction of
    ``start_price``; ``level_size_mean`` is the mean displayed size at the touch, in shares.
    ``daily_drift`` is the fair value's expected move over one session as a signed fraction of
    ``start_price`` (0.05: up 5 % by the close), for books that trend while an order works.
    """

    symbol: str
    start_price: Decimal
    daily_vol: float
    level_size_mean: int
    depth_levels: int = 10
    price_increment: Decimal = Decimal("0.01")
    depth_growth: float = 0.25  # each level away from the touch shows this much more size on average
    size_noise: float = 0.5  # lognormal sigma of displayed sizes
    trade_size_mean: int = 100
    daily_drift: float = 0.0

    def __post_init__(self) -> None:
        if self.price_increment <= 0:
            raise ValueError(f"{self.symbol}: price_increment must be positive, was {self.price_increment}")
        if self.start_price <= 0 or self.start_price % self.price_increment != 0:
            raise ValueError(
                f"{self.symbol}: start_price {self.start_price} must be positive and on the "
                f"{self.price_increment} tick grid"
            )
        if self.start_price / self.price_increment <= 4 * self.depth_levels:
            raise ValueError(f"{self.symbol}: start_price is too close to zero for {self.depth_levels} levels")
        if self.daily_vol < 0:
            raise ValueError(f"{self.symbol}: daily_vol must be >= 0, was {self.daily_vol}")
        # written so that nan fails too; a session's move of the whole price or more leaves no book
        if not -1 < self.daily_drift < 1:
            raise ValueError(f"{self.symbol}: daily_drift must be a fraction in (-1, 1), was {self.daily_drift}")
        if self.depth_levels < 1 or self.level_size_mean < 1 or self.trade_size_mean < 1:
            raise ValueError(f"{self.symbol}: depth_levels, level_size_mean and trade_size_mean must be >= 1")


DEMO_ETFS: tuple[SyntheticInstrumentSpec, ...] = (
    SyntheticInstrumentSpec("SPY", Decimal("590.00"), daily_vol=0.010, level_size_mean=600, trade_size_mean=120),
    SyntheticInstrumentSpec("QQQ", Decimal("510.00"), daily_vol=0.013, level_size_mean=400, trade_size_mean=100),
    SyntheticInstrumentSpec("IEF", Decimal("94.00"), daily_vol=0.004, level_size_mean=2500, trade_size_mean=300),
    SyntheticInstrumentSpec("GLD", Decimal("245.00"), daily_vol=0.009, level_size_mean=300, trade_size_mean=80),
)


def make_equity(
    symbol: str,
    venue: str = "SMART",
    price_increment: str = "0.01",
    ts_init: int = 0,
) -> Equity:
    """A US-dollar equity traded in whole shares with no exchange fee (commissions belong to the fee model)."""
    increment = Price.from_str(str(price_increment))
    return Equity(
        instrument_id=InstrumentId.from_str(f"{symbol}.{venue}"),
        raw_symbol=Symbol(symbol),
        currency=USD,
        price_precision=increment.precision,
        price_increment=increment,
        lot_size=Quantity.from_int(1),
        ts_event=ts_init,
        ts_init=ts_init,
        maker_fee=Decimal(0),
        taker_fee=Decimal(0),
    )


# Event mix; the fair value decides direction, these decide texture.
_P_FADE = 0.3  # a move pulls the touch instead of trading through it
_P_REFILL = 0.85  # a move is followed within milliseconds by the other side stepping up
_REFILL_DELAY_NS = 2_000_000  # mean of that delay
_P_IMPROVE_WIDE = 0.6  # on a main event with a wide spread, someone improves it
_P_TOUCH_PULL = 0.03  # a touch level vanishes without a fair-value move
_P_PARTIAL_TRADE = 0.25  # of the remaining events, a trade that leaves the touch standing
_MAX_SWEEP = 3  # levels one aggressor may take
_TRADE_SIZE_SIGMA = 1.0  # lognormal: mostly small prints, a few blocks
_LEVEL_WEIGHT_DECAY = 0.75  # size updates cluster near the touch

_F_LAST = int(RecordFlag.F_LAST)
_F_SNAPSHOT = int(RecordFlag.F_SNAPSHOT)
_ADD, _UPDATE, _DELETE = BookAction.ADD, BookAction.UPDATE, BookAction.DELETE


class _Side:
    """One side of a contiguous one-tick-per-level book; level i sits at ``touch + step * i``."""

    __slots__ = ("order_side", "step", "touch", "sizes")

    def __init__(self, order_side: OrderSide, step: int, touch: int, sizes: list[int]) -> None:
        self.order_side = order_side
        self.step = step  # +1 for asks (worse is higher), -1 for bids
        self.touch = touch
        self.sizes = sizes


class _SessionSimulator:
    """Book, fair value and random streams of one instrument; ``blocks()`` yields its venue events."""

    def __init__(
        self,
        spec: SyntheticInstrumentSpec,
        venue: str,
        start_ns: int,
        end_ns: int,
        seed: int,
        events_per_sec: float,
        block_events: int,
    ) -> None:
        if events_per_sec <= 0:
            raise ValueError(f"events_per_sec must be positive, was {events_per_sec}")
        if end_ns <= start_ns:
            raise ValueError("the session must have a positive duration")
        self.spec = spec
        self.instrument_id = InstrumentId.from_str(f"{spec.symbol}.{venue}")
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.block_events = max(1, block_events)
        self.mean_gap_ns = 1e9 / events_per_sec
        # Seeding per symbol keeps an instrument's path unchanged when others are added or reordered, and
        # one generator per quantity keeps it unchanged when the block size (and so each draw's length) changes.
        root = np.random.SeedSequence([seed, zlib.crc32(spec.symbol.encode())])
        (
            self.rng_gap,
            self.rng_fair,
            self.rng_kind,
            self.rng_side,
            self.rng_refill,
            self.rng_level,
            self.rng_update,
            self.rng_trade,
            self.rng_refill_gap,
            self.rng_size,
        ) = (np.random.default_rng(child) for child in root.spawn(10))

        self.price_precision = Price.from_str(str(spec.price_increment)).precision
        self.tick_raw = int(spec.price_increment * 10**FIXED_PRECISION)
        self.share_raw = 10**FIXED_PRECISION
        levels = spec.depth_levels
        self.profile = [spec.level_size_mean * (1.0 + spec.depth_growth * i) for i in range(levels)]
        weights = np.array([_LEVEL_WEIGHT_DECAY**i for i in range(levels)])
        self.level_cdf = np.cumsum(weights) / weights.sum()
        self.level_cdf[-1] = 1.0  # rounding must not let searchsorted pick a level past the last
        sigma_ticks = spec.daily_vol * float(spec.start_price / spec.price_increment)
        self.fair_sigma_per_sqrt_ns = sigma_ticks / math.sqrt(SESSION_SECONDS * 1e9)
        # adding 0.0 leaves a float as it was, so a book without a trend is the one it always was
        self.fair_drift_per_ns = (
            spec.daily_drift * float(spec.start_price / spec.price_increment) / (SESSION_SECONDS * 1e9)
        )
        self.min_touch = 2 * levels  # keeps every displayed price positive

        start_tick = int(spec.start_price / spec.price_increment)
        self.bids = _Side(OrderSide.BUY, -1, start_tick, [0] * levels)
        self.asks = _Side(OrderSide.SELL, +1, start_tick + 1, [0] * levels)
        self.fair = start_tick + 0.5
        self.sequence = 0
        self.delta_count = 0
        self.trade_count = 0
        self._noise: list[float] = []
        self._noise_pos = 0

    # -- random helpers -------------------------------------------------------------------------

    def _normal(self) -> float:
        if self._noise_pos >= len(self._noise):
            self._noise = self.rng_size.standard_normal(4 * self.block_events + 64).tolist()
            self._noise_pos = 0
        z = self._noise[self._noise_pos]
        self._noise_pos += 1
        return z

    def _level_size(self, level: int) -> int:
        s = self.spec.size_noise
        return max(1, round(self.profile[level] * math.exp(s * self._normal() - 0.5 * s * s)))

    # -- book operations (append (action, side, tick, size) to ops and mutate the side) ------------

    def _take(self, side: _Side, levels: int, ops: list, trades: list | None, aggressor: AggressorSide) -> None:
        """Remove the ``levels`` best levels of ``side`` (traded through when ``trades`` is given) and
        replenish the same number behind the deepest level so depth stays constant."""
        depth = len(side.sizes)
        for i in range(levels):
            tick = side.touch + side.step * i
            size = side.sizes[i]
            if trades is not None:
                trades.append((tick, size, aggressor))
            ops.append((_DELETE, side.order_side, tick, size))
        fresh = [self._level_size(depth - 1) for _ in range(levels)]
        for i, size in enumerate(fresh):
            ops.append((_ADD, side.order_side, side.touch + side.step * (depth + i), size))
        side.sizes = side.sizes[levels:] + fresh
        side.touch += side.step * levels

    def _improve(self, side: _Side, levels: int, ops: list) -> None:
        """Quote ``levels`` new prices inside the spread on ``side``; the deepest levels drop off."""
        depth = len(side.sizes)
        levels = min(levels, depth)
        for i in range(depth - levels, depth):
            ops.append((_DELETE, side.order_side, side.touch + side.step * i, side.sizes[i]))
        fresh = [self._level_size(0) for _ in range(levels)]  # fresh[-1] becomes the new touch
        for i, size in enumerate(fresh):
            ops.append((_ADD, side.order_side, side.touch - side.step * (i + 1), size))
        side.sizes = fresh[::-1] + side.sizes[: depth - levels]
        side.touch -= side.step * levels

    # -- event loop -------------------------------------------------------------------------------

    def _emit(self, ops: list, trades: list, ts: int, out: list) -> None:
        self.sequence += 1
        iid, seq, from_raw = self.instrument_id, self.sequence, OrderBookDelta.from_raw
        tick_raw, share_raw, prec = self.tick_raw, self.share_raw, self.price_precision
        last = len(ops) - 1
        deltas = [
            from_raw(iid, a, s, t * tick_raw, prec, q * share_raw, 0, 0, 0 if n < last else _F_LAST, seq, ts, ts)
            for n, (a, s, t, q) in enumerate(ops)
        ]
        self.delta_count += len(deltas)
        ticks = []
        for tick, size, aggressor in trades:
            self.trade_count += 1
            ticks.append(
                TradeTick.from_raw(
                    iid,
                    tick * tick_raw,
                    prec,
                    size * share_raw,
                    0,
                    aggressor,
                    TradeId(f"{self.spec.symbol}-{self.trade_count}"),
                    ts,
                    ts,
                )
            )
        out.append((deltas, ticks))

    def _snapshot(self, out: list) -> None:
        for side in (self.bids, self.asks):
            side.sizes = [self._level_size(i) for i in range(len(side.sizes))]
        self.sequence += 1
        iid, seq, ts, prec = self.instrument_id, self.sequence, self.start_ns, self.price_precision
        deltas = [
            OrderBookDelta.from_raw(
                iid, BookAction.CLEAR, OrderSide.NO_ORDER_SIDE, 0, prec, 0, 0, 0, _F_SNAPSHOT, seq, ts, ts
            )
        ]
        levels = [(side, i) for side in (self.bids, self.asks) for i in range(len(side.sizes))]
        for n, (side, i) in enumerate(levels):
            flags = _F_SNAPSHOT | (_F_LAST if n == len(levels) - 1 else 0)
            deltas.append(
                OrderBookDelta.from_raw(
                    iid,
                    _ADD,
                    side.order_side,
                    (side.touch + side.step * i) * self.tick_raw,
                    prec,
                    side.sizes[i] * self.share_raw,
                    0,
                    0,
                    flags,
                    seq,
                    ts,
                    ts,
                )
            )
        self.delta_count += len(deltas)
        out.append((deltas, []))

    def blocks(self) -> Iterator[list[tuple[list[OrderBookDelta], list[TradeTick]]]]:
        """Yield lists of venue events ``(deltas, trades)`` in time order, about ``block_events`` main
        events per list; the first event is the opening snapshot."""
        n = self.block_events
        bids, asks = self.bids, self.asks
        end_ns = self.end_ns
        trade_mu = math.log(self.spec.trade_size_mean) - 0.5 * _TRADE_SIZE_SIGMA**2
        out: list = []
        self._snapshot(out)
        t_next = self.start_ns + max(1, round(self.rng_gap.exponential(self.mean_gap_ns)))
        while t_next < end_ns:
            gaps = np.maximum(1, np.rint(self.rng_gap.exponential(self.mean_gap_ns, n))).astype(np.int64).tolist()
            fair_z = self.rng_fair.standard_normal(n).tolist()
            u_kind = self.rng_kind.random(n).tolist()
            u_side = self.rng_side.random(n).tolist()
            u_refill = self.rng_refill.random(n).tolist()
            level_pick = np.searchsorted(self.level_cdf, self.rng_level.random(n)).tolist()
            update_z = self.rng_update.standard_normal(n).tolist()
            trade_size = self.rng_trade.lognormal(trade_mu, _TRADE_SIZE_SIGMA, n)
            trade_size = np.maximum(1, np.rint(trade_size)).astype(np.int64).tolist()
            refill_gap = self.rng_refill_gap.exponential(_REFILL_DELAY_NS, n).tolist()
            for j in range(n):
                ts = t_next
                if ts >= end_ns:
                    break
                t_next = ts + gaps[j]
                self.fair = max(
                    self.min_touch,
                    self.fair
                    + self.fair_drift_per_ns * gaps[j]
                    + self.fair_sigma_per_sqrt_ns * math.sqrt(gaps[j]) * fair_z[j],
                )
                fair = self.fair
                ops: list = []
                trades: list = []
                refill_side = None
                spread = asks.touch - bids.touch
                mid = 0.5 * (asks.touch + bids.touch)
                if spread > 1 and u_kind[j] < _P_IMPROVE_WIDE:
                    lean = fair - mid
                    side = bids if (lean > 0 or (lean == 0 and u_side[j] < 0.5)) else asks
                    self._improve(side, 1, ops)
                elif fair > asks.touch or (fair < bids.touch and bids.touch > self.min_touch):
                    up = fair > asks.touch
                    taken, follower = (asks, bids) if up else (bids, asks)
                    levels = min(_MAX_SWEEP, len(taken.sizes), 1 + int(abs(fair - taken.touch)))
                    fade = u_side[j] < _P_FADE
                    aggressor = AggressorSide.BUYER if up else AggressorSide.SELLER
                    self._take(taken, levels, ops, None if fade else trades, aggressor)
                    if u_refill[j] < _P_REFILL:
                        refill_side = follower
                elif u_kind[j] < _P_TOUCH_PULL and bids.touch > self.min_touch:
                    pulled = bids if u_side[j] < 0.5 else asks
                    self._take(pulled, 1, ops, None, AggressorSide.NO_AGGRESSOR)
                    if u_refill[j] < _P_REFILL:
                        refill_side = pulled
                elif u_kind[j] < _P_TOUCH_PULL + _P_PARTIAL_TRADE:
                    p_buy = min(0.9, max(0.1, 0.5 + 0.8 * (fair - mid) / spread))
                    side = asks if u_side[j] < p_buy else bids
                    touch_size = side.sizes[0]
                    if touch_size > 1:
                        qty = min(trade_size[j], touch_size - 1)
                        aggressor = AggressorSide.BUYER if side is asks else AggressorSide.SELLER
                        trades.append((side.touch, qty, aggressor))
                        side.sizes[0] = touch_size - qty
                        ops.append((_UPDATE, side.order_side, side.touch, touch_size - qty))
                if not ops:
                    side = bids if u_side[j] < 0.5 else asks
                    level = level_pick[j]
                    old = side.sizes[level]
                    target = self.profile[level] * math.exp(self.spec.size_noise * update_z[j])
                    size = max(1, round(0.6 * old + 0.4 * target))
                    side.sizes[level] = size
                    ops.append((_UPDATE, side.order_side, side.touch + side.step * level, size))
                self._emit(ops, trades, ts, out)
                if refill_side is not None:
                    # The refill must land strictly between this event and the next one (or the end).
                    horizon = min(t_next, end_ns) - ts
                    ts_refill = ts + max(1, min(round(refill_gap[j]), horizon // 2))
                    gap_ticks = asks.touch - bids.touch - 1
                    if ts_refill < ts + horizon and gap_ticks > 0:
                        refill_ops: list = []
                        self._improve(refill_side, gap_ticks, refill_ops)
                        self._emit(refill_ops, [], ts_refill, out)
            yield out
            out = []
        if out:
            yield out


def _write_and_clear(catalog: ParquetDataCatalog, *row_lists: list) -> int:
    """Write each non-empty list as one file, empty it, and return the number of files written."""
    written = 0
    for rows in row_lists:
        if rows:
            catalog.write_data(rows)
            rows.clear()
            written += 1
    return written


def _events_to_data(instrument_id: InstrumentId, events: list) -> list[Data]:
    data: list[Data] = []
    for deltas, trades in events:
        data.append(OrderBookDeltas(instrument_id, deltas))
        data.extend(trades)
    return data


def generate_l2_session(
    specs: Sequence[SyntheticInstrumentSpec],
    start: pd.Timestamp | str | int = DEFAULT_START,
    duration: pd.Timedelta = pd.Timedelta(minutes=30),
    seed: int = 7,
    venue: str = "SMART",
    events_per_sec: float = 20.0,
    chunk_events: int = 20_000,
) -> Iterator[tuple[InstrumentId, list[Data]]]:
    """Yield ``(instrument_id, chunk)`` for each instrument in turn, every chunk a time-ordered list of
    ``OrderBookDeltas`` (one per venue event, the first a CLEAR + ADD snapshot) and ``TradeTick``s.

    A trade shares its timestamp with the batch that removes the traded size and follows it. Chunks
    hold about ``chunk_events`` events and never split one. Instruments are not interleaved: use
    ``write_synthetic_catalog`` and ``data.catalog.stream_catalog`` for a merged stream.
    """
    start_ns = unix_nanos(start)
    end_ns = start_ns + pd.Timedelta(duration).value
    for spec in specs:
        sim = _SessionSimulator(spec, venue, start_ns, end_ns, seed, events_per_sec, chunk_events)
        for events in sim.blocks():
            yield sim.instrument_id, _events_to_data(sim.instrument_id, events)


def write_synthetic_catalog(
    catalog_path: str | Path,
    specs: Sequence[SyntheticInstrumentSpec] = DEMO_ETFS,
    start: pd.Timestamp | str | int = DEFAULT_START,
    duration: pd.Timedelta = pd.Timedelta(minutes=30),
    seed: int = 7,
    venue: str = "SMART",
    events_per_sec: float = 20.0,
    chunk_rows: int = 250_000,
    overwrite: bool = False,
) -> SyntheticCatalogSummary:
    """Generate a session and write instruments, ``OrderBookDelta`` rows and ``TradeTick``s to the catalog.

    Files are written every ``chunk_rows`` deltas (always on a venue-event boundary), so memory stays
    bounded by one chunk. Another session of the same instruments is appended, so one catalog can hold
    several days; a session that overlaps what the catalog holds raises ``CatalogOverlapError`` (a
    ``FileExistsError``) before anything is written, unless ``overwrite`` is set, which deletes the
    instruments' data first.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, was {chunk_rows}")
    t0 = time.perf_counter()
    start_ns = unix_nanos(start)
    end_ns = start_ns + pd.Timedelta(duration).value
    catalog = open_catalog(catalog_path)
    instruments = [make_equity(s.symbol, venue, str(s.price_increment), ts_init=start_ns) for s in specs]
    prepare_instrument_slots(catalog, instruments, overwrite=overwrite, span=(start_ns, end_ns))

    delta_counts: dict[str, int] = {}
    trade_counts: dict[str, int] = {}
    files = 0
    session_s = (end_ns - start_ns) / 1e9
    with tqdm(total=round(len(specs) * session_s), unit="sim-s", desc="synthetic L2", disable=None) as bar:
        for spec in specs:
            sim = _SessionSimulator(spec, venue, start_ns, end_ns, seed, events_per_sec, block_events=8_192)
            deltas: list[OrderBookDelta] = []
            trades: list[TradeTick] = []
            progressed = start_ns
            for events in sim.blocks():
                for event_deltas, event_trades in events:
                    deltas.extend(event_deltas)
                    trades.extend(event_trades)
                    if len(deltas) >= chunk_rows:
                        files += _write_and_clear(catalog, deltas, trades)
                reached = events[-1][0][-1].ts_init
                bar.update((reached - progressed) / 1e9)
                progressed = reached
            files += _write_and_clear(catalog, deltas, trades)
            bar.update((end_ns - progressed) / 1e9)
            delta_counts[sim.instrument_id.value] = sim.delta_count
            trade_counts[sim.instrument_id.value] = sim.trade_count

    instrument_ids = tuple(i.id.value for i in instruments)
    return CatalogWriteSummary(
        catalog_path=Path(catalog_path),
        instrument_ids=instrument_ids,
        deltas=delta_counts,
        trades=trade_counts,
        start_ns=start_ns,  # every book opens with its snapshot at the session start
        end_ns=catalog_time_range(catalog, instrument_ids)[1],
        files=files,
        seconds=time.perf_counter() - t0,
    )


def write_synthetic_days(
    catalog_path: str | Path,
    days: int,
    start: pd.Timestamp | str | int = DEFAULT_START,
    seed: int = 7,
    **session: object,
) -> list[SyntheticCatalogSummary]:
    """``days`` sessions on consecutive business days from ``start`` (same time of day), all in one catalog.

    Day n is seeded with ``seed + n``, so days differ and each is reproducible alone; ``session`` goes to
    ``write_synthetic_catalog``.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, was {days}")
    first = pd.Timestamp(unix_nanos(start), unit="ns", tz="UTC")
    starts = pd.bdate_range(first.normalize(), periods=days) + (first - first.normalize())
    return [
        write_synthetic_catalog(catalog_path, start=day, seed=seed + n, **session)  # type: ignore[arg-type]
        for n, day in enumerate(starts)
    ]
