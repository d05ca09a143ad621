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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import xarray as xr
from prefect import task
from pydantic import BaseModel, ConfigDict, Field

from hmc_core.configurations import config_arrays, validate
from hmc_core.hmc import HMCConfig, run_chains, samples_to_configurations
from hmc_core.uncertainty import ActiveSet, grade_monitor

log = logging.getLogger(__name__)

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
    """start: configurations dataset with one configuration; temperature: K; potential: the current MTP;
    active_set: its MaxVol active set (grades are relative to it); stop_grade: the chain stops above it."""

    start: xr.Dataset
    temperature: float
    potential: object
    active_set: ActiveSet
    stop_grade: float = np.inf


@dataclass(frozen=True)
class ExploreResult:
    """frames: saved frames as configurations (+ ``grade``, ``temperature``); trace: the chain's per-trajectory
    HMC record (energies eV, acceptance, dt fs; dims ``chain`` (1), ``sample``); stopped_early: the chain
    stopped at the break grade; acceptance: mean acceptance of the trajectories it ran."""

    frames: xr.Dataset
    trace: xr.Dataset
    stopped_early: bool
    acceptance: float


def run_explore(inputs: ExploreInputs, settings: ExploreSettings,
                seed: np.random.SeedSequence | int) -> ExploreResult:
    """Run one HMC chain from ``inputs.start`` at ``inputs.temperature`` on ``inputs.potential``, recording the
    extrapolation grade of every saved frame (the same seed gives the same chain, bit for bit)."""
    validate(inputs.start)
    if inputs.start.sizes["config"] != 1:
        raise ValueError(f"one starting configuration per chain, got {inputs.start.sizes['config']}")
    positions, species, cell, pbc = config_arrays(inputs.start, 0)
    sampler = inputs.potential.copy()
    sampler.below_min_dist = "nan"  # atoms pushed closer than min_dist: a rejected trajectory, not a crash
    monitor = grade_monitor(sampler, inputs.active_set, species, cell, pbc)
    if isinstance(seed, np.random.SeedSequence):
        seed = int(seed.generate_state(1)[0])
    raw = run_chains(sampler, species, positions, settings.hmc_config(inputs.temperature), settings.n_samples,
                     cell=cell, pbc=pbc, seed=seed, monitor=monitor, stop_above=inputs.stop_grade)
    frames = samples_to_configurations(raw).rename({"monitor": "grade"}).drop_vars("chain")
    frames["temperature"] = ("config", np.full(frames.sizes["config"], float(inputs.temperature)))
    frames["temperature"].attrs["units"] = "K"
    trace = raw.drop_vars(["positions", "frame_sample", "monitor", "species", "cell", "pbc"])
    ran = np.isfinite(trace["potential_energy"].values)
    acceptance = float(trace["accepted"].values[ran].mean()) if ran.any() else float("nan")
    stopped = bool(trace["stopped_early"].values[0])
    log.info("HMC chain at %g K: %d frames, acceptance %.2f%s", inputs.temperature, frames.sizes["config"],
             acceptance, ", stopped at the break grade" if stopped else "")
    return ExploreResult(frames, trace, stopped, acceptance)


explore_task = task(run_explore, name="explore")
