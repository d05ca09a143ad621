"""ASE calculator for a pesflow :class:`~hmc_core.mtp.potential.MTP` (energy, free energy, site energies,
forces, stress), so that any ASE workflow (relaxations, MD, phonons, elastic constants) can use a fitted MTP.

    from hmc_core.mtp import read_mtp
    from hmc_core.mtp.calculator import MTPCalculator
    atoms.calc = MTPCalculator(read_mtp("pot.mtp", species=[42]))

Units: eV, eV/Å, stress in eV/Å³ (ASE sign convention, Voigt xx yy zz yz xz xy; only for 3D-periodic cells).
The neighbour list is kept between calls and rebuilt only when atoms moved more than half the skin.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from hmc_core.mtp.potential import MTP
from hmc_core.potentials.base import ForceField


class MTPCalculator(Calculator):
    """ASE calculator wrapping an :class:`MTP` (``skin`` Å for the Verlet list)."""

    implemented_properties = ("energy", "free_energy", "energies", "forces", "stress")

    def __init__(self, mtp: MTP, skin: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        self.mtp = mtp
        self.skin = float(skin)
        self._ff = None
        self._key = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms
        key = (tuple(a.numbers), tuple(bool(p) for p in a.pbc))
        if self._ff is None or key != self._key:
            self._ff = ForceField(self.mtp, a.numbers, a.cell[:], a.pbc, skin=self.skin)
            self._key = key
        ff = self._ff
        cell = np.array(a.cell[:], dtype=np.float64)
        if not np.array_equal(cell, ff.cell):
            ff.set_cell(cell)
        x = np.array(a.positions, dtype=np.float64)
        ff.nlist.update(x, ff.cell, ff.pbc)
        energies, forces, virial = self.mtp.compute_site_energies(x, ff.cell, ff.types, ff.nlist)
        energy = float(energies.sum())
        self.results = {"energy": energy, "free_energy": energy, "energies": energies, "forces": forces}
        if a.pbc.all():
            s = -0.5 * (virial + virial.T) / abs(np.linalg.det(cell))
            self.results["stress"] = s[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
