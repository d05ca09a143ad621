"""Free energies by thermodynamic integration on HMC (issue 22 §2): Frenkel–Ladd on a harmonic crystal equals its
analytic free energy, the liquid route equals the ideal gas exactly and the Lennard-Jones fluid of Johnson, Zollweg &
Gubbins (1993), and the Gibbs–Helmholtz crossing recovers a planted melting point.

Reference values: the harmonic crystal's βF/N from the eigenvalues of its Hessian
(:func:`hmc_core.free_energy.harmonic_free_energy`); JZG's excess Helmholtz energy by integrating their MBWR pressure,
βA_ex/N = ∫₀^ρ (Z − 1) dρ'/ρ' along the isotherm (:func:`hmc_core.lj_reference.jzg_pressure`; the MBWR is analytic,
so the loop through the two-phase region gives the same A as any other path; quoted accuracy of A_ex ~1 %).
"""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from hmc_core.free_energy import (
    EinsteinCoupled,
    einstein_free_energy,
    frenkel_ladd,
    gauss_legendre,
    harmonic_free_energy,
    ideal_gas_free_energy,
    liquid_free_energy,
)
from hmc_core.free_energy_melting import crossing, gibbs_curve
from hmc_core.lj_reference import jzg_pressure
from hmc_core.phase_system import PhaseSystem
from hmc_core.potentials.base import Potential
from hmc_core.structures import lattice, minimum_image

LJ = PhaseSystem("LJ")


class HarmonicNetwork(Potential):
    """Harmonic springs between nearest-neighbour sites, linear in the displacements:
    U = K/2 Σ_bonds |uᵢ − uⱼ|², uᵢ the minimum-image displacement from site i; Hessian K (L ⊗ I₃), L the bond graph's
    Laplacian, so βF is exact (:func:`harmonic_free_energy`)."""

    cutoff = 1e-3  # no neighbour pairs: the bonds are fixed
    units = "lj"

    def __init__(self, sites, cell, stiffness: float, bond_length: float):
        self.sites, self.cell, self.inv = np.asarray(sites), np.asarray(cell), np.linalg.inv(cell)
        r = np.linalg.norm(minimum_image(sites[None] - sites[:, None], cell), axis=-1)
        i, j = np.nonzero(np.triu(np.abs(r - bond_length) < 1e-6, 1))
        self.incidence = np.zeros((len(i), len(sites)))
        self.incidence[np.arange(len(i)), i], self.incidence[np.arange(len(i)), j] = 1.0, -1.0
        self.k = float(stiffness)

    def nonzero_eigenvalues(self) -> np.ndarray:
        lap = self.incidence.T @ self.incidence
        return np.repeat(np.sort(np.linalg.eigvalsh(lap))[1:] * self.k, 3)

    def compute(self, positions, cell, types, nlist):
        d = self.incidence @ minimum_image(positions - self.sites, self.cell, self.inv)
        return 0.5 * self.k * float(np.sum(d * d)), -self.k * (self.incidence.T @ d), np.zeros((3, 3))


class NoInteraction(Potential):
    """U = 0: the ideal gas."""

    cutoff = 1e-3
    units = "lj"

    def compute(self, positions, cell, types, nlist):
        return 0.0, np.zeros_like(positions), np.zeros((3, 3))


def test_reference_free_energies_are_consistent():
    # one atom: no modes, the free particle in V; the Einstein crystal is the harmonic crystal with all modes at k
    assert harmonic_free_energy(np.zeros(0), 1.0, 1, 8.0) == pytest.approx(-math.log(8.0))
    n, k, kT, v = 32, 50.0, 0.7, 40.0
    direct = -(math.log(v / n) + 1.5 * math.log(n) + 1.5 * (n - 1) * math.log(2 * math.pi * kT / k)) / n
    assert einstein_free_energy(k, kT, n, v) == pytest.approx(direct, rel=1e-13)
    assert ideal_gas_free_energy(n, v) == pytest.approx((math.lgamma(n + 1) - n * math.log(v)) / n)
    x, w = gauss_legendre(0.0, 2.0, 4)
    assert w @ x**7 == pytest.approx(2.0**8 / 8)  # exact to degree 2n − 1


def test_frenkel_ladd_on_a_harmonic_crystal_equals_the_analytic_free_energy():
    """108-atom fcc with nearest-neighbour springs (K = 20 ε/σ², T* = 0.7): the Frenkel–Ladd integral from the
    Einstein crystal with k from the crystal's own mean-square displacement recovers the exact βF/N."""
    sites, cell = lattice("fcc", 3, 1.0)
    crystal = HarmonicNetwork(sites, cell, 20.0, (4.0 ** (1 / 3)) / math.sqrt(2))
    exact = harmonic_free_energy(crystal.nonzero_eigenvalues(), 0.7, len(sites), abs(np.linalg.det(cell)))
    fl = frenkel_ladd(LJ, sites, cell, 0.7, n_lambda=6, n_samples=80, n_steps=10, seed=3, potential=crystal)
    assert 150 < fl["spring"] < 300  # ~12 bonds × K, from ⟨|u − ū|²⟩
    assert abs(fl["free_energy"] - exact) < max(4 * fl["standard_error"], 0.004), (fl["free_energy"], exact)
    assert 0 < fl["standard_error"] < 0.005
    # the same integral with the exact integrand: the 6-node quadrature error (nodes λ = x⁴, as frenkel_ladd) is far
    # below the statistical one
    h, k, n = crystal.nonzero_eigenvalues(), fl["spring"], len(sites)
    x, wx = gauss_legendre(0.0, 1.0, 6)
    lam, w = x**4, wx * 4 * x**3
    assert np.allclose(lam, fl["delta"].nodes) and np.allclose(w, fl["delta"].weights)
    integrand = [np.sum(0.5 * (h - k) / (a * h + (1 - a) * k)) / n for a in lam]
    assert w @ integrand == pytest.approx(np.sum(0.5 * np.log(h / k)) / n, abs=1e-3)


def test_einstein_coupling_energies_forces_and_bad_input():
    sites, cell = lattice("fcc", 2, 1.0)
    rng = np.random.default_rng(0)
    x = sites + rng.normal(0, 0.05, sites.shape) + 0.3  # a rigid shift does not change U_E
    mix = EinsteinCoupled(NoInteraction(), sites, cell, 10.0, 0.25, 0.0)
    e, f = mix.einstein(x)
    u = x - 0.3 - sites
    u -= u.mean(axis=0)
    assert e == pytest.approx(5.0 * np.sum(u * u)) and np.allclose(f.sum(axis=0), 0, atol=1e-12)
    with pytest.raises(ValueError, match="λ"):
        EinsteinCoupled(NoInteraction(), sites, cell, 10.0, 1.5, 0.0)
    with pytest.raises(ValueError, match="spring"):
        EinsteinCoupled(NoInteraction(), sites, cell, 0.0, 0.5, 0.0)
    with pytest.raises(ValueError, match="3N − 3"):
        harmonic_free_energy(np.ones(5), 1.0, 4, 1.0)


def test_liquid_route_on_an_ideal_gas_is_exact():
    x, cell = lattice("fcc", 2, 0.5)
    out = liquid_free_energy(LJ, x, cell, 1.0, 2.0, n_density=3, n_beta=2, n_samples=5, n_steps=2,
                             potential=NoInteraction())
    assert out["free_energy"] == pytest.approx(ideal_gas_free_energy(len(x), abs(np.linalg.det(cell))), abs=1e-12)
    assert out["isotherm"].value == pytest.approx(0, abs=1e-12) and out["isochore"].value == 0
    with pytest.raises(ValueError, match="t_high"):
        liquid_free_energy(LJ, x, cell, 1.0, 0.9)


@pytest.mark.slow
def test_liquid_route_matches_the_jzg_lennard_jones_fluid():
    """LJ (r_c = 3σ, shifted, tail-corrected: the full potential to mean-field accuracy), 256 atoms at ρ* = 0.8,
    T* = 1.0, from the ideal gas along T* = 2.5 and the isochore: βA_ex/N within 0.04 of JZG (their ~1 %)."""
    x, cell = lattice("fcc", 4, 0.8)
    out = liquid_free_energy(LJ, x, cell, 1.0, 2.5, n_density=8, n_beta=4, n_samples=120, seed=5)
    ex = out["free_energy"] - ideal_gas_free_energy(256, 256 / 0.8)
    jzg = quad(lambda r: (jzg_pressure(1.0, r) / (r * 1.0) - 1) / r, 0, 0.8)[0]
    assert abs(ex - jzg) < 0.04 + 3 * out["standard_error"], (ex, jzg, out["standard_error"])


def test_gibbs_helmholtz_crossing_recovers_a_planted_melting_point():
    """Two phases with linear configurational enthalpies and βG/N chosen so that they cross at T = 0.7 exactly."""
    kB, t0 = 1.0, 0.69
    temps = np.array([0.66, 0.69, 0.72])
    hs, hl = -7.0 + 2.0 * temps, -6.0 + 2.5 * temps

    def g_of(h0, h1, gref):  # exact βG/N for h = h0 + h1 T with βG/N = gref at β(T=0.7)
        return lambda t: gref + h0 * (1 / t - 1 / 0.7) + h1 * math.log((1 / t) / (1 / 0.7))
    gs_exact, gl_exact = g_of(-7.0, 2.0, -9.0), g_of(-6.0, 2.5, -9.0)
    g_s = gibbs_curve(1 / t0, gs_exact(t0), temps, hs, np.full(3, 1e-3), kB)
    g_l = gibbs_curve(1 / t0, gl_exact(t0), temps, hl, np.full(3, 1e-3), kB)
    assert g_s(0.75) == pytest.approx(gs_exact(0.75), abs=1e-10)
    assert crossing(g_s, g_l, 0.6, 0.8) == pytest.approx(0.7, abs=1e-8)
    assert math.isnan(crossing(g_s, g_l, 0.6, 0.65))


@pytest.mark.parametrize("args, words", [
    (["free-energy", "--t-guess", "0"], "--t-guess = 0.0"),
    (["free-energy", "--element", "Ar", "--n-cells", "3"], "not more than twice the cutoff"),
    (["free-energy", "--element", "Ar", "--t-high", "100"], "supercritical"),
    (["free-energy", "--spread", "0.5"], "--spread"),
    (["free-energy", "--potential", "/nonexistent.mtp", "--species", "Cu"], "no such potential file"),
])
def test_free_energy_command_bad_input(args, words, capsys, tmp_path):
    from flows.cli import main

    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "error:" in err and words in err and "Traceback" not in err


@pytest.mark.slow
def test_free_energy_flow_end_to_end(tmp_path):
    """`free_energy_melting` through Prefect's test server on LJ at P* = 0.002 (near the triple point), 256 atoms
    per phase and short runs: the plumbing (summary.json, free_energy.png, a crossing inside the sampled range near
    the published 0.694), not the precision. ~2 min on 2 cores."""
    import json

    from prefect.testing.utilities import prefect_test_harness

    from flows.free_energy import free_energy_melting
    from tasks.free_energy import FreeEnergySettings

    settings = FreeEnergySettings(pressure=0.002, cutoff_sigma=2.5, n_cells=4, n_npt=60, n_fl=40, n_liquid=40,
                                  n_lambda=6, n_density=6, n_beta=4, n_bootstrap=200)
    assert settings.t_guess == pytest.approx(0.694)
    with prefect_test_harness(server_startup_timeout=180):
        summary = free_energy_melting(settings, run_dir=str(tmp_path))
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["T_m"] == pytest.approx(summary["T_m"]) and 0.62 < saved["T_m"] < 0.78
    assert saved["ci"][0] < saved["T_m"] < saved["ci"][1] and saved["cpu_s"] > 0
    assert saved["solid"]["spring"] > 0 and len(saved["liquid"]["enthalpy"]) == 5
    assert (tmp_path / "free_energy.png").stat().st_size > 10_000
