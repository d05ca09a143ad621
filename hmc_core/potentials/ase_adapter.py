"""Any ASE calculator as a pesflow potential, and a pesflow force field as an ASE calculator.

:class:`AseCalculatorPotential` lets the HMC engine sample with any ASE calculator (EMT, tblite's
GFN2-xTB, PySCF through ASE, ASE's Lennard-Jones, …): the calculator sees an ``ase.Atoms`` whose
positions, cell and pbc follow the sampled configuration. ASE units are eV and Å, so the potential is
"metal" unless the numbers are known to be reduced (e.g. ASE's Lennard-Jones with σ = ε = 1: pass
``units="lj"``). The virial is −σ·V from the calculator's stress for cells periodic in all three
directions (NaN if the calculator has no stress). Calculator failures (e.g. an SCF that does not
converge) become a NaN energy, which HMC treats as a rejection.

:class:`ForceFieldCalculator` is the reverse: an ASE calculator backed by a pesflow ForceField, so
ASE's dynamics (e.g. ``ase.md.langevin.Langevin``) run on exactly the same energy model and count
force evaluations the same way (used by ``bench/hmc_vs_md.py``).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import CalculationFailed, Calculator, PropertyNotImplementedError, all_changes

from hmc_core.neighbors import NeighborList
from hmc_core.potentials.base import ForceField, Potential, PotentialError
from hmc_core.units import get_units


class AseCalculatorPotential(Potential):
    """Potential backed by an ASE calculator ``calc`` (energy eV, forces eV/Å, stress eV/Å³).

    ``failures_as_rejections``: turn :class:`CalculationFailed` / ``RuntimeError`` from the calculator
    into a NaN energy (a rejected HMC trajectory) instead of an exception.
    """

    cutoff = 1e-3  # the calculator handles its own neighbours; the pesflow list stays (nearly) empty
    full_neighbor_list = False

    def __init__(self, calc: Calculator, units: str = "metal", failures_as_rejections: bool = True):
        if not hasattr(calc, "get_potential_energy") or not hasattr(calc, "get_forces"):
            raise PotentialError(f"{type(calc).__name__} is not an ASE calculator (needs get_potential_energy, "
                                 "get_forces)")
        get_units(units)
        self.calc, self.units, self.failures_as_rejections = calc, units, bool(failures_as_rejections)
        self.atoms: Atoms | None = None
        self.n_calls = 0

    def prepare(self, species: np.ndarray) -> np.ndarray:
        species = np.ascontiguousarray(species, dtype=np.int32)
        if self.units == "metal" and (np.any(species < 1) or np.any(species > 118)):
            raise PotentialError("species must be atomic numbers 1–118 for an ASE calculator, "
                                 f"got {np.unique(species).tolist()}")
        self.atoms = None
        return species

    def _atoms_for(self, positions, cell, numbers, pbc) -> Atoms:
        atoms = self.atoms
        if atoms is None or len(atoms) != len(numbers) or np.any(atoms.numbers != numbers):
            atoms = Atoms(numbers=np.maximum(numbers, 1), positions=positions, cell=cell, pbc=pbc)
            atoms.calc = self.calc
            self.atoms = atoms
        else:
            atoms.positions = positions
            if not np.array_equal(atoms.cell.array, cell) or not np.array_equal(atoms.pbc, pbc):
                atoms.cell = cell
                atoms.pbc = pbc
        return atoms

    def compute(self, positions, cell, types, nlist: NeighborList):
        pbc = np.asarray(nlist.pbc, bool) if nlist.reference is not None else np.zeros(3, bool)
        atoms = self._atoms_for(positions, cell, types, pbc)
        self.n_calls += 1
        try:
            energy = float(atoms.get_potential_energy())
            forces = np.array(atoms.get_forces(), dtype=np.float64)
        except (CalculationFailed, RuntimeError):
            if not self.failures_as_rejections:
                raise
            return float("nan"), np.zeros_like(positions), np.zeros((3, 3))
        virial = np.zeros((3, 3))
        if pbc.all():
            try:
                s = atoms.get_stress(voigt=False)
                virial = -np.asarray(s) * abs(np.linalg.det(cell))
            except PropertyNotImplementedError:
                virial = np.full((3, 3), np.nan)
        return energy, forces, virial

    def describe(self) -> dict:
        return {"name": "AseCalculatorPotential", "calculator": type(self.calc).__name__, "units": self.units,
                "parameters": str(getattr(self.calc, "parameters", {}))}


class ForceFieldCalculator(Calculator):
    """ASE calculator evaluating a pesflow :class:`ForceField` (positions of the Atoms in its length unit)."""

    implemented_properties = ["energy", "forces", "free_energy"]

    def __init__(self, forcefield: ForceField, **kwargs):
        super().__init__(**kwargs)
        self.ff = forcefield

    def check_state(self, atoms, tol=1e-15):
        """Exact comparison of positions, numbers, cell and pbc (ASE's default ``isclose`` costs ~1 ms here)."""
        old = self.atoms
        if old is None or len(old) != len(atoms):
            return list(all_changes)
        same = (np.array_equal(old.positions, atoms.positions) and np.array_equal(old.numbers, atoms.numbers)
                and np.array_equal(old.cell.array, atoms.cell.array) and np.array_equal(old.pbc, atoms.pbc))
        return [] if same else ["positions", "numbers", "cell", "pbc"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        x = np.array(self.atoms.positions, dtype=np.float64)
        energy, forces = self.ff.energy_forces(x)
        self.results = {"energy": energy, "free_energy": energy, "forces": np.array(forces)}
