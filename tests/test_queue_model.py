"""The queue-position models (venues.sim.queue_models): each formula, and the contract every registered one keeps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from venues.sim.queue_models import QUEUE_MODELS, QueueKeeper, QueueModel
from venues.sim.registry import Registry
from venues.sim.venue import SimVenueConfig

sizes = st.floats(min_value=0, max_value=1e6, allow_nan=False)
# queue_power's whole range (0, 100]: past about 4, x**n of a million-share level is beyond a float
powers = st.floats(min_value=0, max_value=100, exclude_min=True)


def prob(function: str, n: float = 2.0) -> QueueModel:
    return QUEUE_MODELS[f"prob_{function}"](n)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(QUEUE_MODELS.names()), front=sizes, back=sizes, n=powers)
def test_every_model_gives_a_cancel_share_that_is_a_probability(name, front, back, n):
    assert 0.0 <= QUEUE_MODELS[name](n).cancel_share_from_back(front, back) <= 1.0


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(QUEUE_MODELS.names()), level=sizes, n=powers)
def test_every_model_joins_with_a_queue_between_nothing_and_the_level(name, level, n):
    assert 0.0 <= QUEUE_MODELS[name](n).front_on_join(level) <= level


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(QUEUE_MODELS.names()),
    level=sizes,
    ahead=st.floats(0, 1),
    frac=st.floats(0, 1),
    n=powers,
)
def test_every_model_keeps_the_queue_ahead_within_what_is_left_and_never_moves_the_order_back(
    name, level, ahead, frac, n
):
    front, cancelled = level * ahead, level * frac
    after = QUEUE_MODELS[name](n).front_after_cancel(front, level, cancelled)
    slack = 1e-6 * max(1.0, level)
    assert 0.0 <= after <= front + 1e-9
    assert after <= level - cancelled + slack  # never more ahead of us than is still displayed
    assert front - after <= cancelled + slack  # the shares ahead fall by no more than were cancelled


def test_nothing_behind_means_every_cancel_was_ahead():
    assert prob("power").front_after_cancel(100, 100, 80) == pytest.approx(20)


def test_a_steep_power_on_large_levels_still_gives_the_bigger_side_the_cancels():
    model = prob("power", 100)
    assert model.cancel_share_from_back(2_000, 3_000) == pytest.approx(1.0)
    assert model.cancel_share_from_back(3_000, 2_000) == pytest.approx(0.0)
    assert model.cancel_share_from_back(0, 5e5) == 1.0
    assert model.cancel_share_from_back(2_000, 2_000) == pytest.approx(0.5)


def test_a_bigger_back_takes_more_of_the_cancels_with_a_steeper_power():
    mild = prob("power", 0.5).front_after_cancel(100, 400, 50)
    steep = prob("power", 3).front_after_cancel(100, 400, 50)
    assert steep > mild  # steeper f: cancels come from the larger back, the order advances less


def test_the_log_model_weighs_each_side_by_the_log_of_its_size():
    # f(100) = log(101), f(300) = log(301): p = log(301) / (log(101) + log(301))
    assert prob("log").cancel_share_from_back(100, 300) == pytest.approx(0.5528, abs=1e-4)


def test_risk_averse_cancels_come_from_behind_until_nothing_is_left_there():
    model = QUEUE_MODELS["risk_averse"]()
    assert model.front_after_cancel(100, 400, 250) == 100
    assert model.front_after_cancel(100, 400, 350) == pytest.approx(50)
    assert model.keeper is QueueKeeper.ENGINE


def test_without_a_queue_model_every_order_is_first():
    model = QUEUE_MODELS["none"]()
    assert model.front_on_join(500) == 0
    assert model.keeper is QueueKeeper.NONE


def test_an_unknown_model_is_refused_with_the_registered_names():
    with pytest.raises(ValueError, match=r"queue_model: must be one of \('none', 'risk_averse', 'prob_power'"):
        SimVenueConfig(queue_model="cubic")


def test_a_name_is_registered_once():
    registry: Registry[QueueModel] = Registry("queue model")
    registry.register("twice")(QUEUE_MODELS["none"])
    with pytest.raises(ValueError, match="queue model 'twice' is already registered, by NoQueue"):
        registry.register("twice")(QUEUE_MODELS["risk_averse"])
