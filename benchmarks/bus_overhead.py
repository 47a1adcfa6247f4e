"""What streaming the executions to Redis (`--bus`) costs a backtest, against the same backtest without it.

    uv run python benchmarks/bus_overhead.py [--minutes 10] [--repeats 3]

Writes the demo's synthetic books (4 ETFs) for `--minutes`, then runs the demo plan over them
`--repeats` times without a bus (the baseline) and with one, alternating, in this process, against
a throwaway redis-server (tests/redis_server.py). Reported: median wall seconds of each, the ratio
bus / baseline, and how many stream entries one session wrote (allocations and the rest), read back
with XLEN so the entries are counted after NautilusTrader has written them all.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import msgspec
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore", category=pd.errors.Pandas4Warning)

from backtests.cli import DEMO_PLAN  # noqa: E402
from backtests.runner import run_catalog_session  # noqa: E402
from data.catalog import catalog_instruments  # noqa: E402
from data.synthetic import write_synthetic_catalog  # noqa: E402
from live.bus import BACKTEST_STREAMS_PREFIX, parse_bus_url, stream_key  # noqa: E402
from strategies.events import ALLOCATION_TOPIC  # noqa: E402
from strategies.exec_config import RebalanceExecutorConfig  # noqa: E402
from strategies.plan import load_plan  # noqa: E402
from tests.redis_server import start_redis  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import redis

    server = start_redis()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            catalog = Path(tmp) / "catalog"
            write_synthetic_catalog(catalog, duration=pd.Timedelta(minutes=args.minutes))
            instruments = catalog_instruments(catalog)
            config = RebalanceExecutorConfig(plan_path=str(DEMO_PLAN), phase_deadline_secs=60)
            plan = load_plan(DEMO_PLAN, {str(i.id) for i in instruments}, config.default_venue)
            bus = parse_bus_url(server.url)
            client = redis.Redis.from_url(server.url)
            times: dict[str, list[float]] = {"baseline": [], "bus": []}
            entries = allocations = 0
            for n in range(args.repeats):
                for mode in ("baseline", "bus"):
                    client.flushdb()
                    out = Path(tmp) / f"{mode}-{n}"
                    run_config = msgspec.structs.replace(config, output_dir=str(out))
                    started = time.perf_counter()
                    run_catalog_session(run_config, plan, catalog, instruments, bus=bus if mode == "bus" else None)
                    times[mode].append(time.perf_counter() - started)
                    if mode == "bus":
                        keys = client.keys("*")
                        entries = sum(client.xlen(k) for k in keys)
                        allocations = client.xlen(
                            stream_key("REBALANCE-001", ALLOCATION_TOPIC, BACKTEST_STREAMS_PREFIX)
                        )
            base, with_bus = statistics.median(times["baseline"]), statistics.median(times["bus"])
            print(f"backtest of the demo plan over {args.minutes:g} min of 4 ETFs, median of {args.repeats}:")
            print(f"  baseline (no bus)  {base:8.2f} s")
            print(f"  --bus (Redis)      {with_bus:8.2f} s   ratio {with_bus / base:.3f}")
            print(f"  stream entries per session: {entries:,} ({allocations:,} allocations)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
