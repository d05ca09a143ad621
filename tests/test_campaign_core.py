"""The campaign core without a Prefect server: the stop rule (each condition at its boundary, so an inverted
or dropped condition fails), the random streams (no collisions), the chain plan (every start × temperature) and
the explore stage (temperature is the chain's, the same seed gives the same chain, the task equals the plain
function)."""

from __future__ import annotations

import numpy as np
import pytest

from flows.active_learning import budget_stop_lifted, stop_after_selecting, stop_before_exploring
from flows.config import ConfigError, StoppingConfig, parse_config
from hmc_core.configurations import make_configurations
from hmc_core.uncertainty import build_active_set
from tasks.explore import ExploreInputs, ExploreSettings, explore_task, plan_chains, run_explore

STOP = StoppingConfig(max_iterations=3, max_labels=20, force_rmse_target=0.1)


@pytest.mark.parametrize(
    ("it", "n_labels", "rmse", "expected"),
    [
        (0, 8, 0.1, "error target"),          # at the target: reached (≤)
        (0, 8, 0.0999, "error target"),
        (0, 8, 0.1001, None),                 # just above: go on
        (0, 8, float("nan"), None),           # no test set: the target cannot be checked
        (2, 8, 0.5, None),                    # one round left
        (3, 8, 0.5, "iteration budget"),      # budget spent
        (0, 19, 0.5, None),
        (0, 20, 0.5, "label budget"),
        (5, 30, 0.05, "error target"),        # the error target wins over budgets
    ],
)
def test_stop_before_exploring_at_each_boundary(it, n_labels, rmse, expected):
    reason = stop_before_exploring(it, n_labels, rmse, STOP)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and reason.startswith(expected)


def test_stop_reasons_say_what_was_checked():
    assert "not converged" in stop_before_exploring(3, 8, 0.5, STOP)
    assert "held-out" in stop_before_exploring(0, 8, 0.01, STOP)
    assert "not checked" in stop_after_selecting(0, 2.0, STOP)


def test_stop_after_selecting():
    assert stop_after_selecting(0, 2.0, STOP).startswith("converged")
    assert stop_after_selecting(1, 2.0, STOP) is None
    assert stop_after_selecting(0, 2.0, StoppingConfig(stop_when_no_candidates=False)) is None


def test_budget_stop_lifted_only_by_larger_budgets():
    it_stop = stop_before_exploring(3, 8, 0.5, STOP)
    assert not budget_stop_lifted(it_stop, 3, 8, STOP)
    assert budget_stop_lifted(it_stop, 3, 8, StoppingConfig(max_iterations=4, max_labels=20))
    assert not budget_stop_lifted(it_stop, 3, 20, StoppingConfig(max_iterations=4, max_labels=20))
    label_stop = stop_before_exploring(1, 20, 0.5, STOP)
    assert not budget_stop_lifted(label_stop, 1, 20, STOP)
    assert budget_stop_lifted(label_stop, 1, 20, StoppingConfig(max_iterations=3, max_labels=30))
    assert not budget_stop_lifted("converged: no explored frame above grade 2.0", 1, 8,
                                  StoppingConfig(max_iterations=9, max_labels=99))


def test_random_streams_never_collide():
    """The old scheme seed + 1000 it + 10 k + t collided for (k, t) = (0, 10) and (1, 0); keyed streams do not."""
    cfg = parse_config({})
    keys = [(it, 0, k, t) for it in range(3) for k in range(12) for t in range(12)]
    states = {tuple(cfg.stream("chain", *key).generate_state(4)) for key in keys}
    assert len(states) == len(keys)
    assert tuple(cfg.stream("chain", 0, 0, 0, 10).generate_state(4)) != tuple(cfg.stream("chain", 0, 0, 1, 0)
                                                                                .generate_state(4))
    assert tuple(cfg.stream("select", 0).generate_state(2)) != tuple(cfg.stream("fit", 0).generate_state(2))
    with pytest.raises(ValueError, match="unknown random stream"):
        cfg.stream("nope")


def test_chain_plan_covers_every_start_and_temperature():
    settings = ExploreSettings(temperatures=(300.0, 600.0, 1200.0), n_starts=3)
    seed = np.random.SeedSequence(1)
    plan = plan_chains(settings, 10, seed)
    assert len(plan) == 9
    assert sorted({c.start for c in plan}) == sorted({c.start for c in plan_chains(settings, 10, seed)})
    assert len({c.start for c in plan}) == 3 and all(0 <= c.start < 10 for c in plan)
    for start in {c.start for c in plan}:
        assert sorted(c.temperature for c in plan if c.start == start) == [300.0, 600.0, 1200.0]
    assert len({c.key for c in plan}) == 9
    assert len(plan_chains(settings, 2, seed)) == 6  # fewer labels than starts: every label once


def test_overrides_are_validated_like_the_file():
    cfg = parse_config({})
    with pytest.raises(ConfigError, match="max_iterations"):
        cfg.with_overrides(stopping={"max_iterations": -1})
    with pytest.raises(ConfigError, match="even"):
        cfg.with_overrides(potential={"level": 7})
    assert cfg.with_overrides(stopping={"max_iterations": 5}).stopping.max_iterations == 5
    with pytest.raises(ConfigError, match="max_labels"):
        parse_config({"system": {"n_start": 10}, "stopping": {"max_labels": 5}})
    with pytest.raises(ConfigError, match="n_start"):
        parse_config({"system": {"n_start": 1}})


# ---- the explore stage on a real MTP basis (argon clusters) ---------------------------------------------------
BASE = np.array([[0, 0, 0], [3.7, 0, 0], [0, 3.7, 0], [0, 0, 3.7], [3.7, 3.7, 0], [3.7, 0, 3.7]], float)


@pytest.fixture(scope="module")
def explore_inputs(shared_data):
    from hmc_core.mtp import read_mtp

    mtp = read_mtp(shared_data / "mtp" / "cubic_level10.mtp", species=[18])
    rng = np.random.default_rng(0)
    train = make_configurations([BASE + 0.05 * rng.standard_normal(BASE.shape) for _ in range(12)],
                                [np.full(len(BASE), 18)] * 12)
    return mtp, build_active_set(mtp, train, mode="atom"), train.isel(config=[0])


def test_explore_runs_the_chain_at_its_own_temperature(explore_inputs):
    mtp, active, start = explore_inputs
    settings = ExploreSettings(temperatures=(1.0,), n_samples=40, n_steps=5, dt=2.0, n_warmup=5, save_every=4)
    cold = run_explore(ExploreInputs(start, 20.0, mtp, active), settings, 3)
    hot = run_explore(ExploreInputs(start, 400.0, mtp, active), settings, 3)
    assert cold.trace["temperature"].values.tolist() == [20.0] and hot.trace["temperature"].values.tolist() == [400.0]
    assert np.all(cold.frames["temperature"].values == 20.0) and np.all(hot.frames["temperature"].values == 400.0)
    # mean kinetic energy at the start of a trajectory is (3N/2) k_B T: a 20× hotter chain has ~20× more
    ratio = np.nanmean(hot.trace["kinetic_energy"].values) / np.nanmean(cold.trace["kinetic_energy"].values)
    assert 10 < ratio < 40
    assert np.all(np.isfinite(cold.frames["grade"].values))


def test_explore_same_seed_same_chain_and_task_equals_function(explore_inputs):
    mtp, active, start = explore_inputs
    settings = ExploreSettings(n_samples=12, n_steps=5, dt=2.0, n_warmup=2, save_every=3)
    inputs = ExploreInputs(start, 100.0, mtp, active)
    a = run_explore(inputs, settings, np.random.SeedSequence(7, spawn_key=(3, 0, 0, 1)))
    b = explore_task.fn(inputs, settings, np.random.SeedSequence(7, spawn_key=(3, 0, 0, 1)))
    c = run_explore(inputs, settings, np.random.SeedSequence(7, spawn_key=(3, 0, 0, 2)))
    np.testing.assert_array_equal(a.frames["positions"].values, b.frames["positions"].values)
    assert not np.array_equal(a.frames["positions"].values, c.frames["positions"].values)


def test_explore_stops_above_the_break_grade(explore_inputs):
    mtp, active, start = explore_inputs
    settings = ExploreSettings(n_samples=200, n_steps=10, dt=4.0, n_warmup=0, save_every=1)
    res = run_explore(ExploreInputs(start, 3000.0, mtp, active, stop_grade=1.5), settings, 1)
    g = res.frames["grade"].values
    assert res.stopped_early and g[-1] > 1.5 and np.all(g[:-1] <= 1.5)
    assert res.frames.sizes["config"] < 200
