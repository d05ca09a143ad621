"""Parallel-tempering basin hopping with HMC moves and the generic quench: LJ₁₃ from random starts
reaches the published Mackay icosahedron, the scipy and Numba quenches agree, bad settings are refused."""

import numpy as np
import pytest

from hmc_core.basin_hopping import BasinHoppingConfig, ParallelTemperingBasinHopping
from hmc_core.minimize import local_minimum
from hmc_core.potentials import ForceField, LennardJones
from hmc_core.potentials.lj_cluster import LennardJonesCluster

E_LJ13 = -44.326801  # icosahedral LJ₁₃ global minimum (Cambridge Cluster Database)


def random_cluster(rng, n=13, radius=1.5):
    r = radius * rng.uniform(0, 1, n) ** (1 / 3)
    v = rng.standard_normal((n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True) * r[:, None]


def test_scipy_and_numba_quenches_reach_the_same_minimum():
    x = random_cluster(np.random.default_rng(3)) * 1.4
    general = ForceField(LennardJones(cutoff_sigma=10.0), np.ones(13, int))
    cluster = ForceField(LennardJonesCluster(), np.ones(13, int))
    e1, x1 = local_minimum(general, x.copy())
    e2, x2 = local_minimum(cluster, x.copy())
    assert e1 == pytest.approx(e2, abs=1e-6)
    assert general.n_evaluations > 10 and cluster.n_evaluations > 10  # both quenches are counted
    _, f = cluster(x2.copy())
    assert np.max(np.abs(f)) < 1e-5


def test_pt_basin_hopping_finds_the_lj13_icosahedron_from_random_starts():
    rng = np.random.default_rng(0)
    starts = np.array([random_cluster(rng) for _ in range(4)])
    cfg = BasinHoppingConfig(temperatures=(0.1, 0.2, 0.4, 0.8), kick_temperature=1.0, dt=0.02, n_steps=30)
    bh = ParallelTemperingBasinHopping(lambda: ForceField(LennardJonesCluster(radius=2.0), np.ones(13, int)), cfg)
    result = bh.run(starts, 200, seed=1, stop_below=E_LJ13 + 1e-4, keep_minima_below=-40.0)
    assert result.best_energy == pytest.approx(E_LJ13, abs=1e-5)
    assert len(result.energies) < 200  # stopped at the hit
    assert result.best_force_evaluations <= result.force_evaluations
    assert 0 < result.quench_evaluations < result.force_evaluations
    # swaps alternate between even and odd pairs after every completed move (the stopping move has none)
    rounds = len(result.energies) - 1
    assert list(result.swap_attempts) == [len(range(k % 2, rounds, 2)) for k in range(3)]
    assert 0 < result.swap_accepts.sum() and np.all(result.swap_accepts <= result.swap_attempts)
    np.testing.assert_array_equal(result.swap_rates, result.swap_accepts / result.swap_attempts)
    # a rung holds the best minimum at the end, and no rung ever held an energy below it
    assert result.energies[-1].min() == result.best_energy and np.nanmin(result.energies) == result.best_energy
    energies = [e for e, _ in result.minima]
    assert energies == sorted(energies) and energies[0] == pytest.approx(E_LJ13, abs=1e-5)
    # every rung holds a local minimum after each move
    _, f = ForceField(LennardJonesCluster(radius=2.0), np.ones(13, int))(result.best_positions.copy())
    assert np.max(np.abs(f)) < 1e-4


@pytest.mark.parametrize("kwargs, match", [
    ({"temperatures": (0.5,)}, "at least 2"),
    ({"temperatures": (0.5, 0.2)}, "strictly increasing"),
    ({"dt": 0.0}, "dt must be positive"),
    ({"kick_temperature": -1.0}, "kick_temperature"),
    ({"n_steps": 0}, "n_steps"),
])
def test_bad_settings_are_refused(kwargs, match):
    base = {"temperatures": (0.1, 0.5), "kick_temperature": 1.0, "dt": 0.02}
    with pytest.raises(ValueError, match=match):
        BasinHoppingConfig(**{**base, **kwargs})


def test_wrong_number_of_starts_is_refused():
    cfg = BasinHoppingConfig(temperatures=(0.1, 0.5, 1.0), kick_temperature=1.0, dt=0.02)
    bh = ParallelTemperingBasinHopping(lambda: ForceField(LennardJonesCluster(), np.ones(13, int)), cfg)
    with pytest.raises(ValueError, match="one per rung"):
        bh.run(np.zeros((2, 13, 3)), 5)
