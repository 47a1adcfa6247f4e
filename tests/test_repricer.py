"""The re-pricing budget, the policy's settings, and the RiskEngine's modify rate against them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nautilus_trader.config import RiskEngineConfig

from live.rails_check import risk_engine_config
from strategies.exec_config import MAX_MODIFIES_PER_SEC, RebalanceExecutorConfig
from strategies.repricer import ModifyBudget

SEC = 1_000_000_000


@given(
    st.floats(0.1, MAX_MODIFIES_PER_SEC),
    st.lists(st.integers(0, 3 * SEC), min_size=1, max_size=300),
)
def test_the_budget_never_grants_more_than_its_rate_over_any_second(rate, gaps):
    """Any window of one second holds at most rate + one second's burst (the bucket starts full)."""
    budget = ModifyBudget(rate, 0)
    now, granted = 0, []
    for gap in gaps:
        now += gap
        if budget.take(now):
            granted.append(now)
    burst = max(1.0, rate)
    for i, start in enumerate(granted):
        in_window = sum(1 for t in granted[i:] if t < start + SEC)
        assert in_window <= burst + rate + 1e-9
    # over the whole run: no more than the burst plus what the elapsed time refilled
    assert len(granted) <= burst + rate * now / SEC + 1e-9


def test_a_spent_budget_refills_with_time():
    budget = ModifyBudget(2.0, 0)
    assert [budget.take(0) for _ in range(3)] == [True, True, False]
    assert not budget.take(SEC // 4)
    assert budget.take(SEC // 2) and not budget.take(SEC // 2)
    # a clock that steps back (a live timer racing the loop) does not mint tokens
    assert not budget.take(0)


@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("execution_policy", "twap", "must be one of"),
        ("urgency", "asap", "must be one of"),
        ("reprice_secs", 0.0, "at least 0.1"),
        ("reprice_secs", float("nan"), "at least 0.1"),
        ("max_modifies_per_sec", 50.0, "at most 40"),
        ("max_modifies_per_sec", 0.0, "at least 0.1"),
    ],
)
def test_bad_policy_settings_are_refused_with_the_field_and_value(field, value, needle):
    with pytest.raises(ValueError, match=f"RebalanceExecutorConfig.{field}: .*{needle}"):
        RebalanceExecutorConfig(plan_path="plan", **{field: value})


def test_adaptive_is_the_default():
    config = RebalanceExecutorConfig(plan_path="plan")
    assert (config.execution_policy, config.urgency) == ("adaptive", "normal")


def _per_second(rate: str) -> Decimal:
    count, interval = rate.split("/")
    hours, minutes, seconds = (Decimal(x) for x in interval.split(":"))
    return Decimal(count) / (hours * 3600 + minutes * 60 + seconds)


def test_the_risk_engine_never_throttles_the_most_re_pricing_allows():
    """A session's RiskEngine keeps NautilusTrader's modify rate, which covers the highest budget."""
    live = risk_engine_config(None, ["SPY.SMART", "QQQ.SMART"])
    assert live.max_order_modify_rate == RiskEngineConfig().max_order_modify_rate
    assert _per_second(live.max_order_modify_rate) >= Decimal(str(MAX_MODIFIES_PER_SEC))
