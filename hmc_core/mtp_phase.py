"""A fitted Moment Tensor Potential as the one-component system of the phase studies (metal units).

:class:`MTPSystem` reads an MLIP ``.mtp`` file (:func:`hmc_core.mtp.read_mtp`) and gives the phase runs
(:mod:`hmc_core.ladders`, :mod:`hmc_core.coexistence`, :mod:`hmc_core.seeding`) what
:class:`hmc_core.phase_system.PhaseModel` asks for: eV, Å, K, amu, fs; pressures in bar (GPa where
``pressure_unit`` says so). The starting crystal is fcc with ``lattice_constant`` (Å): given by the user or
from :func:`relaxed_lattice_constant` (the minimum of the potential's energy per atom of a perfect fcc crystal at
0 K, found by a scan and a golden-section refinement; zero pressure, no thermal expansion — the NPT runs relax
the cell at (T, P) from there). NPT cell moves are Monte Carlo moves on the energy; the MTP's virial is checked
against the energy under strain in tests/test_mtp_evaluate.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.data import atomic_masses, chemical_symbols

from hmc_core.mtp.potential import MTP
from hmc_core.phase_system import PhaseModel
from hmc_core.structures import lattice

#: the starting HMC time step with an MTP (fs); the warm-up adapts it towards 75 % acceptance
MTP_DT_FS = 1.0
#: crystal / liquid density ratio of the starting liquid half (close-packed metals expand ~4–6 % on melting)
LIQUID_EXPANSION = 1.05
#: nearest-neighbour distance of fcc at number density 1/σ³ is 2^(1/6) σ, its cubic lattice constant 4^(1/3) σ
FCC_A_PER_SIGMA = 4.0 ** (1.0 / 3.0)


def relaxed_lattice_constant(mtp: MTP, atomic_number: int, n_grid: int = 41) -> float:
    """The cubic fcc lattice constant (Å) at the lowest interior minimum of the MTP's energy per atom of a
    perfect 2 × 2 × 2-cell fcc crystal (32 atoms, periodic), nearest-neighbour distances scanned on ``n_grid``
    points from max(min_dist, 0.3 max_dist) to 0.9 max_dist, then refined by golden sections to 1e-4 Å.

    Raises ValueError when the energy has no minimum inside the scan (a potential that collapses or never
    binds there); give the lattice constant instead."""
    z = int(atomic_number)

    def energy(a: float) -> float:
        pos, cell = lattice("fcc", 2, 4.0 / a**3)
        e = mtp.evaluate(pos, np.full(len(pos), z), cell, (True, True, True))["energy"] / len(pos)
        return e if np.isfinite(e) else math.inf

    lo = max(mtp.min_dist, 0.3 * mtp.max_dist) * math.sqrt(2.0)
    hi = 0.9 * mtp.max_dist * math.sqrt(2.0)
    grid = np.linspace(lo, hi, n_grid)
    e = np.array([energy(a) for a in grid])
    interior = [k for k in range(1, n_grid - 1) if e[k] < e[k - 1] and e[k] <= e[k + 1]]
    if not interior:
        raise ValueError(f"the MTP's fcc energy has no minimum between lattice constants {lo:.3f} and {hi:.3f} Å "
                         "(it collapses or does not bind there); give the lattice constant (--lattice-constant)")
    k = min(interior, key=lambda i: e[i])
    a, b = grid[k - 1], grid[k + 1]
    g = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - g * (b - a), a + g * (b - a)
    ec, ed = energy(c), energy(d)
    while b - a > 1e-4:
        if ec < ed:
            b, d, ed = d, c, ec
            c = b - g * (b - a)
            ec = energy(c)
        else:
            a, c, ec = c, d, ed
            d = a + g * (b - a)
            ed = energy(d)
    return round(0.5 * (a + b), 5)


@dataclass(frozen=True)
class MTPSystem(PhaseModel):
    """One element sampled with a fitted MTP (metal units: eV, Å, K, bar; fs time steps).

    path: the ``.mtp`` file. species: atomic numbers of the file's species indices 0, 1, … (None: from a
    pesflow ``potential_tag``); the file must have exactly one species (the phase studies are one-component).
    lattice_constant: cubic fcc lattice constant of the starting crystal (Å; None: :func:`relaxed_lattice_constant`,
    computed once here). Moves that bring two atoms closer than the file's ``min_dist`` are rejected (energy NaN),
    not extrapolated. Raises ValueError (or :class:`hmc_core.mtp.MTPFileError`) naming the file for a missing,
    malformed or multi-species file and for a lattice constant that is not positive or the relaxation fails.
    """

    path: str
    species: tuple[int, ...] | None = None
    lattice_constant: float | None = None
    mtp: MTP = field(init=False, repr=False, compare=False)
    lattice_constant_source: str = field(init=False, compare=False, default="given")

    def __post_init__(self):
        from hmc_core.mtp.io import read_mtp

        path = Path(self.path)
        if not path.is_file():
            raise ValueError(f"no such potential file: {path}")
        species = None if self.species is None else tuple(int(v) for v in self.species)
        mtp = read_mtp(path, species=species, below_min_dist="nan")
        if mtp.n_species != 1:
            raise ValueError(f"{path} has {mtp.n_species} species; the phase studies are one-component, give an "
                             "MTP fitted to one element")
        object.__setattr__(self, "species", tuple(mtp.species))
        object.__setattr__(self, "mtp", mtp)
        if self.lattice_constant is None:
            try:
                a = relaxed_lattice_constant(mtp, mtp.species[0])
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
            object.__setattr__(self, "lattice_constant", a)
            object.__setattr__(self, "lattice_constant_source", "relaxed (fcc energy minimum at 0 K)")
        elif not (math.isfinite(self.lattice_constant) and self.lattice_constant > 0):
            raise ValueError(f"lattice constant {self.lattice_constant} Å must be a positive number")

    units = "metal"

    @property
    def species_label(self) -> int:
        return int(self.mtp.species[0])

    @property
    def element(self) -> str:  # type: ignore[override]
        return chemical_symbols[self.species_label]

    @property
    def sigma(self) -> float:
        """Length scale (Å) whose fcc crystal at density 1/σ³ has the lattice constant: a / 4^(1/3)."""
        return float(self.lattice_constant) / FCC_A_PER_SIGMA

    @property
    def cutoff(self) -> float:
        """The MTP's ``max_dist`` (Å)."""
        return self.mtp.max_dist

    @property
    def mass(self) -> float:
        return float(atomic_masses[self.species_label])

    def potential(self) -> MTP:
        """A copy of the MTP (one per force field: runs in parallel threads share no mutable state)."""
        return self.mtp.copy()

    def default_dt(self) -> float:
        return MTP_DT_FS

    def default_melt_temperature(self, temperature: float) -> float:
        """2 T (an MTP has no published melting line to start from)."""
        return 2.0 * temperature

    def liquid_density_guess(self, temperature: float, pressure: float, solid_density: float,
                             pressure_unit: str | None) -> float:
        """ρ_s / :data:`LIQUID_EXPANSION` (the two-phase box relaxes L_z to the pressure afterwards)."""
        return solid_density / LIQUID_EXPANSION

    def describe(self) -> dict:
        return {"element": self.element, "units": self.units, "potential_cutoff": self.cutoff,
                "potential": f"MTP level {self.mtp.basis.level} from {Path(self.path).name} "
                             f"(species {self.element}, min_dist {self.mtp.min_dist:g} Å, max_dist {self.cutoff:g} Å)",
                "potential_file": str(Path(self.path).resolve()), "lattice_constant": float(self.lattice_constant),
                "lattice_constant_source": self.lattice_constant_source}
