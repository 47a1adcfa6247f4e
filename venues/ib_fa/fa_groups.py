"""Writing the FA allocation groups of block orders: replaceFA, then requestFA to check it took.

replaceFA rewrites the login's whole groups document (see fa_xml), so there is one writer at a
time, and every write starts from the document IB holds now. A write counts only once
replaceFAEnd came back and a fresh requestFA reads the group back with the amounts written.
"""

from __future__ import annotations

import asyncio

from strategies.fa_methods import CONTRACTS_OR_SHARES
from venues.ib_fa import fa_xml
from venues.ib_fa.connection import IBFAConnection
from venues.ib_fa.parsing import is_informational


class AllocationGroupError(RuntimeError):
    """The FA group could not be written or did not read back as written."""


class FAGroupWriter:
    """The FA groups of one login, as the execution client writes and removes them."""

    def __init__(self, connection: IBFAConnection, *, group_prefix: str, request_timeout_secs: float) -> None:
        self._connection = connection
        self._prefix = group_prefix
        self._timeout = request_timeout_secs
        self._lock = asyncio.Lock()  # replaceFA rewrites the whole document: one writer at a time
        self._errors: dict[int, asyncio.Future] = {}

    def on_error(self, req_id, code: int, text: str) -> bool:
        """Take an IB error that answers a replaceFA in flight; False when it is not about one."""
        failed = self._errors.get(req_id)
        if failed is None or failed.done() or is_informational(code):
            return False
        failed.set_result(f"IB error {code}: {text}")
        return True

    async def write_group(self, name: str, targets: dict[str, int], method: str = CONTRACTS_OR_SHARES) -> None:
        """replaceFA the group (allocating by `method`), await replaceFAEnd, and check it reads back as written."""
        ib = self._connection.ib
        timeout = self._timeout
        async with self._lock:
            reading = asyncio.ensure_future(ib.requestFAAsync(fa_xml.FA_GROUPS))
            await asyncio.sleep(0)  # the request goes out: IB writes the document while ours is built
            try:
                written = fa_xml.group_text(name, targets, method)
            finally:
                current = await reading
            if current is None:
                raise AllocationGroupError("requestFA(groups) got no answer")
            xml = fa_xml.upsert_group(current, name, targets, method, written)
            req_id = ib.client.getReqId()
            done = ib.fa_wrapper.expect_replace_fa_end(req_id)
            failed = asyncio.get_running_loop().create_future()
            self._errors[req_id] = failed
            try:
                ib.client.replaceFA(req_id, fa_xml.FA_GROUPS, xml)
                finished, _ = await asyncio.wait({done, failed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._errors.pop(req_id, None)
            if failed in finished:
                raise AllocationGroupError(failed.result())
            if done not in finished:
                raise AllocationGroupError(f"no replaceFAEnd within {timeout}s")
            done.result()  # raises ConnectionError if the session dropped meanwhile
            # IB answers 10230 to a read that comes before the save; one retry covers it.
            for attempt in range(3):
                readback = await ib.requestFAAsync(fa_xml.FA_GROUPS)
                if readback and fa_xml.group_matches(readback, name, targets, method, written):
                    return
                await asyncio.sleep(0.2 * (attempt + 1))
            raise AllocationGroupError(f"group {name} did not read back as written ({method})")

    async def remove_own_groups(self) -> None:
        """Delete the groups this adapter wrote (prefix `fa_group_prefix`); call once no block works.

        Groups are not removed per order: whether IB re-reads a group while its order is still
        working (partial fills, then cancel) is not documented, so a group outlives its order.
        """
        ib = self._connection.ib
        async with self._lock:
            current = await ib.requestFAAsync(fa_xml.FA_GROUPS)
            prefix = self._prefix
            # nothing of ours to remove: writing the advisor's groups back unchanged is a needless FA write
            if not current or not any(name.startswith(prefix) for name in fa_xml.parse_groups_xml(current)):
                return
            xml = fa_xml.remove_groups(current, prefix)
            req_id = ib.client.getReqId()
            done = ib.fa_wrapper.expect_replace_fa_end(req_id)
            ib.client.replaceFA(req_id, fa_xml.FA_GROUPS, xml)
            await asyncio.wait_for(done, self._timeout)


__all__ = ["AllocationGroupError", "FAGroupWriter"]
