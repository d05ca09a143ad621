"""Unadjusted samplers: fast exploration without a Metropolis test (an explicit, documented choice).

Two options, both biased by the finite time step (the bias in ⟨U⟩ versus dt is measured by
``bench/unadjusted_bias.py``; see its table before relying on averages):

* **Unadjusted HMC**: ``HMCConfig(metropolis=False)`` keeps every finite trajectory end point. Each
  trajectory still refreshes momenta from the exact Maxwell–Boltzmann distribution, but the
  integration error is never corrected, so averages carry an O(dt²) bias (velocity Verlet).
* **Langevin dynamics, BAOAB splitting** (Leimkuhler & Matthews 2013, Appl. Math. Res. Express 2013, 34):
  B: p += ½dt F; A: x += ½dt M⁻¹p; O: p ← c p + √((1 − c²) k_B T M) ξ with c = exp(−γ dt);
  A: x += ½dt M⁻¹p; B: p += ½dt F (new force). One force evaluation per step. Its configurational
  bias is O(dt²) with a small constant and vanishes for harmonic potentials (any stable dt), which
  the tests check.

Use them to explore (e.g. to collect candidate structures for labeling) where exact Boltzmann
weights are not needed; use Metropolis-adjusted HMC (the default) for thermodynamic averages.
Units as in :mod:`hmc_core.hmc`: ``units="metal"`` (K, fs, amu, eV) or "lj" (reduced); γ in 1/time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hmc_core.hmc import default_masses, expand_inverse_mass
from hmc_core.integrators import drift, kick, kinetic_energy
from hmc_core.potentials.base import ForceField
from hmc_core.units import get_units


@dataclass(frozen=True)
class LangevinConfig:
    """temperature: K or T*; dt: fs or τ; friction γ: 1/fs or 1/τ; record_every: steps between records."""

    temperature: float
    dt: float
    friction: float = 0.01
    units: str = "metal"
    record_every: int = 10

    def __post_init__(self):
        get_units(self.units)
        for ok, name, why in [(self.temperature > 0, "temperature", "must be > 0"), (self.dt > 0, "dt", "must be > 0"),
                              (self.friction > 0, "friction", "must be > 0"),
                              (self.record_every >= 1, "record_every", "must be ≥ 1")]:
            if not (ok and np.isfinite(getattr(self, name))):
                raise ValueError(f"LangevinConfig.{name} = {getattr(self, name)!r} {why}")

    @property
    def kT(self) -> float:
        return get_units(self.units).kB * self.temperature


@dataclass
class LangevinResult:
    """Recorded every ``record_every`` steps: potential and kinetic energy, positions (frames)."""

    potential_energy: np.ndarray
    kinetic_energy: np.ndarray
    frames: np.ndarray
    force_evaluations: int
    positions: np.ndarray
    momenta: np.ndarray


def run_langevin(ff: ForceField, positions, config: LangevinConfig, n_steps: int, seed: int = 0, masses=None,
                 momenta=None, save_frames: bool = True) -> LangevinResult:
    """BAOAB Langevin dynamics for ``n_steps`` steps from ``positions`` (N, 3); see the module docstring."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be ≥ 1, got {n_steps}")
    rng = np.random.default_rng(seed)
    units = get_units(config.units)
    inv_mass = expand_inverse_mass(default_masses(ff.species, config.units) if masses is None else masses,
                                   ff.n_atoms)
    sqrt_mass_kT = np.sqrt(config.kT / inv_mass)
    dt = config.dt * units.time_to_internal
    gamma = config.friction / units.time_to_internal
    c = math.exp(-gamma * dt)
    noise = math.sqrt(1.0 - c * c)
    x = np.array(positions, dtype=np.float64).reshape(ff.n_atoms, 3)
    p = rng.standard_normal(x.shape) * sqrt_mass_kT if momenta is None else np.array(momenta, dtype=np.float64)
    n0 = ff.n_evaluations
    energy, forces = ff(x)
    u_rec, k_rec, frames = [], [], []
    for step in range(1, n_steps + 1):
        kick(p, forces, 0.5 * dt)
        drift(x, p, inv_mass, 0.5 * dt)
        p = c * p + noise * sqrt_mass_kT * rng.standard_normal(p.shape)
        drift(x, p, inv_mass, 0.5 * dt)
        energy, forces = ff(x)
        kick(p, forces, 0.5 * dt)
        if not np.isfinite(energy):
            raise FloatingPointError(f"Langevin dynamics blew up at step {step} (dt = {config.dt} too large?)")
        if step % config.record_every == 0:
            u_rec.append(energy)
            k_rec.append(kinetic_energy(p, inv_mass))
            if save_frames:
                frames.append(x.copy())
    return LangevinResult(np.array(u_rec), np.array(k_rec), np.array(frames), ff.n_evaluations - n0, x, p)
