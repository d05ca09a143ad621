"""One system of a campaign (a ``[system]`` table, or one entry of ``[[system]]``): what is learned, how its
labeled starting and test sets are made, and at which temperatures it is explored.

Sources (exactly one):

* ``structure = "file"``: any ASE-readable file (periodic or not; relative paths from the config's folder);
* ``builtin = "H2O"`` (any ASE G2 molecule), ``"water-dimer"``, ``"ar13"``: the open-boundary molecules;
* ``builtin = "fcc" | "hcp" | "bcc"``: a periodic crystal of ``element`` — ``repeat`` unit cells per direction
  (cubic cells of 4 (fcc) / 2 (bcc) atoms; orthohexagonal cells of 4 atoms for hcp, ideal c/a) at
  ``lattice_constant`` (Å: the cubic edge for fcc/bcc, a for hcp) or number ``density`` (atoms/Å³); neither:
  the nearest-neighbour distance of the element's ASE reference crystal;
* ``builtin = "liquid"``: a melted crystal (``lattice``, default fcc, built as above) — see
  :func:`flows.systems.liquid_box`;
* ``builtin = "cluster"``: ``n_atoms`` atoms of ``element`` (open boundary): a Mackay icosahedron for 13, 55,
  147, 309, 561 atoms, else the fcc sites nearest a central site; nearest neighbours as for an fcc crystal of
  that ``lattice_constant``/``density``.

Exploration: ``temperatures`` (K; default the ``[hmc]`` temperatures), one chain per (start, temperature);
``pressure`` (bar, 0 to 10⁷): the system's chains sample the NPT ensemble at that pressure (HMC at fixed cell
interleaved with isotropic cell-volume moves, :mod:`hmc_core.npt` via :func:`tasks.explore.run_explore`), so
explored frames carry their own cells; without it a periodic system is explored at fixed cell (NVT). Only for
cells periodic in x, y and z: refused here for the open-boundary builtins (molecules, clusters), and by
:func:`flows.preflight.check_structure` for a structure file that is not fully periodic.
Every key is checked here, on loading, with an error naming the key, the value and what is allowed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CRYSTALS = ("fcc", "hcp", "bcc")
#: generated (element) builtins; the other builtins are molecules (flows.systems.builtin_system)
GENERATED = (*CRYSTALS, "liquid", "cluster")
MAX_GENERATED_ATOMS = 2000
#: the largest exploration pressure (bar): 10⁷ bar = 1 TPa (as :data:`tasks.explore.MAX_PRESSURE_BAR`)
MAX_PRESSURE_BAR = 1.0e7
#: builtins with a cell periodic in x, y and z (the others are open-boundary molecules and clusters)
PERIODIC_BUILTINS = (*CRYSTALS, "liquid")

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Temperature = Annotated[float, Field(gt=0, le=1e5, allow_inf_nan=False)]


class SystemConfig(BaseModel):
    """What is learned: ``builtin`` or ``structure`` (see the module docstring), its ``name`` (default: the
    builtin, ``<builtin>-<element>`` for generated ones, or the structure file's stem).

    The starting set: ``n_start`` configurations made by Gaussian random displacements of standard deviation
    ``rattle`` (Å) of the structure(s) (``species``: the elements of an MLIP ``.cfg`` file's atom types, type 0
    first), rejecting any with two atoms closer than ``min_distance`` (Å);
    ``n_test`` more make the held-out test set (0 = none), displaced by ``test_rattle`` (Å; default ``rattle``;
    larger values test the potential beyond the starting set's reach).

    Exploration: ``temperatures`` (K) and ``pressure`` (bar; None = fixed cell), see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
    builtin: str | None = "H2O"
    structure: str | None = None
    index: str = ":"
    species: list[str] | None = None
    element: str | None = None
    lattice: Literal["fcc", "hcp", "bcc"] | None = None
    lattice_constant: PositiveFloat | None = None
    density: PositiveFloat | None = None
    repeat: tuple[Annotated[int, Field(ge=1, le=20)], Annotated[int, Field(ge=1, le=20)],
                  Annotated[int, Field(ge=1, le=20)]] | None = None
    n_atoms: int | None = Field(None, ge=2, le=MAX_GENERATED_ATOMS)
    temperatures: tuple[Temperature, ...] | None = Field(None, min_length=1)
    pressure: float | None = Field(None, ge=0, le=MAX_PRESSURE_BAR, allow_inf_nan=False)
    n_start: int = Field(8, ge=2, le=10_000)
    n_test: int = Field(8, ge=0, le=10_000)
    rattle: float = Field(0.08, ge=0, le=1.0, allow_inf_nan=False)
    test_rattle: float | None = Field(None, ge=0, le=1.0, allow_inf_nan=False)
    min_distance: PositiveFloat = 0.6

    @model_validator(mode="before")
    @classmethod
    def _one_source(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("structure") and "builtin" not in data:
            data = {**data, "builtin": None}
        return data

    @field_validator("repeat", mode="before")
    @classmethod
    def _three_counts(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) != 3:
            raise ValueError("give three unit-cell counts [nx, ny, nz], e.g. [2, 2, 2]")
        return value

    @model_validator(mode="after")
    def _check_source(self) -> SystemConfig:
        if (self.builtin is None) == (self.structure is None):
            raise ValueError("give exactly one of `builtin` (e.g. \"H2O\") or `structure` (a file path)")
        if self.pressure is not None and self.builtin is not None and self.builtin not in PERIODIC_BUILTINS:
            raise ValueError(f"pressure = {self.pressure!r} bar needs a periodic cell (NPT cell moves), but builtin "
                             f"= {self.builtin!r} has open boundaries; remove `pressure` or use a periodic system "
                             f"({', '.join(PERIODIC_BUILTINS)} or a periodic structure file)")
        kind = self.builtin if self.builtin in GENERATED else None
        used = {"element": kind, "lattice_constant": kind, "density": kind,
                "repeat": kind in (*CRYSTALS, "liquid"), "lattice": kind == "liquid", "n_atoms": kind == "cluster"}
        for key, ok in used.items():
            if getattr(self, key) is not None and not ok:
                where = {"repeat": "fcc, hcp, bcc and liquid", "lattice": "liquid", "n_atoms": "cluster"}.get(
                    key, ", ".join(GENERATED))
                raise ValueError(f"`{key}` is only used with builtin = {where} "
                                 f"(this system is {self.builtin or self.structure!r}); remove it")
        if kind is None:
            return self
        _check_element(self.element, kind)
        if self.lattice_constant is not None and self.density is not None:
            raise ValueError("give `lattice_constant` (Å) or `density` (atoms/Å³), not both")
        if self.lattice_constant is None and self.density is None:
            reference_nn_distance(self.element)  # the default must exist
        if kind == "cluster" and self.n_atoms is None:
            raise ValueError("builtin = \"cluster\" needs `n_atoms` (e.g. 13 or 55: an icosahedron)")
        if kind != "cluster":
            n = self.atoms_per_cell * _product(self.cells)
            if n > MAX_GENERATED_ATOMS:
                raise ValueError(f"repeat = {list(self.cells)} makes {n} atoms, more than {MAX_GENERATED_ATOMS}")
        return self

    # ---- derived values (all validated above) ----------------------------------------------------------
    @property
    def generated(self) -> bool:
        """A crystal, liquid or cluster builtin (made from ``element``)."""
        return self.builtin in GENERATED

    @property
    def crystal(self) -> str:
        """The lattice a generated system is cut from (fcc for clusters and, by default, liquids)."""
        if self.builtin in CRYSTALS:
            return self.builtin
        return self.lattice or "fcc"

    @property
    def cells(self) -> tuple[int, int, int]:
        """Unit cells per direction of a crystal or liquid (default 2 × 2 × 2)."""
        return self.repeat or (2, 2, 2)

    @property
    def atoms_per_cell(self) -> int:
        return {"fcc": 4, "hcp": 4, "bcc": 2}[self.crystal]

    def number_density(self) -> float:
        """Atoms/Å³ of the crystal a generated system is made from (of its fcc lattice for a cluster): from
        ``density``, ``lattice_constant``, or the element's reference nearest-neighbour distance."""
        if self.density is not None:
            return float(self.density)
        lattice = self.crystal
        if self.lattice_constant is not None:
            a = float(self.lattice_constant)
        else:
            d = reference_nn_distance(self.element)
            a = {"fcc": d * math.sqrt(2.0), "bcc": 2.0 * d / math.sqrt(3.0), "hcp": d}[lattice]
        return {"fcc": 4.0 / a**3, "bcc": 2.0 / a**3, "hcp": math.sqrt(2.0) / a**3}[lattice]

    def system_name(self) -> str:
        """The system's name: ``name``, else the builtin (``<builtin>-<element>`` for generated ones), else the
        structure file's stem."""
        if self.name:
            return self.name
        if self.builtin is not None:
            return f"{self.builtin}-{self.element}" if self.generated else self.builtin
        return Path(self.structure).stem or "structure"


def _product(cells) -> int:
    n = 1
    for c in cells:
        n *= int(c)
    return n


def reference_nn_distance(element: str) -> float:
    """Nearest-neighbour distance (Å) of ``element``'s crystal in ASE's reference states (fcc, bcc, hcp,
    diamond). ValueError when ASE has none (give ``lattice_constant`` or ``density``)."""
    from ase.data import atomic_numbers, reference_states

    ref = reference_states[atomic_numbers[element]] or {}
    a = ref.get("a")
    factor = {"fcc": 1 / math.sqrt(2.0), "bcc": math.sqrt(3.0) / 2, "hcp": 1.0, "diamond": math.sqrt(3.0) / 4}
    if a is None or ref.get("symmetry") not in factor:
        raise ValueError(f"ASE has no reference crystal for {element} (its reference state is "
                         f"{ref.get('symmetry', 'unknown')}); give `lattice_constant` (Å) or `density` (atoms/Å³)")
    return float(a) * factor[ref["symmetry"]]


def _check_element(element: str | None, kind: str) -> None:
    from ase.data import chemical_symbols

    if element is None:
        raise ValueError(f"builtin = {kind!r} needs `element` (e.g. \"Ar\", \"Cu\")")
    if element not in chemical_symbols[1:]:
        near = [s for s in chemical_symbols[1:] if s.lower() == element.lower()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueError(f"element = {element!r} is not a chemical symbol{hint}")


__all__ = ["CRYSTALS", "GENERATED", "MAX_PRESSURE_BAR", "PERIODIC_BUILTINS", "SystemConfig"]
