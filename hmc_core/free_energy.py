"""Absolute free energies of a crystal and a liquid by thermodynamic integration on pesflow's HMC samplers, for any
:class:`hmc_core.potentials.base.Potential` (Lennard-Jones, MTP, ASE calculators).

Conventions. Free energies are per atom and in units of k_B T: ``βF/N``. The momentum integral is left out
(thermal wavelength Λ = 1 length unit): it is the same −3 ln Λ(T) for every phase of one element at one T, so it
cancels at coexistence, and with it the kinetic enthalpy 3/2 k_B T in the Gibbs–Helmholtz integrand (which then uses
the configurational enthalpy U + PV). Crystal atoms are distinguishable (one of N! equivalent basins), liquid atoms
are not (N! in the ideal term). Energies in the system's units (ε or eV), lengths σ or Å, temperatures T* or K.

Solid — Frenkel & Ladd, J. Chem. Phys. 81, 3188 (1984), with the centre of mass fixed (Polson, Trizac, Pronk &
Frenkel, J. Chem. Phys. 112, 5339 (2000); Frenkel & Smit, *Understanding Molecular Simulation*, 2nd ed., §10.2).
The Einstein crystal here is translation invariant, U_E = k/2 Σ |uᵢ − ū|², uᵢ the displacement from site i; its
configurational integral with the centre of mass held (δ(ū)) is derived in :func:`harmonic_free_energy`:

    Z_E^cm = N^{3/2} Πₘ (2π / (β λₘ))^{1/2}   over the 3N − 3 non-zero modes (all λₘ = k for an Einstein crystal),
    βF_s/N = βU₀/N + [−ln(V/N) − ln Z_E^cm]/N + β ΔF/N,   ΔF = ∫₀¹ ⟨U − U₀ − U_E⟩_λ dλ,

(the centre of mass ranges over one primitive cell V/N: lattice translations are permutations),

sampled on U_λ = λ (U − U₀) + (1 − λ) U_E (U₀ the static lattice energy; Gauss–Legendre nodes in x, λ = x⁴, because
the integrand rises steeply as λ → 0; see :func:`frenkel_ladd`). Sampling U_λ
with the free centre of mass gives the same averages as the constrained one, because U_λ is translation invariant.
The spring k = 3 k_B T / ⟨|u − ū|²⟩ from the crystal itself (Freitas, Asta & de Koning, Comput. Mater. Sci. 112,
333 (2016)).

Liquid — from the ideal gas along a supercritical isotherm T_hi, then along the isochore to T (no phase transition
on either path; e.g. Frenkel & Smit §7.1, Eqs. 7.1.3–7.1.4):

    βF_l/N (ρ, T_hi) = ln ρ − 1 + [ln N! − N ln N + N]/N + ∫₀^ρ (Z(ρ') − 1) dρ'/ρ',   Z = PV/(N k_B T),
    βF_l/N (ρ, T) = β_hi F_l/N (ρ, T_hi) + ∫_{β_hi}^{β} ⟨U⟩/N dβ'.

Both integrals by Gauss–Legendre quadrature over NVT HMC runs. The isotherm needs a potential that is sensible at
gas densities and a T_hi above the critical temperature (LJ: T_c ≈ 1.3 ε/k_B; a fitted MTP may not describe the
dilute gas: use the Lennard-Jones route to validate, and see :mod:`hmc_core.free_energy_melting` for the
crossing).

Errors: every node is a block-averaged mean with a standard error (:func:`hmc_core.npt.block_standard_error`);
the quadrature sums them in quadrature. Quadrature and finite-size errors are not included (stated per result).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaln

from hmc_core.hmc import HMCSampler, run_chain
from hmc_core.neighbors import NeighborList
from hmc_core.npt import block_standard_error
from hmc_core.phase_system import PhaseModel
from hmc_core.potentials.base import ForceField, Potential
from hmc_core.structures import minimum_image


@dataclass(frozen=True)
class Integral:
    """A thermodynamic integral: ``value`` ± ``standard_error`` (statistical only), the quadrature ``nodes``, the
    ``weights`` and the sampled ``means`` ± ``errors`` at the nodes (so a caller can resample them)."""

    value: float
    standard_error: float
    nodes: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    means: np.ndarray = field(repr=False)
    errors: np.ndarray = field(repr=False)

    @classmethod
    def from_nodes(cls, nodes, weights, means, errors) -> Integral:
        w, m, e = (np.asarray(a, float) for a in (weights, means, errors))
        return cls(float(w @ m), float(math.sqrt(float((w * e) @ (w * e)))), np.asarray(nodes, float), w, m, e)


def gauss_legendre(a: float, b: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes (n,) and weights (n,) on [a, b] (exact for polynomials of degree 2n − 1)."""
    if n < 1:
        raise ValueError(f"need ≥ 1 quadrature node, got {n}")
    x, w = np.polynomial.legendre.leggauss(n)
    return 0.5 * (b - a) * x + 0.5 * (a + b), 0.5 * (b - a) * w


def harmonic_free_energy(eigenvalues, kT: float, n_atoms: int, volume: float) -> float:
    """βF/N of a periodic harmonic crystal U = ½ uᵀ H u (displacements u, 3N), free centre of mass, Λ = 1.

    eigenvalues: (3N − 3,) the non-zero eigenvalues of H (energy/length²; the three zero modes are the
    translations). With ū = Σuᵢ/N held by δ(ū) per Cartesian direction, the translation mode q = √N ū gives
    δ(ū) = N^{1/2} δ(q), so Z^cm = N^{3/2} Πₘ (2π k_B T/λₘ)^{1/2}. The centre of mass then ranges over one primitive
    cell, V/N, not the box: a translation by a lattice vector is a permutation of the atoms over the sites, which
    the N! equivalent basins already count. So βF = −ln(V/N) − ln Z^cm (the ln(N/V) term of Polson et al. 2000 and
    Frenkel & Smit 2nd ed. §10.2.3). Raises ValueError for a wrong count or non-positive eigenvalues."""
    lam = np.asarray(eigenvalues, float)
    if lam.shape != (3 * n_atoms - 3,):
        raise ValueError(f"need the 3N − 3 = {3 * n_atoms - 3} non-zero eigenvalues, got {lam.shape}")
    if np.any(lam <= 0) or not (kT > 0 and volume > 0):
        raise ValueError("eigenvalues, kT and volume must be > 0")
    ln_z = 1.5 * math.log(n_atoms) + 0.5 * float(np.sum(np.log(2 * math.pi * kT / lam)))
    return (-math.log(volume / n_atoms) - ln_z) / n_atoms


def einstein_free_energy(spring: float, kT: float, n_atoms: int, volume: float) -> float:
    """βF/N of the translation-invariant Einstein crystal k/2 Σ|uᵢ − ū|² (all 3N − 3 modes at k; Λ = 1):
    −[ln(V/N) + (3/2) ln N + (3(N − 1)/2) ln(2π k_B T / k)] / N (:func:`harmonic_free_energy`)."""
    return harmonic_free_energy(np.full(3 * n_atoms - 3, float(spring)), kT, n_atoms, volume)


def ideal_gas_free_energy(n_atoms: int, volume: float) -> float:
    """βF/N of N indistinguishable ideal atoms in V with Λ = 1: (ln N! − N ln V)/N (exact, no Stirling)."""
    return (float(gammaln(n_atoms + 1)) - n_atoms * math.log(volume)) / n_atoms


class EinsteinCoupled(Potential):
    """U_λ = λ (U − U₀) + (1 − λ) U_E, U_E = k/2 Σ |uᵢ − ū|², uᵢ = minimum image of xᵢ − siteᵢ (Frenkel–Ladd path).

    base: the crystal's potential; sites (N, 3) and cell (3, 3) the lattice (length); spring k (energy/length²);
    lam λ in [0, 1]; u0 the static lattice energy U(sites). Remembers the last evaluation's ``delta`` = U − U₀ −
    U_E and its positions (``last_positions``) for the integrand. The Einstein part adds no virial (NVT only)."""

    def __init__(self, base: Potential, sites, cell, spring: float, lam: float, u0: float):
        if not 0 <= lam <= 1:
            raise ValueError(f"λ = {lam} must be in [0, 1]")
        if not spring > 0:
            raise ValueError(f"spring = {spring} must be > 0")
        self.base, self.sites, self.cell = base, np.asarray(sites, float), np.asarray(cell, float)
        self.inv = np.linalg.inv(self.cell)
        self.spring, self.lam, self.u0 = float(spring), float(lam), float(u0)
        self.cutoff, self.full_neighbor_list = base.cutoff, base.full_neighbor_list
        self.uses_neighbor_list, self.units = base.uses_neighbor_list, base.units
        self.delta, self.last_positions = float("nan"), None

    def prepare(self, species):
        return self.base.prepare(species)

    def einstein(self, positions) -> tuple[float, np.ndarray]:
        """U_E (energy) and its forces (N, 3); they sum to zero."""
        u = minimum_image(positions - self.sites, self.cell, self.inv)
        u -= u.mean(axis=0)
        return 0.5 * self.spring * float(np.sum(u * u)), -self.spring * u

    def compute(self, positions, cell, types, nlist: NeighborList):
        e, f, w = self.base.compute(positions, cell, types, nlist)
        ee, fe = self.einstein(positions)
        self.delta, self.last_positions = float(e) - self.u0 - ee, positions.copy()
        lam = self.lam
        return lam * (float(e) - self.u0) + (1 - lam) * ee, lam * f + (1 - lam) * fe, lam * w

    def describe(self) -> dict:
        return {"name": "EinsteinCoupled", "lambda": self.lam, "spring": self.spring, "base": self.base.describe()}


def nvt_sampler(system: PhaseModel, potential: Potential, n_atoms: int, cell, temperature: float, n_steps: int = 20,
                n_warmup: int = 30) -> HMCSampler:
    """NVT HMC on ``potential`` for ``n_atoms`` atoms of ``system``'s element in the periodic ``cell``."""
    ff = ForceField(potential, np.full(n_atoms, system.species_label, np.int32), cell, (True, True, True),
                    skin=0.3 * system.sigma)
    return HMCSampler(ff, system.hmc_settings(temperature, n_steps, n_warmup), masses=np.full(n_atoms, system.mass))


def einstein_spring(system: PhaseModel, sites, cell, temperature: float, n_samples: int = 60, seed: int = 0,
                    n_steps: int = 20, potential: Potential | None = None) -> float:
    """k = 3 k_B T / ⟨|uᵢ − ū|²⟩ of the crystal at (T, cell) by NVT HMC from its lattice ``sites`` (energy/length²;
    Freitas et al. 2016): the Einstein crystal then has the real crystal's mean-square displacement."""
    sites = np.asarray(sites, float)
    sampler = nvt_sampler(system, potential or system.potential(), len(sites), cell, temperature, n_steps)
    inv = np.linalg.inv(cell)

    def msd(x):
        u = minimum_image(x - sites, cell, inv)
        u -= u.mean(axis=0)
        return float(np.mean(np.sum(u * u, axis=1)))

    res = run_chain(sampler, sites, n_samples, seed=seed, monitor=msd)
    return 3 * sampler.config.kT / float(np.mean(res.monitor[len(res.monitor) // 3:]))


def frenkel_ladd(system: PhaseModel, sites, cell, temperature: float, spring: float | None = None,
                 n_lambda: int = 8, n_samples: int = 150, n_steps: int = 20, seed: int = 0,
                 potential: Potential | None = None, lambda_power: float = 4.0) -> dict:
    """βF/N of a crystal at (T, V) by Frenkel–Ladd integration from the Einstein crystal (module docstring).

    system: the element (mass, units, HMC settings); potential: the crystal's potential (default
    ``system.potential()``); sites (N, 3) the lattice sites (length) in the periodic cell (3, 3); spring k
    (energy/length²; None: :func:`einstein_spring`); n_lambda Gauss–Legendre nodes on λ ∈ [0, 1], each an NVT HMC
    chain of ``n_samples`` trajectories after a 30-trajectory warm-up, seeds from ``SeedSequence(seed)``.
    lambda_power: the nodes are Gauss–Legendre in x with λ = x^p (dλ = p x^(p−1) dx). The integrand of a real crystal
    rises steeply as λ → 0 (the Einstein crystal lets neighbours overlap; for LJ argon at 83 K it is 3.6 k_BT at
    λ ≈ 0, 2.2 at 0.03, 1.2 at 0.12), so the nodes are packed there; for that crystal 8 and 12 nodes with p = 4 gave
    ΔF = 0.592 ± 0.004 and 0.595 ± 0.003 k_BT per atom, 16 plain Gauss–Legendre nodes 0.595 ± 0.002.
    Returns {"free_energy": βF/N, "standard_error" (statistical, βF/N), "einstein": βF_E/N, "lattice_energy":
    βU₀/N, "delta": :class:`Integral` of βΔF/N over λ, "spring", "volume", "n_atoms", "temperature"}.
    """
    sites, cell = np.asarray(sites, float), np.asarray(cell, float)
    n = len(sites)
    base = potential or system.potential()
    streams = np.random.SeedSequence(seed).spawn(n_lambda + 1)
    if spring is None:
        spring = einstein_spring(system, sites, cell, temperature, seed=int(streams[-1].generate_state(1)[0]),
                                 n_steps=n_steps, potential=base)
    probe = ForceField(base, np.full(n, system.species_label, np.int32), cell, (True, True, True))
    u0 = probe.energy_forces(sites.copy())[0]
    kT = system.hmc_settings(temperature, n_steps, 0).kT
    if not lambda_power >= 1:
        raise ValueError(f"lambda_power = {lambda_power} must be ≥ 1")
    xs, wx = gauss_legendre(0.0, 1.0, n_lambda)
    lams, weights = xs**lambda_power, wx * lambda_power * xs ** (lambda_power - 1)
    means, errors = np.empty(n_lambda), np.empty(n_lambda)
    for k, lam in enumerate(lams):
        mix = EinsteinCoupled(base, sites, cell, spring, lam, u0)
        sampler = nvt_sampler(system, mix, n, cell, temperature, n_steps)
        last = {"value": float("nan")}

        def integrand(x, mix=mix, last=last):
            if mix.last_positions is not None and np.array_equal(x, mix.last_positions):
                last["value"] = mix.delta
            elif not math.isfinite(last["value"]):  # first sample after a rejection: evaluate once
                last["value"] = probe.energy_forces(x.copy())[0] - u0 - mix.einstein(x)[0]
            return last["value"]  # a rejected trajectory leaves the state, and its value, unchanged

        res = run_chain(sampler, sites.copy(), n_samples, seed=int(streams[k].generate_state(1)[0]),
                        monitor=integrand)
        du = res.monitor / (kT * n)
        means[k], errors[k] = float(np.mean(du)), block_standard_error(du)
    delta = Integral.from_nodes(lams, weights, means, errors)
    volume = abs(float(np.linalg.det(cell)))
    f_e = einstein_free_energy(spring, kT, n, volume)
    return {"free_energy": u0 / (kT * n) + f_e + delta.value, "standard_error": delta.standard_error,
            "einstein": f_e, "lattice_energy": u0 / (kT * n), "delta": delta, "spring": float(spring),
            "volume": volume, "n_atoms": n, "temperature": float(temperature)}


def liquid_free_energy(system: PhaseModel, positions, cell, temperature: float, t_high: float,
                       n_density: int = 8, n_beta: int = 5, n_samples: int = 150, n_steps: int = 20,
                       seed: int = 0, potential: Potential | None = None) -> dict:
    """βF/N of a liquid of N atoms in ``cell`` at ``temperature`` from the ideal gas (module docstring): an
    isotherm at ``t_high`` (supercritical) from ρ = 0 to ρ = N/V over ``n_density`` Gauss–Legendre nodes, then the
    isochore from β_hi to β over ``n_beta`` nodes; each node an NVT HMC chain of ``n_samples`` trajectories started
    from ``positions`` scaled to the node's box.

    Returns {"free_energy", "standard_error", "ideal", "isotherm": :class:`Integral` of ∫(Z − 1)/ρ dρ,
    "isochore": :class:`Integral` of ∫⟨U⟩/N dβ (β in 1/energy), "density", "volume", "n_atoms", "temperature",
    "t_high"}. Raises ValueError unless t_high > temperature."""
    if not t_high > temperature:
        raise ValueError(f"t_high = {t_high} must exceed the temperature {temperature} (a supercritical isotherm)")
    x, cell = np.asarray(positions, float), np.asarray(cell, float)
    n = len(x)
    base = potential or system.potential()
    volume = abs(float(np.linalg.det(cell)))
    rho = n / volume
    streams = np.random.SeedSequence(seed).spawn(n_density + n_beta)
    kT_hi = system.hmc_settings(t_high, n_steps, 0).kT
    rhos, w_rho = gauss_legendre(0.0, rho, n_density)
    z_means, z_errs = np.empty(n_density), np.empty(n_density)
    for k, r in enumerate(rhos):
        s = (rho / r) ** (1 / 3)
        sampler = nvt_sampler(system, base, n, cell * s, t_high, n_steps)
        res = run_chain(sampler, x * s, n_samples, seed=int(streams[k].generate_state(1)[0]))
        y = (res.pressure / (r * kT_hi) - 1.0) / r  # (Z − 1)/ρ
        z_means[k], z_errs[k] = float(np.mean(y)), block_standard_error(y)
    isotherm = Integral.from_nodes(rhos, w_rho, z_means, z_errs)
    kT = system.hmc_settings(temperature, n_steps, 0).kT
    betas, w_beta = gauss_legendre(1.0 / kT_hi, 1.0 / kT, n_beta)
    u_means, u_errs = np.empty(n_beta), np.empty(n_beta)
    kB = kT / temperature
    for k, b in enumerate(betas):
        sampler = nvt_sampler(system, base, n, cell, 1.0 / (b * kB), n_steps)
        res = run_chain(sampler, x, n_samples, seed=int(streams[n_density + k].generate_state(1)[0]))
        u = res.potential_energy / n
        u_means[k], u_errs[k] = float(np.mean(u)), block_standard_error(u)
    isochore = Integral.from_nodes(betas, w_beta, u_means, u_errs)
    ideal = ideal_gas_free_energy(n, volume)
    value = ideal + isotherm.value + isochore.value
    return {"free_energy": value, "standard_error": math.hypot(isotherm.standard_error, isochore.standard_error),
            "ideal": ideal, "isotherm": isotherm, "isochore": isochore, "density": rho, "volume": volume,
            "n_atoms": n, "temperature": float(temperature), "t_high": float(t_high)}
