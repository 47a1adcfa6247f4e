"""IB FA adapter: pure parts (FA group XML, order/status/error mappings, config, times)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nautilus_trader.common.component import TestClock
from nautilus_trader.common.factories import OrderFactory
from nautilus_trader.model.enums import OrderSide, TimeInForce
from nautilus_trader.model.identifiers import InstrumentId, StrategyId, TraderId
from nautilus_trader.model.objects import Price, Quantity

from strategies.events import AllocationGroup
from venues.ib_fa import fa_xml
from venues.ib_fa.config import (
    DEFAULT_PORT,
    IBFAConnectionConfig,
    IBFADataClientConfig,
    IBFAExecClientConfig,
    resolve_connection,
)
from venues.ib_fa.connection import MissingAccountsError, NotFAMasterError, check_fa_master, check_plan_accounts
from venues.ib_fa.order_types import format_good_till, to_ib_order
from venues.ib_fa.parsing import (
    OrderEventKind as K,
)
from venues.ib_fa.parsing import (
    Pending,
    event_for_error,
    event_for_status,
    ib_time_to_ns,
    is_informational,
    liquidity_side,
    order_status_from_ib,
    side_from_ib,
)

SPY = InstrumentId.from_str("SPY.SMART")


# -- FA XML -----------------------------------------------------------------------------------------


def test_group_xml_round_trip():
    group = AllocationGroup("RB-20250102-S-SPY", "SPY.SMART", "SELL", {"DU1001": 300, "DU1002": 150, "DU1003": 1})
    name, xml = fa_xml.build_group_xml(group)
    assert name == "RB20250102SSPY"
    assert fa_xml.parse_groups_xml(xml) == {
        name: {"DU1001": Decimal(300), "DU1002": Decimal(150), "DU1003": Decimal(1)}
    }
    assert fa_xml.group_methods(xml) == {name: "ContractsOrShares"}
    assert fa_xml.group_matches(xml, name, group.targets)
    assert not fa_xml.group_matches(xml, name, {**group.targets, "DU1003": 2})


def test_an_equal_quantity_group_lists_its_accounts_in_order_and_no_amounts():
    targets = {"DU1001": 34, "DU1002": 33, "DU1003": 33}
    group = AllocationGroup("RB-20250102-B-SPY", "SPY.SMART", "BUY", targets, "EqualQuantity")
    name, xml = fa_xml.build_group_xml(group)
    assert "<amount>" not in xml and "<defaultMethod>EqualQuantity</defaultMethod>" in xml
    assert fa_xml.group_matches(xml, name, targets, "EqualQuantity")
    # the extra share goes to the account first in the group, so the order is part of the group
    assert not fa_xml.group_matches(xml, name, {"DU1002": 34, "DU1001": 33, "DU1003": 33}, "EqualQuantity")
    assert not fa_xml.group_matches(xml, name, targets)  # not ContractsOrShares
    # TWS writes the method back by its short name
    assert fa_xml.group_matches(xml.replace(">EqualQuantity<", ">Equal<"), name, targets, "EqualQuantity")


def test_group_names_are_safe_short_and_distinct():
    long_a = "RB-20250102-B-" + "X" * 40 + "A"
    long_b = "RB-20250102-B-" + "X" * 40 + "B"
    a, b = fa_xml.group_name(long_a), fa_xml.group_name(long_b)
    assert a != b
    for name in (a, b, fa_xml.group_name("RB-2025/01:02 S BRK B")):
        assert len(name) <= fa_xml.MAX_GROUP_NAME_LEN
        assert name.replace("_", "").isalnum()
    assert fa_xml.group_name(long_a) == a  # deterministic across restarts


def test_upsert_keeps_the_advisors_own_groups():
    existing = fa_xml.build_groups_xml({"Family": {"DU1": 10}, "RB20250102SSPY": {"DU2": 5}})
    xml = fa_xml.upsert_group(existing, "RB20250102SSPY", {"DU2": 7, "DU3": 1})
    groups = fa_xml.parse_groups_xml(xml)
    assert groups["Family"] == {"DU1": Decimal(10)}
    assert groups["RB20250102SSPY"] == {"DU2": Decimal(7), "DU3": Decimal(1)}
    assert "Family" in fa_xml.parse_groups_xml(fa_xml.remove_groups(xml, "RB"))
    assert "RB20250102SSPY" not in fa_xml.parse_groups_xml(fa_xml.remove_groups(xml, "RB"))
    assert fa_xml.parse_groups_xml("") == {}


def test_group_refuses_non_positive_amounts():
    with pytest.raises(ValueError):
        fa_xml.build_groups_xml({"G": {"DU1": 0}})


def test_parse_ib_written_xml_with_decimal_amounts():
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><ListOfGroups><Group><name>G1</name><defaultMethod>ContractsOrShares'
        '</defaultMethod><ListOfAccts varName="list"><Account><acct>DU1</acct><amount>12.0</amount></Account>'
        "</ListOfAccts></Group></ListOfGroups>"
    )
    assert fa_xml.parse_groups_xml(xml) == {"G1": {"DU1": Decimal(12)}}
    assert fa_xml.group_matches(xml, "G1", {"DU1": 12})


# -- orders -----------------------------------------------------------------------------------------


@pytest.fixture
def factory():
    return OrderFactory(TraderId("TESTER-001"), StrategyId("S-001"), TestClock())


EXPIRE = pd.Timestamp("2025-01-02 20:59:00", tz="UTC")


@pytest.mark.parametrize(
    "make, ib_type, lmt, aux",
    [
        (lambda f: f.limit(SPY, OrderSide.BUY, Quantity.from_int(10), Price.from_str("500.05")), "LMT", 500.05, None),
        (lambda f: f.market(SPY, OrderSide.SELL, Quantity.from_int(10)), "MKT", None, None),
        (
            lambda f: f.stop_market(SPY, OrderSide.SELL, Quantity.from_int(10), Price.from_str("490.00")),
            "STP",
            None,
            490.0,
        ),
        (
            lambda f: f.stop_limit(
                SPY, OrderSide.BUY, Quantity.from_int(10), Price.from_str("501.00"), Price.from_str("500.50")
            ),
            "STP LMT",
            501.0,
            500.5,
        ),
    ],
)
def test_order_types(factory, make, ib_type, lmt, aux):
    order = make(factory)
    ib = to_ib_order(order, fa_group="G1")
    assert ib.orderType == ib_type
    assert ib.action == ("BUY" if order.side == OrderSide.BUY else "SELL")
    assert ib.totalQuantity == 10
    assert ib.faGroup == "G1" and ib.account == ""
    assert ib.orderRef == order.client_order_id.value
    if lmt is not None:
        assert ib.lmtPrice == lmt
    if aux is not None:
        assert ib.auxPrice == aux


@pytest.mark.parametrize(
    "tif, ib_tif",
    [
        (TimeInForce.DAY, "DAY"),
        (TimeInForce.GTC, "GTC"),
        (TimeInForce.IOC, "IOC"),
        (TimeInForce.FOK, "FOK"),
    ],
)
def test_time_in_force(factory, tif, ib_tif):
    order = factory.limit(SPY, OrderSide.BUY, Quantity.from_int(1), Price.from_str("1.00"), time_in_force=tif)
    assert to_ib_order(order, fa_group="G").tif == ib_tif


def test_gtd_has_an_explicit_zone(factory):
    order = factory.limit(
        SPY,
        OrderSide.BUY,
        Quantity.from_int(1),
        Price.from_str("1.00"),
        time_in_force=TimeInForce.GTD,
        expire_time=EXPIRE,
    )
    ib = to_ib_order(order, fa_group="G")
    assert ib.tif == "GTD"
    assert ib.goodTillDate == "20250102 20:59:00 UTC"
    assert ib_time_to_ns(ib.goodTillDate) == EXPIRE.value
    assert format_good_till(EXPIRE.value) == "20250102 20:59:00 UTC"


@pytest.mark.parametrize(
    ("past_the_second_ns", "shown"),
    [(0, "20:59:00"), (1, "20:59:01"), (400_000_000, "20:59:01"), (999_999_999, "20:59:01")],
)
def test_a_good_till_time_between_seconds_is_rounded_up_so_ib_never_expires_a_block_early(past_the_second_ns, shown):
    deadline = EXPIRE.value + past_the_second_ns
    text = format_good_till(deadline)
    assert text == f"20250102 {shown} UTC"
    assert ib_time_to_ns(text) >= deadline


def test_order_without_group_or_with_unsupported_tif_is_refused(factory):
    order = factory.limit(SPY, OrderSide.BUY, Quantity.from_int(1), Price.from_str("1.00"))
    with pytest.raises(ValueError, match="allocation group"):
        to_ib_order(order, fa_group="")
    order = factory.limit(
        SPY, OrderSide.BUY, Quantity.from_int(1), Price.from_str("1.00"), time_in_force=TimeInForce.AT_THE_CLOSE
    )
    with pytest.raises(ValueError, match="time in force"):
        to_ib_order(order, fa_group="G")


# -- statuses and errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, filled, remaining, accepted, expired, expected",
    [
        ("PendingSubmit", 0, 10, False, False, K.NONE),
        ("ApiPending", 0, 10, False, False, K.NONE),
        ("PreSubmitted", 0, 10, False, False, K.ACCEPTED),
        ("Submitted", 0, 10, False, False, K.ACCEPTED),
        ("Submitted", 0, 10, True, False, K.NONE),
        ("Submitted", 4, 6, True, False, K.PARTIALLY_FILLED),
        ("Filled", 10, 0, True, False, K.FILLED),
        ("PendingCancel", 0, 10, True, False, K.NONE),
        ("Cancelled", 4, 6, True, False, K.CANCELED),
        ("ApiCancelled", 0, 10, False, False, K.CANCELED),
        ("Cancelled", 0, 10, True, True, K.EXPIRED),
        ("Inactive", 0, 10, False, False, K.REJECTED),
        ("Inactive", 0, 10, True, False, K.CANCELED),
        ("ValidationError", 0, 10, True, False, K.NONE),
    ],
)
def test_status_mapping(status, filled, remaining, accepted, expired, expected):
    assert event_for_status(status, filled, remaining, accepted=accepted, expired=expired) == expected


@pytest.mark.parametrize(
    "code, pending, accepted, expected",
    [
        (201, Pending.SUBMIT, False, K.REJECTED),
        (103, Pending.SUBMIT, False, K.REJECTED),
        (321, Pending.SUBMIT, False, K.REJECTED),
        (391, Pending.SUBMIT, False, K.REJECTED),
        (110, Pending.SUBMIT, False, K.REJECTED),
        (201, Pending.MODIFY, True, K.MODIFY_REJECTED),
        (321, Pending.MODIFY, True, K.MODIFY_REJECTED),
        (104, Pending.MODIFY, True, K.MODIFY_REJECTED),
        (105, Pending.MODIFY, True, K.MODIFY_REJECTED),
        (202, Pending.CANCEL, True, K.CANCELED),
        (202, Pending.NONE, True, K.CANCELED),
        (10147, Pending.CANCEL, True, K.CANCEL_REJECTED),
        (161, Pending.CANCEL, True, K.CANCEL_REJECTED),
        (10148, Pending.NONE, True, K.NONE),
        (1100, Pending.NONE, True, K.NONE),
        (9999, Pending.NONE, True, K.NONE),
    ],
)
def test_error_mapping(code, pending, accepted, expected):
    assert event_for_error(code, pending, accepted=accepted) == expected


@pytest.mark.parametrize("code", [2104, 2106, 2107, 2108, 2158, 10349, 399, 404, 2100, 2150, 10167])
@pytest.mark.parametrize("pending", list(Pending))
@pytest.mark.parametrize("accepted", [False, True])
def test_informational_codes_never_end_an_order(code, pending, accepted):
    assert is_informational(code)
    assert event_for_error(code, pending, accepted=accepted) == K.NONE


def test_sides_and_times():
    assert side_from_ib("BOT") == OrderSide.BUY and side_from_ib("SLD") == OrderSide.SELL
    assert side_from_ib("BUY") == OrderSide.BUY and side_from_ib("SELL") == OrderSide.SELL
    with pytest.raises(ValueError):
        side_from_ib("XXX")
    utc = pd.Timestamp("2025-01-02 20:59:00", tz="UTC").value
    assert ib_time_to_ns("20250102 15:59:00 US/Eastern") == utc
    assert ib_time_to_ns("20250102 15:59:00 America/New_York") == utc
    assert ib_time_to_ns("20250102-20:59:00") == utc
    assert ib_time_to_ns("20250102 20:59:00 UTC") == utc
    assert ib_time_to_ns(datetime(2025, 1, 2, 20, 59, tzinfo=UTC)) == utc
    assert ib_time_to_ns("1735851540") == utc


# -- config and connection checks -------------------------------------------------------------------------


def test_env_fallbacks(monkeypatch):
    for var in ("IB_HOST", "IB_PORT", "IB_CLIENT_ID", "IB_FA_MASTER"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="IB_FA_MASTER"):
        resolve_connection(IBFAConnectionConfig())
    s = resolve_connection(IBFAConnectionConfig(fa_master_account="DF1"))
    assert (s.host, s.port, s.client_id) == ("127.0.0.1", DEFAULT_PORT, 1)
    assert DEFAULT_PORT == 4002
    monkeypatch.setenv("IB_HOST", "gw.internal")
    monkeypatch.setenv("IB_PORT", "4001")
    monkeypatch.setenv("IB_CLIENT_ID", "17")
    monkeypatch.setenv("IB_FA_MASTER", "F123")
    s = resolve_connection(IBFADataClientConfig().connection)
    assert (s.host, s.port, s.client_id, s.fa_master_account) == ("gw.internal", 4001, 17, "F123")
    s = resolve_connection(IBFAConnectionConfig(host="h", port=7497, client_id=0, fa_master_account="DF9"))
    assert (s.host, s.port, s.client_id, s.fa_master_account) == ("h", 7497, 0, "DF9")
    monkeypatch.setenv("IB_PORT", "x")
    with pytest.raises(ValueError, match="IB_PORT"):
        resolve_connection(IBFAConnectionConfig(fa_master_account="DF1"))


def test_config_defaults_and_validation():
    config = IBFAExecClientConfig()
    assert config.venue == "SMART" and config.cash_tag == "TotalCashValue"
    # one connection config, held by both clients; market data never trades
    assert not config.connection.readonly and IBFADataClientConfig().connection.readonly
    with pytest.raises(ValueError, match="cash_tag"):
        IBFAExecClientConfig(cash_tag="NetLiquidation")


def test_fa_master_and_plan_account_checks():
    assert check_fa_master(["DF1", "DU2", "DU3"], "DF1") == ["DU2", "DU3"]
    with pytest.raises(NotFAMasterError, match="not among"):
        check_fa_master(["DU2"], "DF1")
    with pytest.raises(NotFAMasterError, match="not a Financial Advisor"):
        check_fa_master(["DF1"], "DF1")
    check_plan_accounts(["DF1", "DU2", "DU3"], ["DU2"], "DF1")
    with pytest.raises(MissingAccountsError, match="DU9"):
        check_plan_accounts(["DF1", "DU2"], ["DU2", "DU9", "DF1"], "DF1")


def test_ib_order_statuses_map_to_nautilus_states():
    from nautilus_trader.model.enums import OrderStatus

    assert order_status_from_ib("Filled", 10) == OrderStatus.FILLED
    assert order_status_from_ib("ApiCancelled", 0) == OrderStatus.CANCELED
    assert order_status_from_ib("Inactive", 0) == OrderStatus.REJECTED
    assert order_status_from_ib("PendingCancel", 3) == OrderStatus.PENDING_CANCEL
    assert order_status_from_ib("Submitted", 3) == OrderStatus.PARTIALLY_FILLED
    assert order_status_from_ib("PreSubmitted", 0) == OrderStatus.ACCEPTED


def test_last_liquidity_maps_to_maker_or_taker():
    from nautilus_trader.model.enums import LiquiditySide

    assert liquidity_side(1) == LiquiditySide.MAKER
    assert [liquidity_side(v) for v in (2, 3)] == [LiquiditySide.TAKER] * 2
    assert liquidity_side(0) == LiquiditySide.NO_LIQUIDITY_SIDE


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from([UTC, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")]),
)
def test_an_execution_time_is_the_nanoseconds_pandas_gives_it(naive, zone):
    aware = naive.replace(tzinfo=zone)
    assert ib_time_to_ns(aware) == pd.Timestamp(aware).value
    # a naive time is UTC
    assert ib_time_to_ns(naive) == pd.Timestamp(naive.replace(tzinfo=UTC)).value
