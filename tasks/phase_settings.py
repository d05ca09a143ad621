"""Settings of the phase-transition stages: one frozen, validated model per study.

The command line builds the model once (``pesflow melt | coexist | seed``) and hands the model itself to the
flow (:mod:`flows.phase`); nothing is rebuilt from positional arguments. Temperatures are T* (``element =
"LJ"``) or K (Ne, Ar, Kr, Xe); pressures P* or bar (:func:`hmc_core.units.pressure_in_bar` converts GPa at the
edge). With ``potential`` (a fitted ``.mtp`` file, :class:`hmc_core.mtp_phase.MTPSystem`) the system is that MTP's
element in metal units (K, bar, Å); ``element`` is then filled in from the file. Random streams:
:meth:`PhaseSettings.stream` (``SeedSequence(seed, spawn_key=key)``).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hmc_core.phase_system import PhaseModel, PhaseSystem
from hmc_core.structures import SEED_STRUCTURES, crystal_seed, insert_seed, lattice, min_box_height

Temperature = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class PhaseSettings(BaseModel):
    """What every phase study has: the model system, the pressure (P* or bar, ≥ 0), the random seed and the
    number of runs in parallel.

    The system is either built-in Lennard-Jones (``element`` "LJ", "Ne", "Ar", "Kr" or "Xe", ``cutoff_sigma`` in σ)
    or a fitted MTP: ``potential`` (path of a trained ``.mtp`` file with one species), ``species`` (atomic numbers of
    its species indices; None: the file's pesflow ``potential_tag``) and ``lattice_constant`` (Å, cubic fcc; None:
    relaxed once here, :func:`hmc_core.mtp_phase.relaxed_lattice_constant`, and ``lattice_constant_source`` says
    so). With a potential, ``element`` is set from the file, and ``cutoff_sigma`` and ``tail_correction`` (False:
    LJ without the tail correction, as ASE's calculator; :class:`hmc_core.phase_system.PhaseSystem`) may not be
    given."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    element: str = "LJ"
    pressure: float = Field(1.0, allow_inf_nan=False)
    cutoff_sigma: float = Field(3.0, gt=1.0, le=10.0, allow_inf_nan=False)
    tail_correction: bool = True
    potential: str | None = None
    species: tuple[int, ...] | None = None
    lattice_constant: float | None = Field(None, gt=0, allow_inf_nan=False)
    lattice_constant_source: str | None = None
    seed: int = Field(0, ge=0)
    n_workers: int = Field(2, ge=1, le=1024)

    @model_validator(mode="before")
    @classmethod
    def _potential_file(cls, values):
        """A potential file fixes the element and (once, by relaxation) the lattice constant."""
        if not isinstance(values, dict):
            return values
        if values.get("potential") is None:
            for key in ("species", "lattice_constant"):
                if values.get(key) is not None:
                    raise ValueError(f"{key} describes a potential file; give potential too")
            return values
        if "cutoff_sigma" in values:
            raise ValueError("cutoff_sigma is the Lennard-Jones cutoff; an MTP's cutoff is its file's max_dist")
        if "tail_correction" in values:
            raise ValueError("tail_correction is the Lennard-Jones tail; an MTP has none")
        from hmc_core.mtp_phase import MTPSystem

        system = MTPSystem(str(values["potential"]), values.get("species"), values.get("lattice_constant"))
        if values.get("element", "LJ") not in ("LJ", system.element):
            raise ValueError(f"element {values['element']!r} contradicts the potential file, whose species is "
                             f"{system.element}")
        source = values.get("lattice_constant_source") or system.lattice_constant_source
        return {**values, "element": system.element, "species": system.species,
                "lattice_constant": system.lattice_constant, "lattice_constant_source": source}

    @field_validator("pressure")
    @classmethod
    def _pressure(cls, v: float) -> float:
        if v < 0:
            raise ValueError(f"{v} is negative; melting and crystallisation studies need P ≥ 0")
        return v

    @model_validator(mode="after")
    def _system(self):
        if self.potential is None:
            PhaseSystem(self.element, self.cutoff_sigma, self.tail_correction)  # ValueError: an unknown element
        return self

    def system(self) -> PhaseModel:
        """The system to sample: :class:`PhaseSystem` (LJ) or :class:`hmc_core.mtp_phase.MTPSystem` (file read
        again; the lattice constant is the one fixed at validation)."""
        if self.potential is None:
            return PhaseSystem(self.element, self.cutoff_sigma, self.tail_correction)
        from hmc_core.mtp_phase import MTPSystem

        system = MTPSystem(self.potential, self.species, self.lattice_constant)
        object.__setattr__(system, "lattice_constant_source", self.lattice_constant_source or "given")
        return system

    def summary(self) -> dict:
        """The settings for a run's summary.json: every field, less those that do not apply to the system (the LJ
        cutoff with a potential file; the potential's fields without one)."""
        lj_only = {"cutoff_sigma", "tail_correction"}
        skip = lj_only if self.potential is not None else {"potential", "species", "lattice_constant",
                                                           "lattice_constant_source"}
        return self.model_dump(exclude=skip)

    def stream(self, *key: int) -> np.random.SeedSequence:
        """The random stream of one run, keyed by its indices (e.g. (temperature, structure, size, replica))."""
        return np.random.SeedSequence(self.seed, spawn_key=tuple(int(k) for k in key))

    @staticmethod
    def run_seed(stream: np.random.SeedSequence) -> int:
        """An integer seed for the hmc_core samplers from a stream."""
        return int(stream.generate_state(1)[0])


class MeltingCurveSettings(PhaseSettings):
    """Heating ladders from an fcc crystal (perfect, and with random vacancies/interstitials) and cooling ladders
    from a melted liquid: ``n_chains`` replicas each, ``n_samples`` production and ``n_warmup`` warm-up NPT sweeps
    per temperature, order parameters every ``analyse_every`` sweeps, 4·n_cells³ atoms."""

    temperatures: tuple[Temperature, ...] = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1)
    n_cells: int = Field(4, ge=3, le=40)
    n_chains: int = Field(1, ge=1)
    vacancy_fraction: float = Field(0.02, ge=0, lt=0.5)
    interstitial_fraction: float = Field(0.0, ge=0, lt=0.5)
    n_samples: int = Field(200, ge=1)
    n_warmup: int = Field(50, ge=0)
    analyse_every: int = Field(20, ge=1)

    @field_validator("temperatures")
    @classmethod
    def _two(cls, v: tuple) -> tuple:
        if len(v) < 2:
            raise ValueError(f"give at least two positive temperatures for a curve, got {list(v)}")
        return v


class CoexistenceSettings(PhaseSettings):
    """Two-phase (fcc | liquid) NPT runs, one per temperature: a box of n_cells fcc cells (z: half crystal, half
    liquid), ``n_melt`` sweeps melting the liquid half, ``n_hold`` with the crystal held, ``n_bulk`` for the bulk
    crystal density, then ``n_samples`` sweeps; a change of solid fraction beyond ``threshold`` counts as growth
    or melting. ``melt_temperature`` melts the liquid half (None: max(2 T, 2 ε/k_B) for LJ, 2 T for an MTP).

    Statistics (issue 22 §1, :mod:`hmc_core.melting_statistics`): every run's interface velocity with its error; T_m
    as the zero crossing of velocity(T) with a ``confidence`` interval (Fieller), fitted to the runs within
    ``fit_window`` of a first estimate (None: all). ``ci_width`` (temperature units, > 0) makes the study adaptive:
    after the ``temperatures``, batches of ``n_workers`` runs at temperatures chosen from the results until the
    interval is at most ``ci_width`` wide or ``max_runs`` runs were made. An adaptive study needs a box whose lateral
    side (at the densest crystal, ρσ³ = 1.1) is at least ``min_cross_section`` interaction cutoffs (default 3: a
    4 × 4 × 8-cell argon box, 2.1 cutoffs, inverted growth and melting); without ``ci_width`` a smaller box is only
    warned about in the summary."""

    temperatures: tuple[Temperature, ...] = Field((0.66, 0.70, 0.74, 0.78, 0.82, 0.86), min_length=1)
    n_cells: tuple[int, int, int] = (6, 6, 12)
    n_samples: int = Field(1500, ge=1)
    analyse_every: int = Field(25, ge=1)
    n_melt: int = Field(150, ge=1)
    n_hold: int = Field(30, ge=0)
    n_bulk: int = Field(60, ge=1)
    n_steps: int = Field(20, ge=1)
    threshold: float = Field(0.03, gt=0, lt=0.5)
    melt_temperature: Temperature | None = None
    ci_width: float | None = Field(None, allow_inf_nan=False)
    max_runs: int = Field(24, ge=1, le=1000)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    fit_window: float | None = Field(None, gt=0, allow_inf_nan=False)
    min_cross_section: float = Field(3.0, ge=2.0, le=20.0, allow_inf_nan=False)

    @field_validator("ci_width")
    @classmethod
    def _ci_width(cls, v: float | None) -> float | None:
        if v is not None and not v > 0:
            raise ValueError(f"{v} is not a width: give the requested full width of the T_m interval, > 0 (K, or T* "
                             "for LJ)")
        return v

    @model_validator(mode="after")
    def _box(self):
        if min(self.n_cells) < 1 or self.n_cells[2] % 2:
            raise ValueError(f"n_cells = {self.n_cells}: give three positive cell counts with an even last one "
                             "(half crystal, half liquid along z)")
        system = self.system()
        # the thinnest side at the densest fcc the runs can reach (ρσ³ ≈ 1.1) must exceed twice the cutoff
        width = min_box_height(lattice("fcc", self.n_cells, 1.1 / system.sigma**3)[1])
        if width <= 2 * system.cutoff:
            if system.is_lennard_jones:
                raise ValueError(f"n_cells = {self.n_cells} gives a box {width / system.sigma:.2f}σ across, not more "
                                 f"than twice the cutoff {self.cutoff_sigma}σ; use more cells (e.g. 6 6 12 at "
                                 "r_c = 3σ)")
            raise ValueError(f"n_cells = {self.n_cells} gives a box {width:.2f} Å across (lattice constant "
                             f"{self.lattice_constant} Å compressed 3 %), not more than twice the MTP's cutoff "
                             f"{system.cutoff:g} Å; use more cells")
        return self

    @model_validator(mode="after")
    def _adaptive(self):
        if self.ci_width is None:
            return self
        if self.max_runs < len(self.temperatures):
            raise ValueError(f"max_runs = {self.max_runs} is fewer than the {len(self.temperatures)} starting "
                             "temperatures")
        system = self.system()
        cell = lattice("fcc", self.n_cells, 1.1 / system.sigma**3)[1]
        lateral = float(min(cell[0, 0], cell[1, 1]))
        if lateral < self.min_cross_section * system.cutoff:
            raise ValueError(f"n_cells = {self.n_cells} gives a lateral box side of {lateral / system.cutoff:.2f} "
                             f"cutoffs, below the minimum cross-section of {self.min_cross_section:g} cutoffs for a "
                             "T_m with an error bar (smaller boxes bias T_m: a 4 × 4 × 8-cell argon box inverted "
                             "growth and melting); use more lateral cells (e.g. 6 6 12 at r_c = 3σ), or lower "
                             "min_cross_section (--min-cross-section, ≥ 2) knowingly")
        return self


class SeededSettings(PhaseSettings):
    """Crystal seeds (``structures`` × ``seed_sizes`` atoms) inserted into a supercooled liquid at each
    temperature: the liquid (4·n_cells³ atoms, melted at ``melt_temperature``; None: 2 × the published melting
    temperature, which exists for LJ only: an MTP needs it given) is
    equilibrated for ``n_quench`` sweeps, the seed held for ``n_hold``, then followed for ``n_samples`` sweeps of
    ``n_steps`` integrator steps, ``n_replicas`` runs each. The largest seed must fit the liquid's box."""

    temperatures: tuple[Temperature, ...] = Field((0.6,), min_length=1)
    structures: tuple[str, ...] = Field(("fcc",), min_length=1)
    seed_sizes: tuple[Annotated[int, Field(ge=1)], ...] = Field((13, 43, 79), min_length=1)
    n_cells: int = Field(6, ge=3, le=40)
    melt_temperature: Temperature | None = None
    n_samples: int = Field(200, ge=1)
    analyse_every: int = Field(5, ge=1)
    n_quench: int = Field(400, ge=1)
    n_hold: int = Field(50, ge=0)
    n_replicas: int = Field(1, ge=1)
    n_steps: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _structures(self):
        if self.potential is not None and self.melt_temperature is None:
            raise ValueError("melt_temperature is needed with a potential file (K; the LJ default is twice the "
                             "published melting temperature, which an MTP does not have)")
        unknown = [st for st in self.structures if st not in SEED_STRUCTURES]
        if unknown:
            raise ValueError(f"unknown seed structure(s) {unknown}; choose from {', '.join(SEED_STRUCTURES)}")
        sigma = self.system().sigma
        pos, cell = lattice("fcc", self.n_cells, 0.85 / sigma**3)  # the liquid is ~15 % less dense than fcc
        for st in self.structures:
            insert_seed(pos, cell, crystal_seed(st, max(self.seed_sizes), 0.96 / sigma**3))
        return self
