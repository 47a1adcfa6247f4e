"""A short consumer of the executions a session streams with `--bus`: prints every allocation.

    uv run --locked python -m live.bus_consumer --bus redis://127.0.0.1:6379            # follow, from the start
    uv run --locked python -m live.bus_consumer --bus redis://127.0.0.1:6379 --from '$'  # only what comes next
    uv run --locked python -m live.bus_consumer --bus redis://127.0.0.1:6379 --once      # what is there, then exit

It reads the allocations stream with XREAD and a last-id cursor: each read asks for what came
after the last entry it saw, so nothing is skipped or read twice, and a consumer that stops and
starts again with `--from <last id printed>` carries on exactly there. The same loop, with a
Kafka producer where it prints, bridges the stream to Kafka (see the README).

A run that is resumed after a crash streams again the executions IB reports when it reconnects,
and IB may correct an execution under a newer version of its id: an allocation is identified by
its `execution_id`, so this consumer prints each id once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal

from live.bus import (
    BACKTEST_STREAMS_PREFIX,
    STREAMS_PREFIX,
    BusSettingError,
    parse_bus_url,
    stream_allocations,
    stream_key,
)
from strategies.events import ALLOCATION_TOPIC
from strategies.extras import MissingExtraError, require

DEFAULT_TRADER = "REBALANCE-001"
BLOCK_MS = 1000  # how long one XREAD waits for news before asking again
BATCH = 500


def read_after(client, key: str, last_id: str, *, follow: bool, stop: Callable[[], bool] = lambda: False) -> Iterator:
    """(entry id, payload dict) of every entry of `key` after `last_id`, oldest first.

    Without `follow` it ends once the stream holds nothing newer; with it, it waits for more
    until `stop()` says so.
    """
    while not stop():
        batch = client.xread({key: last_id}, count=BATCH, block=BLOCK_MS if follow else None)
        if not batch:
            if follow:
                continue
            return
        for entry_id, fields in batch[0][1]:
            last_id = entry_id
            yield entry_id, json.loads(fields["payload"])


def describe(allocation: dict) -> str:
    """One line per allocation: shares and money exactly as streamed."""
    price, commission = Decimal(allocation["price"]), Decimal(allocation["commission"])
    return (
        f"{allocation['account_id']:<12} {allocation['side']:<4} {allocation['quantity']:>10,} "
        f"{allocation['instrument_id']:<14} @ {price} fee {commission} USD  "
        f"block {allocation['client_order_id']} exec {allocation['execution_id']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m live.bus_consumer", description=__doc__.splitlines()[0])
    parser.add_argument("--bus", required=True, help="the session's --bus address, e.g. redis://127.0.0.1:6379")
    parser.add_argument("--trader", default=DEFAULT_TRADER, help=f"the node's trader id ({DEFAULT_TRADER})")
    parser.add_argument("--backtest", action="store_true", help="read the backtests' streams, not the live ones")
    parser.add_argument("--from", dest="start", default="0-0", help="last entry id already seen ('$': only new)")
    parser.add_argument("--once", action="store_true", help="print what is in the stream now, then exit")
    args = parser.parse_args(argv)
    try:
        settings = parse_bus_url(args.bus)
        redis = require("redis", "bus", "reading the bus")
    except (BusSettingError, MissingExtraError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    client = redis.Redis(
        host=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password,
        ssl=settings.ssl,
        decode_responses=True,
    )
    key = stream_key(args.trader, ALLOCATION_TOPIC, BACKTEST_STREAMS_PREFIX if args.backtest else STREAMS_PREFIX)
    start = args.start
    if start == "$":
        # "$" means "after the newest entry" only at the moment of each read: pin it once
        newest = client.xrevrange(key, count=1)
        start = newest[0][0] if newest else "0-0"
    seen: set[str] = set()
    try:
        for entry_id, payload in read_after(client, key, start, follow=not args.once):
            for allocation in stream_allocations(payload):
                if allocation["execution_id"] in seen:
                    continue
                seen.add(allocation["execution_id"])
                print(f"{entry_id}  {describe(allocation)}", flush=True)
    except KeyboardInterrupt:
        pass
    except redis.exceptions.RedisError as exc:
        print(f"error: the bus {settings.shown}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
