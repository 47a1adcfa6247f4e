"""Market data for backtests: synthetic ETF books, real CME samples, and catalog streaming."""

from data.catalog import (
    CatalogOverlapError,
    CatalogWriteSummary,
    DeltaBatcher,
    batched_deltas,
    catalog_days,
    catalog_instruments,
    catalog_time_range,
    day_bounds,
    stream_catalog,
    unix_nanos,
    write_data_chunked,
)
from data.cme import CME_DATA_DIR, ESH4_MBO_FILE, load_cme_mbo_as_equity, write_cme_catalog
from data.synthetic import (
    DEFAULT_START,
    DEMO_ETFS,
    SyntheticCatalogSummary,
    SyntheticInstrumentSpec,
    generate_l2_session,
    make_equity,
    write_synthetic_catalog,
    write_synthetic_days,
)

__all__ = [
    "CME_DATA_DIR",
    "DEFAULT_START",
    "DEMO_ETFS",
    "ESH4_MBO_FILE",
    "CatalogOverlapError",
    "CatalogWriteSummary",
    "DeltaBatcher",
    "SyntheticCatalogSummary",
    "SyntheticInstrumentSpec",
    "batched_deltas",
    "catalog_days",
    "catalog_instruments",
    "catalog_time_range",
    "day_bounds",
    "generate_l2_session",
    "load_cme_mbo_as_equity",
    "make_equity",
    "stream_catalog",
    "unix_nanos",
    "write_cme_catalog",
    "write_data_chunked",
    "write_synthetic_catalog",
    "write_synthetic_days",
]
