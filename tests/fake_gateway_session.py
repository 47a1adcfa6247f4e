"""An ib_async session against a fresh fake gateway, the FA group it installs, and the loop
helpers the wire tests share."""

from __future__ import annotations

import asyncio
import contextlib

from ib_async import IB

from venues.ib_fa.fake_gateway import FakeGateway

GROUP_XML = (
    "<ListOfGroups><Group><name>Rebal</name><defaultMethod>ContractsOrShares</defaultMethod>"
    '<ListOfAccts varName="list">'
    "<Account><acct>DU1001</acct><amount>100.0</amount></Account>"
    "<Account><acct>DU1002</acct><amount>250.0</amount></Account>"
    "<Account><acct>DU1003</acct><amount>50.0</amount></Account>"
    "</ListOfAccts></Group></ListOfGroups>"
)


def run(coro, timeout: float = 20.0):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def until(predicate, timeout: float = 2.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def session(gw: FakeGateway | None = None, client_id: int = 1, **gw_kwargs):
    gw = gw or FakeGateway(**gw_kwargs)
    port = await gw.start()
    ib = IB()
    try:
        await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=5)
        yield gw, ib
    finally:
        ib.disconnect()
        await gw.stop()


async def install_group(ib: IB, gw: FakeGateway) -> None:
    ib.replaceFA(1, GROUP_XML)
    await until(lambda: "Rebal" in gw.broker.fa_groups, what="replaceFA")
