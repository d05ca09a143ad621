"""Explore stage: one HMC chain on the current potential from one labeled start → frames with their grades.

The stage contract (every stage module looks like this one):

* :class:`ExploreSettings` — the one frozen settings model (the campaign file's ``[hmc]`` section *is* this
  model);
* :class:`ExploreInputs` — what one run works on (the start, its temperature, the potential, the active set);
* :func:`run_explore` ``(inputs, settings, seed) -> ExploreResult`` — plain, testable without Prefect;
* :data:`explore_task` — its Prefect task, nothing else.

Fan-out is the flow's business: :func:`plan_chains` says which chains an iteration runs (one per
(start, temperature)), the flow submits one task per chain. Temperature is per-chain state (an input of the
chain), not a settings field.

A chain stops after the first saved frame whose extrapolation grade γ exceeds ``inputs.stop_grade``
(``[selection] break_threshold``): beyond it the potential is extrapolating far and sampling it further only
wastes force evaluations (MLIP's "break" rule, Podryabinkin & Shapeev, Comput. Mater. Sci. 140, 171 (2017)).

With ``inputs.pressure`` (bar) a periodic chain samples the isothermal–isobaric ensemble instead: the NPT HMC of
:mod:`hmc_core.npt` (one HMC trajectory at fixed cell, then :data:`VOLUME_MOVES` isotropic Monte Carlo moves of
ln V, their width adapted during warm-up), the sampler ``melt``/``coexist`` use. Each saved frame carries its own
cell and is graded at that cell; the trace adds ``volume`` (Å³) per trajectory and the chain's
``target_pressure`` (bar).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import xarray as xr
from prefect import task
from pydantic import BaseModel, ConfigDict, Field

from hmc_core.configurations import config_arrays, make_configurations, validate
from hmc_core.hmc import ChainResult, HMCConfig, chains_to_dataset, run_chains, samples_to_configurations
from hmc_core.npt import NPTConfig, NPTSampler, run_npt_chain
from hmc_core.potentials.base import ForceField
from hmc_core.uncertainty import ActiveSet, grade_monitor

log = logging.getLogger(__name__)

#: cell moves after each HMC trajectory of an NPT chain (each costs one energy evaluation, ~1/n_steps of a
#: trajectory)
VOLUME_MOVES = 1
#: the largest |pressure| (bar) a chain accepts: 10⁷ bar = 1 TPa, beyond any condition an MTP is fitted for
MAX_PRESSURE_BAR = 1.0e7

class ExploreSettings(BaseModel):
    """Exploration by HMC on the current potential (campaign section ``[hmc]``).

    temperatures: K, one chain per (start, temperature); n_starts: starting structures drawn from the labeled
    set each iteration; n_samples: production trajectories per chain; n_steps: integrator steps per
    trajectory; dt: fs (adapted during the ``n_warmup`` warm-up trajectories, then frozen); integrator:
    ``verlet`` or ``omelyan``; save_every: keep a frame (and compute its grade) every k trajectories.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    temperatures: tuple[Annotated[float, Field(gt=0, le=1e5, allow_inf_nan=False)], ...] = Field(
        (300.0, 600.0), min_length=1)
    n_starts: int = Field(2, ge=1, le=1000)
    n_samples: int = Field(60, ge=1, le=1_000_000)
    n_steps: int = Field(10, ge=1, le=10_000)
    dt: float = Field(0.5, gt=0, le=20.0, allow_inf_nan=False)
    n_warmup: int = Field(20, ge=0, le=1_000_000)
    integrator: Literal["verlet", "omelyan"] = "verlet"
    save_every: int = Field(2, ge=1)

    def hmc_config(self, temperature: float) -> HMCConfig:
        """The kernel's settings for one chain at ``temperature`` (K), metal units (eV, Å, fs, amu)."""
        return HMCConfig(temperature=float(temperature), dt=self.dt, n_steps=self.n_steps,
                         integrator=self.integrator, n_warmup=self.n_warmup, save_every=self.save_every,
                         units="metal")


@dataclass(frozen=True)
class ChainPlan:
    """One chain of an iteration: which labeled start (index into the training labels) at which temperature
    (K); ``key`` = (start rank, temperature rank), the chain's random stream key."""

    start: int
    temperature: float
    key: tuple[int, int]


def plan_chains(settings: ExploreSettings, n_labels: int, seed: np.random.SeedSequence) -> list[ChainPlan]:
    """The chains of one iteration: ``min(n_starts, n_labels)`` distinct starts drawn (sorted) from the
    ``n_labels`` training labels with ``seed``, each run at every temperature."""
    if n_labels < 1:
        raise ValueError("no labeled configuration to start HMC from")
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.choice(n_labels, min(settings.n_starts, n_labels), replace=False))
    return [ChainPlan(int(s), float(t), (k, j)) for k, s in enumerate(starts)
            for j, t in enumerate(settings.temperatures)]


@dataclass(frozen=True)
class ExploreInputs:
    """start: configurations dataset with one configuration; temperature: K; potential: the current MTP (or any
    :class:`hmc_core.potentials.base.Potential`; an MTP is copied and rejects atoms closer than its ``min_dist``);
    active_set: its MaxVol active set (grades are relative to it; None: no grades, NaN, and no early stop);
    stop_grade: the chain stops above it; pressure: bar, None = fixed cell (NVT), else NPT with cell moves
    (the start must be periodic in x, y and z; ≥ 0 and ≤ :data:`MAX_PRESSURE_BAR`).

    ValueError on construction for a pressure that is not finite, negative or too large."""

    start: xr.Dataset
    temperature: float
    potential: object
    active_set: ActiveSet | None
    stop_grade: float = np.inf
    pressure: float | None = None

    def __post_init__(self):
        check_pressure(self.pressure)


def check_pressure(pressure: float | None) -> None:
    """ValueError unless ``pressure`` (bar) is None or a finite number in [0, :data:`MAX_PRESSURE_BAR`]."""
    if pressure is None:
        return
    if not (isinstance(pressure, int | float | np.floating | np.integer) and np.isfinite(pressure)):
        raise ValueError(f"pressure = {pressure!r} bar must be a finite number (or None for a fixed cell)")
    if not 0 <= pressure <= MAX_PRESSURE_BAR:
        raise ValueError(f"pressure = {pressure!r} bar must be in [0, {MAX_PRESSURE_BAR:g}] (a negative pressure "
                         "stretches the cell without bound)")


@dataclass(frozen=True)
class ExploreResult:
    """frames: saved frames as configurations (+ ``grade``, ``temperature``; each with its own cell); trace: the
    chain's per-trajectory HMC record (energies eV, acceptance, dt fs; dims ``chain`` (1), ``sample``; NPT adds
    ``volume`` Å³ and ``target_pressure`` bar); stopped_early: the chain stopped at the break grade; acceptance:
    mean acceptance of the trajectories it ran."""

    frames: xr.Dataset
    trace: xr.Dataset
    stopped_early: bool
    acceptance: float


def run_explore(inputs: ExploreInputs, settings: ExploreSettings,
                seed: np.random.SeedSequence | int) -> ExploreResult:
    """Run one HMC chain from ``inputs.start`` at ``inputs.temperature`` on ``inputs.potential``, recording the
    extrapolation grade of every saved frame (the same seed gives the same chain, bit for bit); with
    ``inputs.pressure`` an NPT chain (see the module docstring). ValueError for a start that is not one
    configuration, or a pressure on a start not periodic in all three directions."""
    validate(inputs.start)
    if inputs.start.sizes["config"] != 1:
        raise ValueError(f"one starting configuration per chain, got {inputs.start.sizes['config']}")
    positions, species, cell, pbc = config_arrays(inputs.start, 0)
    if inputs.pressure is not None and not pbc.all():
        raise ValueError(f"pressure = {inputs.pressure:g} bar needs a start periodic in x, y and z (cell moves); "
                         f"this one has pbc = {pbc.tolist()}")
    if hasattr(inputs.potential, "below_min_dist"):  # an MTP: sample a copy that rejects, not raises,
        sampler = inputs.potential.copy()           # on atoms pushed closer than min_dist
        sampler.below_min_dist = "nan"
    else:
        sampler = inputs.potential
    if isinstance(seed, np.random.SeedSequence):
        seed = int(seed.generate_state(1)[0])
    if inputs.pressure is None:
        monitor = None if inputs.active_set is None else grade_monitor(sampler, inputs.active_set, species, cell,
                                                                       pbc)
        raw = run_chains(sampler, species, positions, settings.hmc_config(inputs.temperature), settings.n_samples,
                         cell=cell, pbc=pbc, seed=seed, monitor=monitor, stop_above=inputs.stop_grade)
        frames = samples_to_configurations(raw).rename({"monitor": "grade"}).drop_vars("chain")
    else:
        frames, raw = _npt_chain(inputs, settings, sampler, species, positions, cell, seed)
    frames["temperature"] = ("config", np.full(frames.sizes["config"], float(inputs.temperature)))
    frames["temperature"].attrs["units"] = "K"
    trace = raw.drop_vars(["positions", "frame_sample", "monitor", "species", "cell", "pbc"])
    ran = np.isfinite(trace["potential_energy"].values)
    acceptance = float(trace["accepted"].values[ran].mean()) if ran.any() else float("nan")
    stopped = bool(trace["stopped_early"].values[0])
    at = "" if inputs.pressure is None else f" and {inputs.pressure:g} bar"
    log.info("HMC chain at %g K%s: %d frames, acceptance %.2f%s", inputs.temperature, at, frames.sizes["config"],
             acceptance, ", stopped at the break grade" if stopped else "")
    return ExploreResult(frames, trace, stopped, acceptance)


def _npt_chain(inputs: ExploreInputs, settings: ExploreSettings, sampler, species, positions, cell,
               seed: int) -> tuple[xr.Dataset, xr.Dataset]:
    """One NPT chain (:func:`hmc_core.npt.run_npt_chain`, seeded as chain 0 of :func:`hmc_core.hmc.run_chains`):
    its frames as configurations, each with its own cell (+ ``frame``, ``grade``), and its record packed by
    :func:`hmc_core.hmc.chains_to_dataset` plus ``volume`` (chain, sample) Å³, ``target_pressure`` (chain,)
    bar and ``volume_acceptance`` (chain,)."""
    config = settings.hmc_config(inputs.temperature)
    pbc = np.ones(3, bool)
    npt = NPTConfig(pressure=float(inputs.pressure), pressure_unit="bar", volume_moves=VOLUME_MOVES)
    active = inputs.active_set

    def grade(x: np.ndarray, frame_cell: np.ndarray) -> float:  # the grade at the frame's own cell
        return grade_monitor(sampler, active, species, frame_cell, pbc)(x)

    ff = ForceField(sampler, species, cell, pbc, skin=config.skin)
    res = run_npt_chain(NPTSampler(ff, config, npt), positions, settings.n_samples,
                        seed=np.random.SeedSequence(seed).spawn(1)[0],
                        monitor=None if active is None else grade, stop_above=inputs.stop_grade)
    record = ChainResult(
        potential_energy=res.potential_energy, kinetic_energy=res.kinetic_energy, delta_h=res.delta_h,
        accepted=res.accepted, accept_prob=res.accept_prob, n_steps=res.n_steps, dt=res.dt,
        pressure=res.pressure_virial, frames=res.frames, frame_sample=res.frame_sample, monitor=res.monitor,
        force_evaluations=res.force_evaluations, final_dt=res.state.hmc.dt, stopped_early=res.stopped_early,
        state=res.state.hmc)
    raw = chains_to_dataset([record], [config.temperature], config, sampler, species, cell, pbc, seed)
    raw["volume"] = (("chain", "sample"), res.volume[None])
    raw["volume"].attrs["units"] = "Å³"
    raw["target_pressure"] = (("chain",), np.array([float(inputs.pressure)]))
    raw["target_pressure"].attrs["units"] = "bar"
    raw["volume_acceptance"] = (("chain",), np.array([res.volume_acceptance]))
    n = len(res.frames)
    frames = make_configurations(list(res.frames), [species] * n, list(res.frame_cells), [pbc] * n,
                                 attrs={"source": "hmc"})
    frames["frame"] = ("config", np.arange(n, dtype=np.int32))
    frames["grade"] = ("config", res.monitor)
    return frames, raw


explore_task = task(run_explore, name="explore")
