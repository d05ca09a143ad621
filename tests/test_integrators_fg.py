"""Force-gradient integrators (exact and Hessian-free): reversibility and ΔH = O(dt⁴)."""

import numpy as np
import pytest
from conftest import fcc_lattice

from hmc_core.integrators import FORCE_EVALUATIONS_PER_STEP, INTEGRATORS, hessian_vector, kinetic_energy
from hmc_core.potentials import ForceField, LennardJones


def _cluster(seed):
    """32-atom LJ cluster, cutoff beyond its size: a smooth Hamiltonian (no pair crosses a cutoff)."""
    rng = np.random.default_rng(seed)
    pos, _ = fcc_lattice(2, 1.0)
    pos += rng.normal(scale=0.03, size=pos.shape)
    ff = ForceField(LennardJones(cutoff_sigma=20.0), np.ones(len(pos), int))
    return ff, pos, rng.normal(size=pos.shape), np.ones_like(pos)


def _energy_error(name, dt, total_time=0.3, seed=3):
    ff, x, p, inv_m = _cluster(seed)
    e, f = ff(x)
    h0 = e + kinetic_energy(p, inv_m)
    e, f = INTEGRATORS[name](x, p, inv_m, ff, dt, round(total_time / dt), e, f)
    return abs(e + kinetic_energy(p, inv_m) - h0)


@pytest.mark.parametrize("name", ["force_gradient", "force_gradient_hf"])
def test_delta_h_scales_as_dt_to_the_fourth(name):
    dts = np.array([0.015, 0.01, 0.0075])
    errs = np.array([_energy_error(name, dt) for dt in dts])
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert 3.5 < slope < 4.7, (slope, errs)
    # far more accurate than the second-order schemes at the same step
    assert errs[1] < 0.05 * _energy_error("omelyan", 0.01)


@pytest.mark.parametrize("name", ["force_gradient", "force_gradient_hf"])
def test_reversible(name):
    ff, x, p, inv_m = _cluster(0)
    x0, p0 = x.copy(), p.copy()
    e, f = ff(x)
    e, f = INTEGRATORS[name](x, p, inv_m, ff, 0.01, 30, e, f)
    p *= -1
    INTEGRATORS[name](x, p, inv_m, ff, 0.01, 30, e, f)
    np.testing.assert_allclose(x, x0, atol=1e-9)
    np.testing.assert_allclose(-p, p0, atol=1e-9)


def test_force_evaluations_per_step_match_the_registry():
    for name in ("force_gradient", "force_gradient_hf"):
        ff, x, p, inv_m = _cluster(1)
        e, f = ff(x)
        n0 = ff.n_evaluations
        INTEGRATORS[name](x, p, inv_m, ff, 0.01, 5, e, f)
        assert ff.n_evaluations - n0 == 5 * FORCE_EVALUATIONS_PER_STEP[name]


def test_hessian_vector_matches_finite_difference_of_gradient_norm():
    """H·v from forces equals ∇(½|F|²)-type directional derivative: check against a numerical Hessian column."""
    ff, x, _, _ = _cluster(2)
    v = np.zeros_like(x)
    v[5, 1] = 1.0
    hv = hessian_vector(ff, x.copy(), v)
    h = 1e-5
    xp, xm = x.copy(), x.copy()
    xp[5, 1] += h
    xm[5, 1] -= h
    column = -(ff(xp)[1] - ff(xm)[1]) / (2 * h)
    np.testing.assert_allclose(hv, column, atol=1e-5 * np.abs(column).max())
