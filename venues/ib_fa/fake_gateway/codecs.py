"""Server -> client messages at server version 178, laid out as ib_async 2.1.0's decoder reads them.

Each encoder returns the field list of one message (framing adds the length prefix). Field
counts are exact where ib_async unpacks a fixed tuple: a wrong count there does not fail loudly,
the client logs "Error handling fields" and drops the message. decoders.py reads the other way.
"""

from __future__ import annotations

from .model import CommissionView, ContractDetailsView, ContractSpec, ExecutionView, OrderRequest, OrderView

UNSET_DOUBLE_STR = "1.7976931348623157E308"


def num(x: float | int | None) -> str:
    """Numbers as TWS writes them: integral values without a fraction, None as empty."""
    if x is None:
        return ""
    if isinstance(x, bool):
        return "1" if x else "0"
    if isinstance(x, int):
        return str(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


def _contract_11(c: ContractSpec, exchange: str | None = None) -> list[str]:
    """conId..tradingClass without primaryExchange, the layout of openOrder/execDetails/position."""
    return [
        str(c.con_id),
        c.symbol,
        c.sec_type,
        c.last_trade,
        num(c.strike),
        c.right,
        c.multiplier,
        c.exchange if exchange is None else exchange,
        c.currency,
        c.local_symbol,
        c.trading_class,
    ]


def managed_accounts(accounts: list[str]) -> list[str]:
    return ["15", "1", ",".join(accounts)]


def next_valid_id(order_id: int) -> list[str]:
    return ["9", "1", str(order_id)]


def error(req_id: int, code: int, text: str, advanced_json: str = "") -> list[str]:
    # advancedOrderRejectJson is mandatory from server version 166 on
    return ["4", "2", str(req_id), str(code), text, advanced_json]


def order_status(v: OrderView) -> list[str]:
    r = v.request
    return [
        "3",
        str(r.order_id),
        v.status,
        num(v.filled),
        num(v.remaining),
        num(v.avg_fill_price),
        str(v.perm_id),
        str(r.parent_id),
        num(v.last_fill_price),
        str(r.client_id),
        "",
        "",
    ]


def _order_core(r: OrderRequest) -> list[str]:
    return [
        r.action,
        num(r.total_quantity),
        r.order_type,
        num(r.lmt_price),
        num(r.aux_price),
        r.tif,
        r.oca_group,
        r.account,
        r.open_close,
        str(r.origin),
        r.order_ref,
    ]


def open_order(v: OrderView) -> list[str]:
    r = v.request
    m = v.margins
    f = ["5", str(r.order_id), *_contract_11(r.contract), *_order_core(r)]
    f += [str(r.client_id), str(v.perm_id), num(r.outside_rth), "0", "", r.good_after_time, ""]
    f += [r.fa_group, r.fa_method, r.fa_percentage]  # no faProfile from 177 on
    f += [r.model_code, r.good_till_date, "", "", "", "0", "", "", "0"]
    f += ["", "", "", "", "", "", "0", "0", "0", "", "0", "0", "0", "", "0", "0", "", "0"]
    f += ["", ""]  # deltaNeutralOrderType empty: the 8 delta-neutral fields are then absent
    trail = [num(v.trail_stop_price), num(r.trailing_percent)]
    f += ["0", "0", *trail, "", "", ""]  # continuousUpdate .. comboLegsDescrip
    f += ["0", "0", "0"]  # combo legs, order combo legs, smart combo params
    f += ["", "", ""]  # scale sizes and an unset increment (no 7 scale fields)
    f += [""]  # hedgeType empty: no hedgeParam
    f += ["0", "", "", "0", "0"]  # optOutSmartRouting, clearing, notHeld, no delta-neutral contract
    f += [""]  # algoStrategy empty: no params
    f += ["0", num(r.what_if), v.status]
    for key in (
        "initMarginBefore",
        "maintMarginBefore",
        "equityWithLoanBefore",
        "initMarginChange",
        "maintMarginChange",
        "equityWithLoanChange",
        "initMarginAfter",
        "maintMarginAfter",
        "equityWithLoanAfter",
    ):
        f.append(m.get(key, UNSET_DOUBLE_STR))
    f += [m.get("commission", UNSET_DOUBLE_STR), UNSET_DOUBLE_STR, UNSET_DOUBLE_STR, "USD", ""]
    f += ["0", "0"]  # randomizeSize, randomizePrice
    f += ["0"]  # no conditions
    # adjustedOrderType, triggerPrice, trailStopPrice (ib_async keeps this one), lmtPriceOffset, ...
    f += [
        "None",
        "",
        num(v.trail_stop_price),
        num(r.lmt_price_offset),
        "",
        "",
        "",
        "0",
        "",
        "",
        "",
        "",
        "0",
        "0",
        "",
        "0",
    ]
    f += ["", "0", "0"]  # duration, postToAts, autoCancelParent
    f += ["", "", "", "", ""]  # minTradeQty .. midOffsetAtHalf
    return f


def open_order_end() -> list[str]:
    return ["53", "1"]


def completed_order(v: OrderView) -> list[str]:
    r = v.request
    f = ["101", *_contract_11(r.contract), *_order_core(r)]
    f += [str(v.perm_id), num(r.outside_rth), "0", "", r.good_after_time]
    f += [r.fa_group, r.fa_method, r.fa_percentage]
    f += [r.model_code, r.good_till_date, "", "", "", "0", "", ""]
    f += ["", "", "", "", "", "0", "0", "0", "", "0", "0", "", "0"]
    f += ["", ""]  # deltaNeutralOrderType empty
    f += ["0", "0", "", "", ""]  # continuousUpdate .. comboLegsDescrip
    f += ["0", "0", "0"]
    f += ["", "", ""]
    f += [""]  # hedgeType
    f += ["", "", "0", "0"]  # clearingAccount, clearingIntent, notHeld, no delta-neutral contract
    f += [""]  # algoStrategy
    f += ["0", v.status, "0", "0"]
    f += ["0"]  # no conditions
    f += ["", "", "", "0", "0", "", num(v.filled), "0", "0", "", "0", "0", "0"]
    f += [v.completed_time, v.completed_status]
    f += ["", "", "", "", ""]
    return f


def completed_orders_end() -> list[str]:
    return ["102"]


def exec_details(req_id: int, e: ExecutionView) -> list[str]:
    return [
        "11",
        str(req_id),
        str(e.order_id),
        *_contract_11(e.contract, exchange=e.exchange),
        e.exec_id,
        e.time,
        e.account,
        e.exchange,
        e.side,
        num(e.shares),
        num(e.price),
        str(e.perm_id),
        str(e.client_id),
        "0",
        num(e.cum_qty),
        num(e.avg_price),
        e.order_ref,
        "",
        "",
        e.model_code,
        str(e.liquidity),
        "0",  # last one: pendingPriceRevision (178)
    ]


def exec_details_end(req_id: int) -> list[str]:
    return ["55", "1", str(req_id)]


def commission_report(c: CommissionView) -> list[str]:
    pnl = UNSET_DOUBLE_STR if c.realized_pnl is None else num(c.realized_pnl)
    return ["59", "1", c.exec_id, num(c.commission), c.currency, pnl, UNSET_DOUBLE_STR, ""]


def position(account: str, c: ContractSpec, pos: float, avg_cost: float) -> list[str]:
    return ["61", "3", account, *_contract_11(c, exchange=c.primary_exchange), num(pos), num(avg_cost)]


def position_end() -> list[str]:
    return ["62", "1"]


def position_multi(
    req_id: int, account: str, c: ContractSpec, pos: float, avg_cost: float, model_code: str = ""
) -> list[str]:
    return [
        "71",
        "1",
        str(req_id),
        account,
        *_contract_11(c, exchange=c.primary_exchange),
        num(pos),
        num(avg_cost),
        model_code,
    ]


def position_multi_end(req_id: int) -> list[str]:
    return ["72", "1", str(req_id)]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> list[str]:
    return ["63", "1", str(req_id), account, tag, value, currency]


def account_summary_end(req_id: int) -> list[str]:
    return ["64", "1", str(req_id)]


def account_update_multi(req_id: int, account: str, model_code: str, key: str, value: str, currency: str) -> list[str]:
    return ["73", "1", str(req_id), account, model_code, key, value, currency]


def account_update_multi_end(req_id: int) -> list[str]:
    return ["74", "1", str(req_id)]


def update_account_value(key: str, value: str, currency: str, account: str) -> list[str]:
    return ["6", "2", key, value, currency, account]


def account_download_end(account: str) -> list[str]:
    return ["54", "1", account]


def update_mkt_depth(req_id: int, position: int, operation: int, side: int, price: float, size: float) -> list[str]:
    return ["12", "1", str(req_id), str(position), str(operation), str(side), num(price), num(size)]


def update_mkt_depth_l2(
    req_id: int,
    position: int,
    market_maker: str,
    operation: int,
    side: int,
    price: float,
    size: float,
    is_smart: bool,
) -> list[str]:
    return [
        "13",
        "1",
        str(req_id),
        str(position),
        market_maker,
        str(operation),
        str(side),
        num(price),
        num(size),
        num(is_smart),
    ]


def tick_price(req_id: int, tick_type: int, price: float, size: float, attr_mask: int = 0) -> list[str]:
    return ["1", "6", str(req_id), str(tick_type), num(price), num(size), str(attr_mask)]


def tick_size(req_id: int, tick_type: int, size: float) -> list[str]:
    return ["2", "6", str(req_id), str(tick_type), num(size)]


def tick_snapshot_end(req_id: int) -> list[str]:
    return ["57", "1", str(req_id)]


def market_data_type(req_id: int, data_type: int) -> list[str]:
    return ["58", "1", str(req_id), str(data_type)]


def contract_details(req_id: int, d: ContractDetailsView) -> list[str]:
    c = d.contract
    # no version field and no mdSizeMultiplier from server version 164 on
    return [
        "10",
        str(req_id),
        c.symbol,
        c.sec_type,
        c.last_trade,
        num(c.strike),
        c.right,
        c.exchange,
        c.currency,
        c.local_symbol or c.symbol,
        "NMS",
        c.trading_class or c.symbol,
        str(c.con_id),
        num(d.min_tick),
        c.multiplier,
        d.order_types,
        d.valid_exchanges,
        "1",
        "0",
        d.long_name,
        c.primary_exchange,
        "",
        "",
        "",
        "",
        d.time_zone_id,
        "",
        "",
        "",
        "",
        "0",  # no secIds
        "1",
        "",
        "",
        "26",
        "",
        d.stock_type,
        "1",
        "1",
        "1",
    ]


def contract_details_end(req_id: int) -> list[str]:
    return ["52", "1", str(req_id)]


def receive_fa(fa_data_type: int, xml: str) -> list[str]:
    return ["16", "1", str(fa_data_type), xml]


def replace_fa_end(req_id: int, text: str) -> list[str]:
    return ["103", str(req_id), text]


def current_time(epoch_seconds: int) -> list[str]:
    return ["49", "1", str(epoch_seconds)]
