"""The benchmark's datasets: a catalog, its book type, a plan sized against its depth, and when to start.

- `es`: the recorded ESH4 MBO day (../shared/data/cme), replayed as ES.SMART, from the Globex open
  on the evening of 2023-12-25, when the book shows 30 to 70 contracts a level: the blocks of 55 walk
  a level or two. The other MBO samples there hold no session to trade in: the 2023-12-24 file is
  one book snapshot (8,725 orders at one instant) and the ESM4 file spans two seconds.
- `up` / `down`: the synthetic demo ETFs with a trend up or down (`daily_drift`), sells of SPY and QQQ,
  buys of IEF and GLD, each block several times the size at the touch; `flat` the same without a trend.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from data.cme import CME_DATA_DIR, ESH4_MBO_FILE, write_cme_catalog
from data.synthetic import DEFAULT_START, DEMO_ETFS, write_synthetic_catalog


@dataclass(frozen=True)
class Dataset:
    name: str
    catalog: Path
    book_type: str
    plan: dict[str, str]  # file name -> CSV text, as `strategies.plan.load_plan` reads a folder
    start_time: str  # the SELL phase's earliest start, UTC

    def write_plan(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.plan.items():
            (folder / name).write_text(text, encoding="utf-8")
        return folder


ES_PLAN = {
    "accounts.csv": "account_id,cash\nDU1,5000\nDU2,2500\nDU3,160000\nDU4,135000\n",
    "positions.csv": "account_id,instrument,quantity\nDU1,ES,40\nDU2,ES,25\n",
    "requests.csv": (
        "request_id,account_id,instrument,side,quantity\n"
        "s1,DU1,ES,SELL,30\ns2,DU2,ES,SELL,25\nb1,DU3,ES,BUY,30\nb2,DU4,ES,BUY,25\n"
    ),
}

SYNTH_PLAN = {
    "accounts.csv": ("account_id,cash\nDU1,1000\nDU2,1500\nDU3,800\nDU4,420000\nDU5,380000\nDU6,420000\n"),
    "positions.csv": (
        "account_id,instrument,quantity\n"
        "DU1,SPY,1500\nDU1,QQQ,600\nDU2,SPY,1200\nDU2,QQQ,900\nDU3,SPY,600\nDU3,QQQ,500\n"
    ),
    "requests.csv": (
        "request_id,account_id,instrument,side,quantity\n"
        "s1,DU1,SPY,SELL,1400\ns2,DU1,QQQ,SELL,600\ns3,DU2,SPY,SELL,1100\ns4,DU2,QQQ,SELL,800\n"
        "s5,DU3,SPY,SELL,500\ns6,DU3,QQQ,SELL,400\n"
        "b1,DU4,IEF,BUY,4000\nb2,DU5,IEF,BUY,3500\nb3,DU4,GLD,BUY,150\nb4,DU6,GLD,BUY,900\nb5,DU5,GLD,BUY,600\n"
    ),
}


def es_dataset(work: Path, mbo_file: str = ESH4_MBO_FILE) -> Dataset:
    path = CME_DATA_DIR / mbo_file
    if not path.exists():
        raise FileNotFoundError(f"CME sample not found at {path} (it lives in ../shared/data/cme)")
    catalog = work / f"cme-{Path(mbo_file).name.split('.')[0]}"
    write_cme_catalog(path, catalog)
    return Dataset("es", catalog, "L3_MBO", ES_PLAN, "2023-12-25T23:01:00")


def synthetic_dataset(work: Path, name: str, drift: float, minutes: float, seed: int = 7) -> Dataset:
    """The demo ETFs trending by `drift` (a fraction of the price per 6.5 h session) for `minutes`."""
    catalog = work / f"synth-{name}"
    specs = [dataclasses.replace(s, daily_drift=drift) for s in DEMO_ETFS]
    write_synthetic_catalog(catalog, specs, duration=pd.Timedelta(minutes=minutes), seed=seed)
    # a minute for the books to fill out before the first block
    start = (DEFAULT_START + pd.Timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    return Dataset(name, catalog, "L2_MBP", SYNTH_PLAN, start)
