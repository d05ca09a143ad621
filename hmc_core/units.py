"""Unit systems used by the samplers.

Two systems exist:

* ``metal``: length Å, energy eV, mass amu, temperature K, time fs at the user edge.
  Internally time is in ASE's unit Å·sqrt(amu/eV) (≈ 10.18 fs) so that m·v² is in eV.
* ``lj``: reduced Lennard-Jones units (σ = ε = m = k_B = 1); time in τ = σ·sqrt(m/ε).

Pressure at the user edge: bar or GPa for ``metal`` (internally eV/Å³), P* for ``lj``.
"""

from __future__ import annotations

from dataclasses import dataclass

EV_PER_ANGSTROM3_IN_GPA = 160.21766208  # 1 eV/Å³ = 160.2 GPa
EV_PER_ANGSTROM3_IN_BAR = EV_PER_ANGSTROM3_IN_GPA * 1.0e4
FS_IN_ASE_TIME = 0.09822694788464063  # 1 fs in Å·sqrt(amu/eV) (= ase.units.fs)
HARTREE_IN_EV = 27.211386245988  # CODATA 2018 (same as pyscf.data.nist.HARTREE2EV)
BOHR_IN_ANGSTROM = 0.52917721090380  # CODATA 2018


@dataclass(frozen=True)
class UnitSystem:
    """Conversion factors of one unit system.

    ``kB``: Boltzmann constant in energy units per temperature unit.
    ``time_to_internal``: multiply a user time step by this to get internal time.
    ``pressure_to_internal``: multiply a user pressure by this to get energy/length³.
    """

    name: str
    kB: float
    time_to_internal: float
    pressure_to_internal: float
    energy: str
    length: str
    time: str
    temperature: str
    pressure: str


METAL = UnitSystem(
    name="metal",
    kB=8.617333262e-5,
    time_to_internal=FS_IN_ASE_TIME,
    pressure_to_internal=1.0 / EV_PER_ANGSTROM3_IN_BAR,
    energy="eV",
    length="Å",
    time="fs",
    temperature="K",
    pressure="bar",
)
LJ = UnitSystem(
    name="lj",
    kB=1.0,
    time_to_internal=1.0,
    pressure_to_internal=1.0,
    energy="ε",
    length="σ",
    time="τ",
    temperature="ε/k_B",
    pressure="ε/σ³",
)

UNIT_SYSTEMS = {"metal": METAL, "lj": LJ}


def get_units(name: str | UnitSystem) -> UnitSystem:
    """Return the unit system called ``name`` ("metal" or "lj")."""
    if isinstance(name, UnitSystem):
        return name
    try:
        return UNIT_SYSTEMS[name]
    except KeyError:
        raise ValueError(f"unknown unit system {name!r}; choose one of {sorted(UNIT_SYSTEMS)}") from None


PRESSURE_IN_BAR = {"bar": 1.0, "GPa": 1.0e4, "kbar": 1.0e3, "Pa": 1.0e-5, "atm": 1.01325}


def pressure_in_bar(value: float, unit: str, reduced: bool = False) -> float:
    """A user's pressure in bar (``metal`` units), or unchanged in P* when ``reduced`` (LJ units, where only
    ``unit`` "P*" — or the default "bar", read as P* — makes sense). ValueError names a unit that does not fit."""
    if reduced:
        if unit not in ("P*", "bar"):
            raise ValueError(f"pressure unit {unit!r} does not apply to reduced LJ units; give P* (the default)")
        return float(value)
    if unit not in PRESSURE_IN_BAR:
        raise ValueError(f"unknown pressure unit {unit!r}; choose one of {', '.join(PRESSURE_IN_BAR)}")
    return float(value) * PRESSURE_IN_BAR[unit]
