"""Real CME market-by-order samples (Databento DBN) replayed as an equity-like instrument.

The rebalancer trades cash equities, but what a backtest needs from real data is real book dynamics:
queue depletion, partial fills, cancels. So the ES future's order flow is kept as recorded (prices,
sizes, order ids, flags, sequence numbers, timestamps) and only the instrument id changes.
"""

from __future__ import annotations

from pathlib import Path

from nautilus_trader.adapters.databento.loaders import DatabentoDataLoader
from nautilus_trader.core.data import Data
from nautilus_trader.model.data import OrderBookDelta, TradeTick
from nautilus_trader.model.instruments import Equity

from data.catalog import CatalogLike, CatalogWriteSummary
from data.sources import MBO_SCHEMA, check_dbn_file, sniff
from data.synthetic import make_equity
from data.validation import BookDataError, CatalogImport

# ../shared/data/cme beside the repository, see its README for what each file holds.
CME_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cme"
ESH4_MBO_FILE = "esh4-glbx-mdp3-20231225.mbo.dbn.zst"


def load_cme_mbo_as_equity(
    path: str | Path,
    symbol: str = "ES",
    venue: str = "SMART",
    price_precision: int = 2,
    include_trades: bool = True,
    price_increment: str = "0.25",
) -> tuple[Equity, list[Data]]:
    """Load a Databento MBO file as ``OrderBookDelta``s (and ``TradeTick``s) of ``{symbol}.{venue}``.

    Returns the matching ``Equity`` (tick ``price_increment``, whole shares, no exchange fee) and the
    data in file order, which is ``ts_init`` order.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no DBN file at {path}")
    # The loader reads a cut file as far as it goes and says nothing, so the framing is checked first.
    framing = check_dbn_file(path)
    if framing.schema != MBO_SCHEMA:
        raise BookDataError(
            f"not an MBO file: it is a DBN {framing.schema_name} file, and the dbn importer reads order-by-order MBO",
            source=str(path), line=None, field=None, value=None,
        )  # fmt: skip
    if sniff(path) == "dbn":
        raise BookDataError(
            "an uncompressed DBN file; the loader reads zstd-compressed DBN (.dbn.zst): compress it with zstd",
            source=str(path), line=None, field=None, value=None,
        )  # fmt: skip
    instrument = make_equity(symbol, venue, price_increment)
    if instrument.price_precision != price_precision:
        raise ValueError(
            f"price_increment {price_increment} has precision {instrument.price_precision}, "
            f"but price_precision={price_precision} was asked for"
        )
    # The loader stamps the given id on every record, so nothing is rebuilt after loading.
    try:
        data = DatabentoDataLoader().from_dbn_file(
            path,
            instrument_id=instrument.id,
            price_precision=price_precision,
            as_legacy_cython=True,
            include_trades=include_trades,
        )
    except (ValueError, RuntimeError) as exc:
        raise BookDataError(
            f"the DBN loader could not read it: {exc}", source=str(path), line=None, field=None, value=None
        ) from None
    unexpected = {type(d).__name__ for d in data if not isinstance(d, (OrderBookDelta, TradeTick))}
    if unexpected:
        raise ValueError(f"{path.name} is not an MBO file: it loads as {sorted(unexpected)}")
    return instrument, data


def write_cme_catalog(
    path: str | Path,
    catalog_path: CatalogLike,
    symbol: str = "ES",
    venue: str = "SMART",
    price_precision: int = 2,
    include_trades: bool = True,
    chunk_size: int = 250_000,
    overwrite: bool = False,
) -> CatalogWriteSummary:
    """Write an MBO file to the catalog as ``{symbol}.{venue}``, in files of about ``chunk_size`` rows.

    A file of another day is appended to what the catalog holds for the instrument; one that overlaps it
    in time raises ``CatalogOverlapError`` (a ``FileExistsError``) and writes nothing, unless ``overwrite``
    replaces the instrument's data.
    """
    instrument, data = load_cme_mbo_as_equity(path, symbol, venue, price_precision, include_trades)
    deltas = [d for d in data if isinstance(d, OrderBookDelta)]
    trades = [d for d in data if isinstance(d, TradeTick)]
    del data
    if not deltas:
        raise ValueError(f"{Path(path).name} holds no order book deltas")
    with CatalogImport(catalog_path, instrument, (OrderBookDelta, TradeTick), chunk_size, overwrite) as sink:
        for cls, rows in ((OrderBookDelta, deltas), (TradeTick, trades)):
            if rows:  # the whole file's span is known, so an overlap is named in full before anything is written
                sink.expect(cls, rows[0].ts_init, rows[-1].ts_init)
        sink.add(deltas=deltas, trades=trades)
    return sink.summary()
