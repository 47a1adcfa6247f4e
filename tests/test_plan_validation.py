"""Every way `validate_plan` / `load_plan` refuses a plan, in each on-disk format.

A refusal is only useful to an operator if it points at the cell to fix, so each test checks the
file, the row label and the field of every issue, not just that an error was raised.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.plan import (
    COLUMNS,
    MAX_ACCOUNT_CASH,
    Plan,
    PlanError,
    load_plan,
    read_plan_tables,
    validate_plan,
    write_plan,
)

REPO = Path(__file__).resolve().parents[1]
DEMO_PLAN = REPO / "data" / "demo" / "plan"
FORMATS = ("csv", "parquet", "json")

ACCOUNTS = [
    {"account_id": "A", "cash": "1000"},
    {"account_id": "B", "cash": "250.50"},
]
POSITIONS = [
    {"account_id": "A", "instrument": "SPY", "quantity": "100"},
    {"account_id": "B", "instrument": "QQQ", "quantity": "20"},
    {"account_id": "A", "instrument": "IEF", "quantity": "7"},  # held, never traded
]
REQUESTS = [
    {"request_id": "r1", "account_id": "A", "instrument": "SPY", "side": "SELL", "quantity": "60"},
    {"request_id": "r2", "account_id": "B", "instrument": "QQQ", "side": "SELL", "quantity": "20"},
    {"request_id": "r3", "account_id": "A", "instrument": "QQQ", "side": "BUY", "quantity": "10"},
]


def good_rows() -> dict[str, list[dict[str, str]]]:
    return {
        "accounts": [dict(r) for r in ACCOUNTS],
        "positions": [dict(r) for r in POSITIONS],
        "requests": [dict(r) for r in REQUESTS],
    }


def write_rows(tmp_path: Path, rows: dict[str, list[dict[str, str]]], fmt: str) -> Path:
    """Write raw text cells in one of the three plan formats (not via write_plan: bad cells must survive)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        path = tmp_path / "plan.json"
        path.write_text(json.dumps(rows))
        return path
    folder = tmp_path / "plan"
    folder.mkdir()
    for name, table in rows.items():
        columns = list(dict.fromkeys(k for r in table for k in r)) or list(COLUMNS[name])
        frame = pd.DataFrame(table, columns=columns, dtype=object)
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.astype(str).to_parquet(folder / f"{name}.parquet")
    return folder


def source(fmt: str, table: str) -> str:
    return f"plan.json:{table}" if fmt == "json" else f"{table}.{fmt}"


def label(fmt: str, index: int) -> str:
    return f"line {index + 2}" if fmt == "csv" else f"row {index}"


def refusal(path: Path, **kwargs) -> PlanError:
    with pytest.raises(PlanError) as info:
        load_plan(path, **kwargs)
    return info.value


def where(error: PlanError) -> set[tuple[str, str, str]]:
    return {(i.source, i.row, i.field) for i in error.issues}


def assert_single_issue(error: PlanError, src: str, row: str, field: str, *fragments: str) -> None:
    assert where(error) == {(src, row, field)}, [str(i) for i in error.issues]
    (issue,) = error.issues
    for fragment in fragments:
        assert fragment in issue.message, issue.message
    # the exception text is what an operator reads: it must carry file, row and field too
    assert f"{src} {row}, field '{field}'" in str(error)


@pytest.fixture(params=FORMATS)
def fmt(request) -> str:
    return request.param


def test_the_base_plan_is_good(tmp_path, fmt):
    plan = load_plan(write_rows(tmp_path, good_rows(), fmt))
    assert plan.requests["request_id"].tolist() == ["r1", "r2", "r3"]
    assert plan.holding("A", "SPY.SMART") == 100


# ---------------------------------------------------------------------------------------------
# One fault at a time: (table, mutation, expected table, row index, field, message fragments)


def _set(table: str, index: int, **cells):
    def mutate(rows):
        rows[table][index].update(cells)

    return mutate


def _append(table: str, **cells):
    def mutate(rows):
        rows[table].append(cells)

    return mutate


SINGLE_FAULTS = {
    "unknown account in requests": (
        _set("requests", 2, account_id="Z"),
        "requests",
        2,
        "account_id",
        ["unknown account 'Z'"],
    ),
    "unknown account in positions": (
        _append("positions", account_id="Z", instrument="IEF", quantity="5"),
        "positions",
        3,
        "account_id",
        ["unknown account 'Z'"],
    ),
    "duplicate request id": (_set("requests", 2, request_id="r1"), "requests", 2, "request_id", ["'r1'", "repeats"]),
    "zero quantity": (_set("requests", 2, quantity="0"), "requests", 2, "quantity", ["> 0", "was 0"]),
    "negative quantity": (_set("requests", 2, quantity="-5"), "requests", 2, "quantity", ["> 0", "was -5"]),
    "fractional quantity": (_set("requests", 2, quantity="2.5"), "requests", 2, "quantity", ["no fractions", "2.5"]),
    "non-numeric quantity": (_set("requests", 2, quantity="ten"), "requests", 2, "quantity", ["whole number", "'ten'"]),
    "empty quantity": (_set("requests", 2, quantity=""), "requests", 2, "quantity", ["whole number"]),
    "fractional sell quantity": (_set("requests", 0, quantity="1.5"), "requests", 0, "quantity", ["no fractions"]),
    "negative position": (_set("positions", 2, quantity="-1"), "positions", 2, "quantity", [">= 0", "was -1"]),
    "fractional position": (_set("positions", 2, quantity="0.5"), "positions", 2, "quantity", ["no fractions"]),
    "non-numeric position": (_set("positions", 2, quantity="lots"), "positions", 2, "quantity", ["'lots'"]),
    "sell larger than holding": (
        _set("requests", 0, quantity="101"),
        "requests",
        0,
        "quantity",
        ["sells 101", "holds 100"],
    ),
    "sell of something not held": (
        _append("requests", request_id="r4", account_id="B", instrument="SPY", side="SELL", quantity="1"),
        "requests",
        3,
        "quantity",
        ["SPY.SMART", "'B' holds 0"],
    ),
    "negative cash": (_set("accounts", 1, cash="-0.01"), "accounts", 1, "cash", [">= 0", "-0.01"]),
    "non-numeric cash": (_set("accounts", 1, cash="lots"), "accounts", 1, "cash", ["must be a number", "'lots'"]),
    "empty cash": (_set("accounts", 1, cash=""), "accounts", 1, "cash", ["must be a number"]),
    "NaN cash": (_set("accounts", 1, cash="NaN"), "accounts", 1, "cash", ["must be a number"]),
    "infinite cash": (_set("accounts", 1, cash="Infinity"), "accounts", 1, "cash", ["must be a number"]),
    "buy and sell of one instrument": (
        _append("requests", request_id="r4", account_id="A", instrument="SPY", side="BUY", quantity="5"),
        "requests",
        3,
        "side",
        ["both buys and sells SPY.SMART"],
    ),
    "repeated (account, instrument, BUY)": (
        _append("requests", request_id="r4", account_id="A", instrument="QQQ.SMART", side="buy", quantity="5"),
        "requests",
        3,
        "side",
        ["repeats", label("csv", 2)],
    ),
    "repeated (account, instrument, SELL)": (
        _append("requests", request_id="r4", account_id="A", instrument="SPY", side="SELL", quantity="10"),
        "requests",
        3,
        "side",
        ["repeats"],
    ),
    "bad side": (_set("requests", 2, side="HOLD"), "requests", 2, "side", ["BUY or SELL", "'HOLD'"]),
    "empty side": (_set("requests", 2, side=""), "requests", 2, "side", ["BUY or SELL"]),
    "duplicate account id": (
        _append("accounts", account_id="A", cash="5"),
        "accounts",
        2,
        "account_id",
        ["'A'", "repeats"],
    ),
    "empty account id": (_append("accounts", account_id="", cash="5"), "accounts", 2, "account_id", ["is empty"]),
    "empty request id": (_set("requests", 2, request_id=""), "requests", 2, "request_id", ["is empty"]),
    "empty account in requests": (_set("requests", 2, account_id=""), "requests", 2, "account_id", ["is empty"]),
    "empty instrument in requests": (_set("requests", 2, instrument=""), "requests", 2, "instrument", ["is empty"]),
    "empty instrument in positions": (_set("positions", 2, instrument=""), "positions", 2, "instrument", ["is empty"]),
    "repeated position": (
        _append("positions", account_id="A", instrument="IEF.SMART", quantity="3"),
        "positions",
        3,
        "instrument",
        ["repeats"],
    ),
}


@pytest.mark.parametrize("case", list(SINGLE_FAULTS))
def test_single_fault_is_refused_naming_file_row_and_field(tmp_path, fmt, case):
    mutate, table, index, field, fragments = SINGLE_FAULTS[case]
    rows = good_rows()
    mutate(rows)
    fragments = [f.replace(label("csv", 2), label(fmt, 2)) for f in fragments]
    error = refusal(write_rows(tmp_path, rows, fmt))
    assert_single_issue(error, source(fmt, table), label(fmt, index), field, *fragments)


def test_unknown_instrument_is_refused_only_when_instruments_are_known(tmp_path, fmt):
    rows = good_rows()
    rows["requests"][2]["instrument"] = "XYZ"
    path = write_rows(tmp_path, rows, fmt)
    error = refusal(path, known_instruments={"SPY.SMART", "QQQ.SMART", "IEF.SMART"})
    assert_single_issue(error, source(fmt, "requests"), label(fmt, 2), "instrument", "unknown instrument XYZ.SMART")
    assert load_plan(path).requests["instrument_id"].tolist()[2] == "XYZ.SMART"


def test_known_instruments_are_matched_after_the_default_venue_is_added(tmp_path):
    path = write_rows(tmp_path, good_rows(), "csv")
    plan = load_plan(path, known_instruments={"SPY.ARCA", "QQQ.ARCA"}, default_venue="ARCA")
    assert plan.traded_instrument_ids == ["QQQ.ARCA", "SPY.ARCA"]


@pytest.mark.parametrize("table, column", [(t, c) for t, cols in COLUMNS.items() for c in cols])
def test_missing_required_column(tmp_path, fmt, table, column):
    rows = good_rows()
    for row in rows[table]:
        del row[column]
    error = refusal(write_rows(tmp_path, rows, fmt))
    assert_single_issue(error, source(fmt, table), "header", column, "required column is missing")


def test_missing_columns_in_several_tables_are_all_reported(tmp_path):
    # regression: the column check once stopped at the first incomplete table
    rows = good_rows()
    for row in rows["accounts"]:
        del row["cash"]
    for row in rows["requests"]:
        del row["side"]
    error = refusal(write_rows(tmp_path, rows, "csv"))
    assert where(error) == {("accounts.csv", "header", "cash"), ("requests.csv", "header", "side")}


def test_several_problems_are_all_reported_at_once(tmp_path, fmt):
    rows = good_rows()
    rows["accounts"][1]["cash"] = "-3"
    rows["accounts"].append({"account_id": "A", "cash": "1"})
    rows["positions"].append({"account_id": "Z", "instrument": "TLT", "quantity": "4"})
    rows["requests"][0]["quantity"] = "500"  # sells more than A holds
    rows["requests"][1]["side"] = "HOLD"
    rows["requests"][2]["quantity"] = "1.25"
    rows["requests"].append(
        {"request_id": "r1", "account_id": "Q", "instrument": "SPY", "side": "BUY", "quantity": "0"}
    )
    error = refusal(write_rows(tmp_path, rows, fmt))
    acc, pos, req = (source(fmt, t) for t in ("accounts", "positions", "requests"))
    assert where(error) == {
        (acc, label(fmt, 1), "cash"),
        (acc, label(fmt, 2), "account_id"),
        (pos, label(fmt, 3), "account_id"),
        (req, label(fmt, 0), "quantity"),
        (req, label(fmt, 1), "side"),
        (req, label(fmt, 2), "quantity"),
        (req, label(fmt, 3), "request_id"),
        (req, label(fmt, 3), "account_id"),
        (req, label(fmt, 3), "quantity"),
    }
    assert f"({len(error.issues)} problem(s))" in str(error)
    assert "nothing was sent" in str(error)


def test_a_long_list_of_problems_is_summarised(tmp_path):
    rows = good_rows()
    rows["requests"] = [
        {"request_id": f"x{n}", "account_id": "A", "instrument": f"S{n}", "side": "BUY", "quantity": "-1"}
        for n in range(60)
    ]
    error = refusal(write_rows(tmp_path, rows, "csv"))
    assert len(error.issues) == 60
    assert "... and 10 more" in str(error)
    assert "requests.csv line 51, field 'quantity'" in str(error)
    assert "line 52" not in str(error)


def test_validate_plan_refuses_tables_given_directly(tmp_path):
    rows = good_rows()
    rows["requests"][2]["side"] = "SHORT"
    tables = read_plan_tables(write_rows(tmp_path, rows, "csv"))
    with pytest.raises(PlanError) as info:
        validate_plan(tables)
    assert where(info.value) == {("requests.csv", "line 4", "side")}


# ---------------------------------------------------------------------------------------------
# Refusals while reading, before any table is validated


def test_json_document_must_be_an_object(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("[]")
    error = refusal(path)
    assert where(error) == {("plan.json", "document", "-")}


@pytest.mark.parametrize("bad", [{"a": 1}, [1, 2], "rows"])
def test_json_table_must_be_a_list_of_row_objects(tmp_path, bad):
    rows = good_rows()
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({**rows, "requests": bad}))
    error = refusal(path)
    assert where(error) == {("plan.json", "requests", "-")}


def test_a_plan_file_must_be_json(tmp_path):
    path = tmp_path / "plan.csv"
    path.write_text("account_id,cash\n")
    with pytest.raises(ValueError, match="must be JSON"):
        load_plan(path)


def test_missing_plan_and_missing_tables(tmp_path):
    with pytest.raises(PlanError, match="nowhere: plan not found"):
        load_plan(tmp_path / "nowhere")
    folder = write_rows(tmp_path, good_rows(), "csv")
    (folder / "requests.csv").unlink()
    with pytest.raises(PlanError, match="no requests.csv or requests.parquet"):
        load_plan(folder)


def test_a_table_in_two_formats_is_refused(tmp_path):
    folder = write_rows(tmp_path, good_rows(), "csv")
    pd.DataFrame(ACCOUNTS).to_parquet(folder / "accounts.parquet")
    with pytest.raises(ValueError, match="both accounts.csv and accounts.parquet"):
        load_plan(folder)


@pytest.mark.parametrize("folder_fmt", ["csv", "parquet"])
def test_a_folder_plan_of_buys_only_needs_no_positions(tmp_path, folder_fmt):
    fmt = folder_fmt
    rows = good_rows()
    rows["requests"] = [rows["requests"][2]]
    folder = write_rows(tmp_path, rows, fmt)
    (folder / f"positions.{fmt}").unlink()
    plan = load_plan(folder)
    assert plan.positions.empty and plan.requests["request_id"].tolist() == ["r3"]


def test_a_json_plan_of_buys_only_needs_no_positions(tmp_path):
    # regression: an empty JSON list once read as a table with no columns at all
    rows = good_rows()
    rows["requests"] = [rows["requests"][2]]
    rows["positions"] = []
    plan = load_plan(write_rows(tmp_path, rows, "json"))
    assert plan.requests["request_id"].tolist() == ["r3"]
    assert plan.positions.empty


def test_csv_line_numbers_survive_a_blank_line(tmp_path):
    # regression: pandas drops blank lines, which once shifted every later line number
    folder = write_rows(tmp_path, good_rows(), "csv")
    (folder / "requests.csv").write_text(
        "request_id,account_id,instrument,side,quantity\nr1,A,SPY,SELL,60\n\nr3,A,QQQ,BUY,ten\n"
    )
    error = refusal(folder)
    assert where(error) == {("requests.csv", "line 4", "quantity")}


@pytest.mark.parametrize("text", ["inf", "-inf", "1e30", "9223372036854775808", "9007199254740993", "1000000001"])
def test_huge_quantities_are_refused(tmp_path, text):
    # regression: float64 parsing once let 'inf' and 1e30 through as -2**63 (a negative BUY) and
    # silently changed 9007199254740993 to 9007199254740992
    rows = good_rows()
    rows["requests"][2]["quantity"] = text
    error = refusal(write_rows(tmp_path, rows, "csv"))
    assert where(error) == {("requests.csv", "line 4", "quantity")}


def test_the_largest_allowed_quantity_loads_exactly(tmp_path):
    rows = good_rows()
    rows["requests"][2]["quantity"] = "1000000000"
    rows["positions"][0]["quantity"] = "1000000000"
    rows["requests"][0]["quantity"] = "1000000000"
    plan = load_plan(write_rows(tmp_path, rows, "csv"))
    assert plan.requests["quantity"].tolist() == [1_000_000_000, 20, 1_000_000_000]


def test_a_huge_position_is_refused(tmp_path):
    rows = good_rows()
    rows["positions"][2]["quantity"] = "1e30"
    error = refusal(write_rows(tmp_path, rows, "csv"))
    assert where(error) == {("positions.csv", "line 4", "quantity")}


# ---------------------------------------------------------------------------------------------
# Good plans


def assert_same_plan(a: Plan, b: Plan) -> None:
    pd.testing.assert_frame_equal(a.accounts, b.accounts)
    pd.testing.assert_frame_equal(a.positions, b.positions)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    # Decimal("1.5") == Decimal("1.50"), so compare the cash text as well: amounts must not be re-rounded
    assert a.accounts["cash"].map(str).tolist() == b.accounts["cash"].map(str).tolist()


def test_a_good_plan_loads_identically_from_csv_parquet_and_json(tmp_path):
    original = load_plan(write_rows(tmp_path / "src", good_rows(), "csv"))
    assert original.accounts["cash"].tolist() == [Decimal("1000"), Decimal("250.50")]
    assert original.requests["quantity"].dtype == "int64"
    for fmt, target in (("csv", tmp_path / "c"), ("parquet", tmp_path / "p"), ("json", tmp_path / "j" / "plan.json")):
        assert_same_plan(original, load_plan(write_plan(original, target, fmt)))


def test_raw_cells_load_identically_in_every_format(tmp_path):
    plans = [load_plan(write_rows(tmp_path / f, good_rows(), f)) for f in FORMATS]
    assert_same_plan(plans[0], plans[1])
    assert_same_plan(plans[0], plans[2])


def test_write_plan_refuses_an_unknown_format(tmp_path):
    plan = load_plan(write_rows(tmp_path, good_rows(), "csv"))
    with pytest.raises(ValueError, match="unknown plan format"):
        write_plan(plan, tmp_path / "out", "xlsx")


def test_empty_positions_and_requests_round_trip_in_every_format(tmp_path):
    rows = {"accounts": good_rows()["accounts"], "positions": [], "requests": []}
    plan = load_plan(write_rows(tmp_path / "j", rows, "json"))
    assert plan.positions.empty and plan.requests.empty
    for fmt, target in (("csv", tmp_path / "c"), ("parquet", tmp_path / "p"), ("json", tmp_path / "o.json")):
        again = load_plan(write_plan(plan, target, fmt))
        assert again.positions.empty and again.requests.empty
        pd.testing.assert_frame_equal(again.accounts, plan.accounts)


_ids = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=1, max_size=8)


@st.composite
def good_plans(draw) -> Plan:
    accounts = draw(st.lists(_ids, min_size=1, max_size=6, unique=True))
    symbols = draw(
        st.lists(
            st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=5), min_size=1, max_size=4, unique=True
        )
    )
    # up to the per-account ceiling; six accounts stay under the plan's
    cash = [Decimal(draw(st.integers(0, int(MAX_ACCOUNT_CASH)))).scaleb(-draw(st.integers(0, 4))) for _ in accounts]
    positions, requests = [], []
    for a in accounts:
        for s in symbols:
            held = draw(st.integers(0, 10**6))
            if held or draw(st.booleans()):
                positions.append((a, f"{s}.SMART", held))
            side = draw(st.sampled_from(["", "BUY", "SELL"] if held else ["", "BUY"]))
            if side:
                qty = draw(st.integers(1, held)) if side == "SELL" else draw(st.integers(1, 10**6))
                requests.append((f"R{len(requests)}", a, f"{s}.SMART", side, qty))
    # built the way load_plan builds its frames, so that dtypes compare equal as well as values
    return Plan(
        accounts=pd.DataFrame({"account_id": accounts, "cash": pd.Series(cash, dtype=object)}),
        positions=pd.DataFrame(positions, columns=["account_id", "instrument_id", "quantity"]).astype(
            {"quantity": "int64"}
        ),
        # the requests' text columns as object arrays, as RECALC reads them
        requests=pd.DataFrame(
            requests, columns=["request_id", "account_id", "instrument_id", "side", "quantity"]
        ).astype(
            {"request_id": object, "account_id": object, "instrument_id": object, "side": object, "quantity": "int64"}
        ),
    )


@settings(max_examples=25, deadline=None)
@given(plan=good_plans())
def test_write_then_load_round_trips_in_every_format(tmp_path_factory, plan):
    base = tmp_path_factory.mktemp("rt")
    for fmt, target in (("csv", base / "c"), ("parquet", base / "p"), ("json", base / "j.json")):
        assert_same_plan(plan, load_plan(write_plan(plan, target, fmt)))


def test_bare_symbols_get_the_default_venue(tmp_path):
    rows = good_rows()
    rows["requests"][2]["instrument"] = "qqq"  # lower case is upper-cased like a typed ticker
    rows["positions"][2]["instrument"] = "IEF.NASDAQ"
    plan = load_plan(write_rows(tmp_path, rows, "csv"))
    assert plan.requests["instrument_id"].tolist() == ["SPY.SMART", "QQQ.SMART", "QQQ.SMART"]
    assert plan.positions["instrument_id"].tolist() == ["SPY.SMART", "QQQ.SMART", "IEF.NASDAQ"]
    other = load_plan(write_rows(tmp_path / "v", good_rows(), "csv"), default_venue="ARCA")
    assert other.requests["instrument_id"].tolist()[0] == "SPY.ARCA"


def test_the_shipped_example_plan_loads():
    if not DEMO_PLAN.exists():
        pytest.skip(f"no example plan at {DEMO_PLAN}")
    plan = load_plan(DEMO_PLAN)
    assert len(plan.accounts) and len(plan.requests)
    assert set(plan.requests["account_id"]) <= set(plan.accounts["account_id"])
    assert (plan.accounts["cash"] >= 0).all()
    for row in plan.requests[plan.requests["side"] == "SELL"].itertuples():
        assert row.quantity <= plan.holding(row.account_id, row.instrument_id)
