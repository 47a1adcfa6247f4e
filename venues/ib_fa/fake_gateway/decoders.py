"""Client -> server messages at server version 178, read as ib_async 2.1.0's client writes them.

`decode_request` turns one message's fields into a `Request`: its name (the session's handler is
`on_<name>`) and its parameters. codecs.py writes the other way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .codecs import UNSET_DOUBLE_STR
from .model import ContractSpec, OrderRequest

log = logging.getLogger(__name__)


@dataclass
class Request:
    msg_id: int
    name: str
    params: dict = field(default_factory=dict)


class _Cursor:
    def __init__(self, fields: list[str], start: int = 1) -> None:
        self.fields = fields
        self.i = start

    def next(self) -> str:
        if self.i >= len(self.fields):
            raise ValueError(f"message ended after {len(self.fields)} fields")
        v = self.fields[self.i]
        self.i += 1
        return v

    def skip(self, n: int) -> None:
        for _ in range(n):
            self.next()

    def rest(self) -> list[str]:
        return self.fields[self.i :]


def _float(s: str) -> float | None:
    if s in ("", UNSET_DOUBLE_STR) or s.upper().startswith("1.7976931348623157E+308"):
        return None
    v = float(s)
    return None if v >= 1.7e308 else v


def _int(s: str, default: int = 0) -> int:
    if s == "":
        return default
    return int(float(s))


def _bool(s: str) -> bool:
    return s not in ("", "0", "False", "false")


def _contract_12(cur: _Cursor) -> ContractSpec:
    return ContractSpec(
        con_id=_int(cur.next()),
        symbol=cur.next(),
        sec_type=cur.next(),
        last_trade=cur.next(),
        strike=_float(cur.next()) or 0.0,
        right=cur.next(),
        multiplier=cur.next(),
        exchange=cur.next(),
        primary_exchange=cur.next(),
        currency=cur.next(),
        local_symbol=cur.next(),
        trading_class=cur.next(),
    )


def decode_place_order(fields: list[str]) -> OrderRequest:
    """Walk ib_async's placeOrder layout at v178 (no faProfile), including its conditional blocks."""
    cur = _Cursor(fields)
    order_id = _int(cur.next())
    contract = _contract_12(cur)
    cur.skip(2)  # secIdType, secId
    action, qty, order_type = cur.next(), _float(cur.next()) or 0.0, cur.next()
    lmt, aux, tif = _float(cur.next()), _float(cur.next()), cur.next()
    oca_group, account, open_close = cur.next(), cur.next(), cur.next()
    origin, order_ref, transmit = _int(cur.next()), cur.next(), _bool(cur.next())
    parent_id = _int(cur.next())
    cur.skip(4)  # blockOrder, sweepToFill, displaySize, triggerMethod
    outside_rth = _bool(cur.next())
    cur.skip(1)  # hidden
    if contract.sec_type == "BAG":
        cur.skip(8 * _int(cur.next()))
        cur.skip(_int(cur.next()))
        cur.skip(2 * _int(cur.next()))
    cur.skip(2)  # deprecated sharesAllocation, discretionaryAmt
    good_after, good_till = cur.next(), cur.next()
    fa_group, fa_method, fa_pct, model_code = cur.next(), cur.next(), cur.next(), cur.next()
    cur.skip(3)  # shortSaleSlot, designatedLocation, exemptCode
    oca_type = _int(cur.next())
    cur.skip(17)  # rule80A .. volatilityType
    dn_type = cur.next()
    cur.skip(1)
    if dn_type:
        cur.skip(8)
    cur.skip(2)  # continuousUpdate, referencePriceType
    trail_stop, trailing_pct = _float(cur.next()), _float(cur.next())
    cur.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
    increment = _float(cur.next())
    if increment is not None and increment > 0:
        cur.skip(7)
    cur.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if cur.next():  # hedgeType
        cur.skip(1)
    cur.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if _bool(cur.next()):
        cur.skip(3)
    algo = cur.next()
    algo_params: list[tuple[str, str]] = []
    if algo:
        for _ in range(_int(cur.next())):
            algo_params.append((cur.next(), cur.next()))
    cur.skip(1)  # algoId
    what_if = _bool(cur.next())
    cur.skip(4)  # orderMiscOptions, solicited, randomizeSize, randomizePrice
    if order_type in ("PEG BENCH", "PEGBENCH"):
        cur.skip(5)
    lmt_offset = None
    if _int(cur.next()) == 0:  # no conditions (the adapter sends none); else their layout varies
        cur.skip(2)  # adjustedOrderType, triggerPrice
        lmt_offset = _float(cur.next())
    return OrderRequest(
        order_id=order_id,
        contract=contract,
        action=action,
        total_quantity=qty,
        order_type=order_type,
        lmt_price=lmt,
        aux_price=aux,
        tif=tif or "DAY",
        oca_group=oca_group,
        account=account,
        open_close=open_close,
        origin=origin,
        order_ref=order_ref,
        transmit=transmit,
        parent_id=parent_id,
        outside_rth=outside_rth,
        good_after_time=good_after,
        good_till_date=good_till,
        fa_group=fa_group,
        fa_method=fa_method,
        fa_percentage=fa_pct,
        model_code=model_code,
        what_if=what_if,
        oca_type=oca_type,
        trail_stop_price=trail_stop,
        trailing_percent=trailing_pct,
        lmt_price_offset=lmt_offset,
        algo_strategy=algo,
        algo_params=tuple(algo_params),
    )


def _simple(name: str, *keys: str, skip_version: bool = True):
    def dec(fields: list[str]) -> dict:
        cur = _Cursor(fields, 2 if skip_version else 1)
        return {k: cur.next() for k in keys}

    dec.__name__ = name
    return dec


def _dec_mkt_data(fields: list[str]) -> dict:
    cur = _Cursor(fields, 2)
    req_id = _int(cur.next())
    contract = _contract_12(cur)
    if contract.sec_type == "BAG":
        cur.skip(4 * _int(cur.next()))
    if _bool(cur.next()):
        cur.skip(3)
    return {
        "reqId": req_id,
        "contract": contract,
        "genericTickList": cur.next(),
        "snapshot": _bool(cur.next()),
        "regulatorySnapshot": _bool(cur.next()),
    }


def _dec_contract_details(fields: list[str]) -> dict:
    cur = _Cursor(fields, 2)
    return {"reqId": _int(cur.next()), "contract": _contract_12(cur)}


def _dec_mkt_depth(fields: list[str]) -> dict:
    cur = _Cursor(fields, 2)
    req_id = _int(cur.next())
    c = _contract_12(cur)
    return {"reqId": req_id, "contract": c, "numRows": _int(cur.next(), 5), "isSmartDepth": _bool(cur.next())}


def _dec_exec_filter(fields: list[str]) -> dict:
    cur = _Cursor(fields, 2)
    keys = ("reqId", "clientId", "acctCode", "time", "symbol", "secType", "exchange", "side")
    out = {k: cur.next() for k in keys}
    out["reqId"] = _int(out["reqId"])
    out["clientId"] = _int(out["clientId"])
    return out


def _dec_place_order(fields: list[str]) -> dict:
    return {"order": decode_place_order(fields)}


def _dec_completed(fields: list[str]) -> dict:
    return {"apiOnly": _bool(fields[1]) if len(fields) > 1 else False}


_DECODERS = {
    1: ("reqMktData", _dec_mkt_data),
    2: ("cancelMktData", _simple("cancelMktData", "reqId")),
    3: ("placeOrder", _dec_place_order),
    4: ("cancelOrder", _simple("cancelOrder", "orderId", "manualCancelOrderTime")),
    5: ("reqOpenOrders", _simple("reqOpenOrders")),
    6: ("reqAccountUpdates", _simple("reqAccountUpdates", "subscribe", "acctCode")),
    7: ("reqExecutions", _dec_exec_filter),
    8: ("reqIds", _simple("reqIds", "numIds")),
    9: ("reqContractDetails", _dec_contract_details),
    10: ("reqMktDepth", _dec_mkt_depth),
    11: ("cancelMktDepth", _simple("cancelMktDepth", "reqId", "isSmartDepth")),
    15: ("reqAutoOpenOrders", _simple("reqAutoOpenOrders", "autoBind")),
    16: ("reqAllOpenOrders", _simple("reqAllOpenOrders")),
    17: ("reqManagedAccts", _simple("reqManagedAccts")),
    18: ("requestFA", _simple("requestFA", "faDataType")),
    19: ("replaceFA", _simple("replaceFA", "faDataType", "xml", "reqId")),
    49: ("reqCurrentTime", _simple("reqCurrentTime")),
    58: ("reqGlobalCancel", _simple("reqGlobalCancel")),
    59: ("reqMarketDataType", _simple("reqMarketDataType", "marketDataType")),
    61: ("reqPositions", _simple("reqPositions")),
    62: ("reqAccountSummary", _simple("reqAccountSummary", "reqId", "groupName", "tags")),
    63: ("cancelAccountSummary", _simple("cancelAccountSummary", "reqId")),
    64: ("cancelPositions", _simple("cancelPositions")),
    71: ("startApi", _simple("startApi", "clientId", "optionalCapabilities")),
    74: ("reqPositionsMulti", _simple("reqPositionsMulti", "reqId", "account", "modelCode")),
    75: ("cancelPositionsMulti", _simple("cancelPositionsMulti", "reqId")),
    76: (
        "reqAccountUpdatesMulti",
        _simple("reqAccountUpdatesMulti", "reqId", "account", "modelCode", "ledgerAndNLV"),
    ),
    77: ("cancelAccountUpdatesMulti", _simple("cancelAccountUpdatesMulti", "reqId")),
    99: ("reqCompletedOrders", _dec_completed),
}


def decode_request(fields: list[str]) -> Request | None:
    """Decode one client message; unknown or malformed messages are logged and give None."""
    try:
        msg_id = int(fields[0])
    except (IndexError, ValueError):
        log.warning("unparseable message %r", fields)
        return None
    entry = _DECODERS.get(msg_id)
    if entry is None:
        log.info("ignoring unsupported message id %s: %r", msg_id, fields)
        return Request(msg_id, "unknown", {"fields": fields})
    name, dec = entry
    try:
        params = dec(fields)
    except (ValueError, IndexError):
        log.warning("malformed %s message %r", name, fields, exc_info=True)
        return None
    for k in ("reqId", "orderId", "numIds", "faDataType", "marketDataType", "clientId"):
        if k in params and isinstance(params[k], str):
            params[k] = _int(params[k])
    return Request(msg_id, name, params)
