"""The one-component system of the phase studies, its unit conversions, the HMC settings the phase runs share,
and its bulk fcc crystal at (T, P).

:class:`PhaseModel` is what the phase runs (:mod:`hmc_core.ladders`, :mod:`hmc_core.coexistence`,
:mod:`hmc_core.seeding`) need of a system; :class:`PhaseSystem` is Lennard-Jones in reduced units or a rare gas in
metal units, :class:`hmc_core.mtp_phase.MTPSystem` a fitted Moment Tensor Potential read from a ``.mtp`` file
(metal units). Temperatures in T* (LJ) or K, pressures in P* or bar (GPa where ``pressure_unit`` says so),
lengths in σ or Å, densities in 1/length³.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase.data import atomic_masses

from hmc_core.hmc import HMCConfig
from hmc_core.npt import NPTConfig, NPTSampler, run_npt_chain
from hmc_core.order import compute_order
from hmc_core.potentials.base import ForceField, Potential
from hmc_core.potentials.lennard_jones import RARE_GAS, LennardJones
from hmc_core.structures import lattice
from hmc_core.units import get_units


class PhaseModel:
    """A one-component system the phase runs can sample. Subclasses give ``units`` ("lj" or "metal"),
    ``element`` (a name), ``species_label`` (the species number its atoms carry), ``sigma`` (length scale: the
    fcc crystal at number density 1/σ³ is the starting crystal; 2^(1/6) σ is its nearest-neighbour distance),
    ``cutoff`` (interaction range, length units), ``mass`` (amu, or 1 in reduced units), :meth:`potential`,
    :meth:`default_dt`, :meth:`default_melt_temperature`, :meth:`liquid_density_guess` and :meth:`describe`."""

    units: str
    element: str

    def potential(self) -> Potential:  # pragma: no cover - abstract
        raise NotImplementedError

    def default_dt(self) -> float:  # pragma: no cover - abstract
        """Starting HMC time step in the system's time unit (τ or fs); the warm-up adapts it."""
        raise NotImplementedError

    def default_melt_temperature(self, temperature: float) -> float:  # pragma: no cover - abstract
        """The temperature that melts a crystal quickly when the study runs at ``temperature``."""
        raise NotImplementedError

    def liquid_density_guess(self, temperature: float, pressure: float, solid_density: float,
                             pressure_unit: str | None) -> float:  # pragma: no cover - abstract
        """A starting liquid number density (1/length³) at (T, P) given the crystal's."""
        raise NotImplementedError

    def describe(self) -> dict:  # pragma: no cover - abstract
        """netCDF/JSON attributes naming the potential (``element``, ``units``, ``cutoff``, ``potential``, …)."""
        raise NotImplementedError

    @property
    def is_lennard_jones(self) -> bool:
        """True for the analytic Lennard-Jones systems (published melting data apply)."""
        return False

    @property
    def default_pressure_unit(self) -> str:
        return "P*" if self.units == "lj" else "bar"

    @property
    def length_unit(self) -> str:
        return "σ" if self.units == "lj" else "Å"

    def force_field(self, n_atoms: int, cell) -> ForceField:
        """The potential bound to ``n_atoms`` atoms of this element in a periodic ``cell`` (3, 3)."""
        return ForceField(self.potential(), np.full(n_atoms, self.species_label, np.int32), cell,
                          (True, True, True), skin=0.3 * self.sigma)

    def hmc_settings(self, temperature: float, n_steps: int, n_warmup: int, dt: float | None = None) -> HMCConfig:
        """HMC settings of the phase runs: dt :meth:`default_dt` unless given, adapted towards 75 % acceptance."""
        dt = self.default_dt() if dt is None else dt
        return HMCConfig(temperature=temperature, dt=dt, n_steps=n_steps, units=self.units, n_warmup=n_warmup,
                         target_accept=0.75, jitter_steps=0.2, skin=0.3 * self.sigma)


@dataclass(frozen=True)
class PhaseSystem(PhaseModel):
    """A one-component system: ``element`` "LJ" (reduced units) or a rare gas "Ne", "Ar", "Kr", "Xe"
    (metal units, ε and σ from :data:`hmc_core.potentials.lennard_jones.RARE_GAS`).

    cutoff_sigma: LJ cutoff in σ. The pair energy is shifted to zero at the cutoff and the analytic tail
    correction is added: HMC trajectories then see a continuous energy. With a truncated but unshifted
    energy, every pair crossing r_c is an energy jump u(r_c) that the forces ignore; in a crystal whose
    seventh fcc shell sits at 2.97σ (ρσ³ = 1) this gave ΔH ≈ 25 ε per trajectory, collapsed the adapted
    step size and "glued" that shell inside r_c, keeping a 500-atom crystal solid at T* = 1.54, P* = 1.
    The shift leaves forces and the virial unchanged; the tail correction includes the mean-field value of
    the shift (:mod:`hmc_core.potentials.lennard_jones`), so the sampled pressure is that of the full
    potential to the accuracy of the tail correction (checked against JZG in tests/test_npt.py).

    tail_correction: False samples the truncated and shifted potential itself, without the tail and shift
    corrections: the model of ASE's ``LennardJones`` calculator (``ase:lj`` labels) and of any potential learned
    from it, which lacks the mean-field cohesion beyond the cutoff (about 3 K lower argon melting at 1 bar).
    """

    element: str = "LJ"
    cutoff_sigma: float = 3.0
    tail_correction: bool = True

    def __post_init__(self):
        if self.element != "LJ" and self.element not in RARE_GAS:
            raise ValueError(f"unknown element {self.element!r}; choose LJ (reduced units) or one of "
                             f"{', '.join(RARE_GAS)} (built-in Lennard-Jones parameters)")
        if not self.cutoff_sigma >= 2.0:
            raise ValueError(f"cutoff_sigma = {self.cutoff_sigma} is too short for phase studies; use ≥ 2.5")

    @property
    def units(self) -> str:
        return "lj" if self.element == "LJ" else "metal"

    @property
    def species_label(self) -> int:
        return 1 if self.element == "LJ" else RARE_GAS[self.element][0]

    @property
    def sigma(self) -> float:
        """σ in length units (1 or Å)."""
        return 1.0 if self.element == "LJ" else RARE_GAS[self.element][2]

    @property
    def epsilon_over_kB(self) -> float:
        """ε / k_B in temperature units (1 or K)."""
        return 1.0 if self.element == "LJ" else RARE_GAS[self.element][1]

    @property
    def mass(self) -> float:
        """Atomic mass (amu) in metal units, 1 in reduced units."""
        return 1.0 if self.units == "lj" else float(atomic_masses[self.species_label])

    def potential(self) -> Potential:
        if self.element == "LJ":
            return LennardJones(cutoff_sigma=self.cutoff_sigma, shift=True, tail=self.tail_correction)
        return LennardJones.rare_gas(self.element, cutoff_sigma=self.cutoff_sigma, shift=True,
                                     tail=self.tail_correction)

    @property
    def cutoff(self) -> float:
        """LJ cutoff in length units (σ or Å)."""
        return self.cutoff_sigma * self.sigma

    @property
    def is_lennard_jones(self) -> bool:
        return True

    def default_dt(self) -> float:
        """0.005 τ (in τ, or fs for a rare gas)."""
        return 0.005 * self.lj_time()

    def default_melt_temperature(self, temperature: float) -> float:
        """max(2 T, 2 ε/k_B): well above the LJ melting line at moderate pressures."""
        return max(2.0 * temperature, 2.0 * self.epsilon_over_kB)

    def liquid_density_guess(self, temperature: float, pressure: float, solid_density: float,
                             pressure_unit: str | None) -> float:
        """Liquid density at (T, P) from the JZG equation of state where it applies, else ρ_s / 1.13."""
        from hmc_core.lj_reference import jzg_density

        t_star, p_star = self.reduced_state(temperature, pressure, pressure_unit)
        try:
            return jzg_density(max(t_star, 0.7), p_star) / self.sigma**3
        except ValueError:
            return solid_density / 1.13

    def describe(self) -> dict:
        tail = "analytic tail correction" if self.tail_correction else "no tail correction (ASE's LennardJones)"
        return {"element": self.element, "units": self.units, "cutoff_sigma": self.cutoff_sigma,
                "potential_cutoff": self.cutoff, "tail_correction": int(self.tail_correction),
                "potential": f"LJ truncated at cutoff_sigma, shifted to zero there, {tail}"}

    def reduced_pressure_to_user(self, p_star: float) -> float:
        """P* → the user's pressure unit (P* itself, or bar)."""
        if self.element == "LJ":
            return p_star
        eps = self.epsilon_over_kB * get_units("metal").kB
        return p_star * eps / self.sigma**3 / get_units("metal").pressure_to_internal

    def reduced_state(self, temperature: float, pressure: float, pressure_unit: str | None) -> tuple[float, float]:
        """(T*, P*) of a state given in the system's units."""
        t_star = temperature / self.epsilon_over_kB
        if self.units == "lj":
            return t_star, pressure
        p_bar = NPTConfig(pressure=pressure, pressure_unit=pressure_unit).pressure_internal("metal")
        p_bar /= NPTConfig(pressure=1.0, pressure_unit="bar").pressure_internal("metal")
        return t_star, p_bar / self.reduced_pressure_to_user(1.0)

    def lj_time(self) -> float:
        """The LJ time unit τ = σ √(m/ε) in the system's time unit (1, or fs in metal units)."""
        if self.units == "lj":
            return 1.0
        units = get_units("metal")
        eps = self.epsilon_over_kB * units.kB
        return self.sigma * math.sqrt(self.mass / eps) / units.time_to_internal


def bulk_crystal(system: PhaseModel, temperature: float, pressure: float, n_cells: int | Sequence[int] = 5,
                 n_samples: int = 60, n_warmup: int = 30, seed: int = 0, pressure_unit: str | None = None,
                 n_steps: int = 20) -> tuple[float, np.ndarray, np.ndarray]:
    """A periodic fcc crystal (``n_cells`` cubic cells, one number or three) at (T, P) by isotropic NPT HMC:
    (mean number density over the second half (1/length³), final positions (N, 3), final cell (3, 3)); atoms
    in the order of :func:`hmc_core.structures.lattice`. Raises ValueError when the crystal melted (beyond
    superheating)."""
    pos, cell = lattice("fcc", n_cells, 1.0 / system.sigma**3)
    sampler = NPTSampler(system.force_field(len(pos), cell), system.hmc_settings(temperature, n_steps, n_warmup),
                         NPTConfig(pressure=pressure, pressure_unit=pressure_unit))
    res = run_npt_chain(sampler, pos, n_samples, seed=seed, save_every=n_samples,
                        analyse=lambda x, c: {"solid": float(compute_order(x, c, structures=False).solid.mean())})
    if res.analysis["solid"][-1] < 0.5:
        raise ValueError(f"the bulk fcc crystal melted at T = {temperature:g} (beyond its superheating limit), so it "
                         "gives no crystal density there; use lower temperatures or pass the crystal density")
    rho = float(np.mean(len(pos) / res.volume[n_samples // 2:]))
    return rho, res.state.hmc.positions.copy(), res.state.cell.copy()


def scan_temperatures(start: float, stop: float, n: int) -> list[float]:
    """``n`` equally spaced temperatures from ``start`` to ``stop`` (either order)."""
    if n < 1:
        raise ValueError(f"need ≥ 1 temperature, got {n}")
    return [round(float(t), 10) for t in np.linspace(start, stop, n)]
