"""A live TradingNode keeping up with the executions of 10,000 FA client accounts, as ratios in one run.

    uv run python benchmarks/live_fills.py [--accounts 10000] [--instruments 2] [--profile FILE]

A rebalance on a live node (live.node, the IB FA adapter, the strategy) against the fake IB
gateway, every account selling the first instruments and buying the last (benchmarks/
live_fill_session.py), so that each block fills at once as one execution and one commission report
per account. Measured:

1. Executions per second from the socket into the strategy's ledger: the SELL allocations booked,
   from the fake's first execution on the wire to the last booked. The baseline is a bare ib_async
   client taking in the same fill (decoded, its state kept, commission reports matched) against
   the same fake: what the adapter and the strategy add to that is the ratio. The fake's own send
   rate is shown, to show that it is not what bounds either.
2. RECALC to the first BUY sent: from the SELL phase settled (last block closed and allocated) to
   the fake receiving the first BUY order (RECALC, the buy blocks, their FA group written and read
   back). Target: < 200 ms. The baseline is the same session with 10 accounts.

`--profile FILE` writes a cProfile of the large session's node, from its first execution to its
first BUY allocation (read it with `python -m pstats FILE`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from live_fill_session import ib_async_rate, run  # run as a script, benchmarks/ is on the path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--instruments", type=int, default=2, help="2..4: sells in all but the last")
    parser.add_argument("--baseline-accounts", type=int, default=10)
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = run(args.baseline_accounts, tmp / "small", args.instruments)
        if args.profile is not None:
            os.environ["LIVE_FILLS_PROFILE"] = str(args.profile.resolve())
        large = run(args.accounts, tmp / "large", args.instruments)
        os.environ.pop("LIVE_FILLS_PROFILE", None)
        bare = ib_async_rate(args.accounts)
    for r in (small, large):
        if r.child["status"] != "DONE":
            raise SystemExit(f"the {r.accounts}-account session ended {r.child['status']}: {r.child['error']}")
    rate = large.executions_per_sec()
    n = f"{args.accounts:,}"
    print(f"live node, {n} accounts x {args.instruments} instruments, against the fake IB gateway:")
    print(f"  fake gateway, executions put on the wire : {large.fake_sends_per_sec():10,.0f} /s")
    print(f"  bare ib_async client, executions taken in: {bare:10,.0f} /s   (baseline)")
    print(f"  node, SELL allocations booked            : {rate:10,.0f} /s   ratio {rate / bare:.2f}x of ib_async alone")
    small_latency, large_latency = small.recalc_to_first_buy_secs(), large.recalc_to_first_buy_secs()
    print("  RECALC -> first BUY order at the gateway:")
    print(f"    {args.baseline_accounts} accounts : {small_latency * 1e3:8.1f} ms   (baseline)")
    print(
        f"    {n} accounts: {large_latency * 1e3:8.1f} ms   ratio {large_latency / small_latency:.1f}x"
        f"  (target < 200 ms)"
    )
    steps = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in large.first_buy_steps().items())
    print(f"    of which: {steps}")


if __name__ == "__main__":
    main()
