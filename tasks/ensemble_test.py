"""Ensemble test set stage: frames that the current potential visits at the campaign's state points, labeled by
the reference method, so that errors (and the stop rule) are measured on the ensemble the user will simulate.

A test set of small random displacements of the start (``[system] n_test``) can call a potential "converged" on
the wrong ensemble: a liquid at 110 K visits configurations no rattled crystal resembles. Here, at iteration
``i`` (after its fit), the campaign runs HMC on the freshly fitted potential — no active set, no early stop: the
potential's own Boltzmann ensemble at each system's exploration temperatures (and pressure: NPT) — and this stage

1. drops each chain's first ``burn_in`` fraction of frames (equilibration) and draws ``n_frames`` frames per
   system at random from the rest (:func:`pick_frames`);
2. decides whether the set drawn at an earlier iteration is still representative (:func:`representative`): the
   current potential's energies per atom of the stored frames and of the fresh frames are compared, system by
   system, with the two-sample Kolmogorov–Smirnov test (scipy.stats.ks_2samp; Hodges 1958 for the exact
   distribution). The stored set is reused (no new labels) while every system's p-value is ≥ ``min_p_value``;
   otherwise the fresh frames become the new set and are labeled. ``min_p_value = 1`` redraws every iteration,
   ``0`` keeps the first set for the whole campaign.

With cluster cuts (``[labeling] cluster_cut``) the reference method labels molecules only, so each drawn frame
gives ``atoms_per_frame`` clusters cut around randomly chosen atoms (:func:`cut_around`), whose core-atom forces
are compared (energies of cuts are not: their surface is artificial).

The test frames are never fitted: they are stored apart from the training labels (``ensemble_test.nc``), and
their labeling cost is reported on its own (metrics ``ensemble_label_s``). Settings: :class:`EnsembleTestSettings`
(campaign ``[ensemble_test]``); stage: :func:`run_ensemble_draw` and :data:`ensemble_draw_task`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from prefect import task
from pydantic import BaseModel, ConfigDict, Field

from hmc_core.configurations import concat, config_arrays, validate


class EnsembleTestSettings(BaseModel):
    """A test set drawn from the current potential's ensemble (campaign ``[ensemble_test]``).

    n_frames        frames per system in the set (≥ 1).
    n_chains        HMC chains per system and exploration temperature (each from a different training label).
    n_samples       samples per chain (None: ``[hmc] n_samples``); frames are saved as ``[hmc]`` says.
    burn_in         fraction [0, 1) of each chain's saved frames dropped before drawing (equilibration).
    min_p_value     the stored set is reused while the Kolmogorov–Smirnov p-value of every system is ≥ this
                    (0 = keep the first set, 1 = redraw every iteration).
    atoms_per_frame with ``[labeling] cluster_cut``: clusters cut around this many random atoms of each frame.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    n_frames: int = Field(8, ge=1, le=10_000)
    n_chains: int = Field(1, ge=1, le=1000)
    n_samples: int | None = Field(None, ge=1, le=10_000_000)
    burn_in: float = Field(0.25, ge=0.0, lt=1.0, allow_inf_nan=False)
    min_p_value: float = Field(0.01, ge=0.0, le=1.0, allow_inf_nan=False)
    atoms_per_frame: int = Field(1, ge=1, le=10_000)


def after_burn_in(frames: xr.Dataset, burn_in: float) -> np.ndarray:
    """Indices of the frames of one chain (variable ``frame``: saved-frame number) past the first ``burn_in``
    fraction of the chain's saved frames."""
    number = np.asarray(frames["frame"].values, dtype=np.int64)
    if not len(number):
        return np.zeros(0, np.int64)
    first = int(np.floor(burn_in * (number.max() + 1)))
    return np.flatnonzero(number >= first)


def pick_frames(owner: np.ndarray, n_systems: int, n_frames: int, seed) -> np.ndarray:
    """Indices of at most ``n_frames`` frames per system, drawn without replacement (sorted), from the frames
    whose system index is ``owner`` (n,). ``seed``: SeedSequence or int. Raises ValueError when a system has no
    frame at all."""
    rng = np.random.default_rng(seed)
    owner = np.asarray(owner, dtype=np.int64)
    picked = []
    for k in range(n_systems):
        mine = np.flatnonzero(owner == k)
        if not len(mine):
            raise ValueError(f"system {k} has no HMC frame past the burn-in to draw the ensemble test set from; "
                             "lower [ensemble_test] burn_in or raise n_samples")
        picked.append(np.sort(rng.choice(mine, min(n_frames, len(mine)), replace=False)))
    return np.concatenate(picked)


def energies_per_atom(potential, frames: xr.Dataset) -> np.ndarray:
    """Energies per atom (eV/atom) of ``frames`` under ``potential`` (atoms closer than an MTP's min_dist are
    extrapolated, not refused)."""
    if getattr(potential, "below_min_dist", "allow") != "allow":
        potential = potential.copy()
        potential.below_min_dist = "allow"
    energy = np.array([potential.evaluate(*config_arrays(frames, k))["energy"] for k in range(frames.sizes["config"])],
                      dtype=np.float64)
    return energy / frames["n_atoms"].values


def representative(potential, stored: xr.Dataset, stored_owner: np.ndarray, fresh: xr.Dataset,
                   fresh_owner: np.ndarray, n_systems: int) -> np.ndarray:
    """Per-system two-sample Kolmogorov–Smirnov p-values (scipy.stats.ks_2samp, two-sided) between the
    energies per atom (eV/atom, under ``potential``) of the ``stored`` frames and of the ``fresh`` frames.
    NaN energies (a frame the potential cannot evaluate) count as +inf, so a broken frame lowers the p-value.
    A system with no stored or no fresh frame gets p = 0 (the set must be redrawn)."""
    from scipy.stats import ks_2samp

    e_old = np.nan_to_num(energies_per_atom(potential, stored), nan=np.inf)
    e_new = np.nan_to_num(energies_per_atom(potential, fresh), nan=np.inf)
    p = np.zeros(n_systems)
    for k in range(n_systems):
        a, b = e_old[np.asarray(stored_owner) == k], e_new[np.asarray(fresh_owner) == k]
        if len(a) and len(b):
            p[k] = 1.0 if np.array_equal(np.sort(a), np.sort(b)) else float(ks_2samp(a, b).pvalue)
    return p


def cut_around(frames: xr.Dataset, atoms_per_frame: int, cut_settings, r_cut: float, seed) -> xr.Dataset:
    """Clusters cut (:func:`tasks.cluster_cuts.cluster_cuts`) around ``atoms_per_frame`` atoms of each frame,
    drawn at random without replacement (all atoms of a smaller frame). The clusters carry ``centre_atom``,
    ``frame_atom``, ``force_weight`` (1 on core atoms), ``source_frame``; ``centre_grade`` is dropped (the centres
    are random, not uncertain)."""
    from tasks.cluster_cuts import cluster_cuts

    rng = np.random.default_rng(seed)
    n_atoms = frames["n_atoms"].values
    rank = np.zeros((frames.sizes["config"], frames.sizes["atom"]))
    for k, n in enumerate(n_atoms):
        chosen = rng.choice(int(n), min(atoms_per_frame, int(n)), replace=False)
        rank[k, chosen] = 1.0 + np.arange(len(chosen))[::-1]  # first drawn is cut first
    budget = int((rank > 0).sum())
    clusters = cluster_cuts(frames, rank, cut_settings, r_cut, threshold=0.5, budget=budget)
    return clusters.drop_vars("centre_grade")


@dataclass(frozen=True)
class EnsembleDrawInputs:
    """chains: the frames of each ensemble HMC chain (configurations with ``frame`` and ``system`` as a name);
    system_of_chain: the system index of each chain; n_systems: systems in the campaign; potential: the current
    potential (for the representativeness test); stored: the frames of the set in use (None: none yet) and
    stored_owner, their system indices."""

    chains: tuple[xr.Dataset, ...]
    system_of_chain: tuple[int, ...]
    n_systems: int
    potential: object
    stored: xr.Dataset | None = None
    stored_owner: np.ndarray | None = None


@dataclass(frozen=True)
class EnsembleDrawResult:
    """frames: the drawn frames (configurations; ``system`` name, ``temperature``, ``ensemble_chain``); owner:
    their system indices; redraw: True when they replace the stored set (they must be labeled), False when the
    stored set is still representative; p_values: per-system KS p-values (NaN without a stored set)."""

    frames: xr.Dataset
    owner: np.ndarray
    redraw: bool
    p_values: np.ndarray


def run_ensemble_draw(inputs: EnsembleDrawInputs, settings: EnsembleTestSettings, seed=None) -> EnsembleDrawResult:
    """Burn-in, draw (:func:`pick_frames`) and the representativeness test (:func:`representative`); see the
    module docstring. ``seed``: SeedSequence or int for the draw. ValueError when the chains and their systems
    do not match, or a system has no frame."""
    if len(inputs.chains) != len(inputs.system_of_chain):
        raise ValueError(f"{len(inputs.chains)} chains but {len(inputs.system_of_chain)} system indices")
    kept, owner = [], []
    for c, (frames, k) in enumerate(zip(inputs.chains, inputs.system_of_chain, strict=True)):
        validate(frames)
        f = frames.isel(config=after_burn_in(frames, settings.burn_in))
        f["ensemble_chain"] = ("config", np.full(f.sizes["config"], c, np.int32))
        kept.append(f)
        owner.append(np.full(f.sizes["config"], k, np.int64))
    nonempty = [f for f in kept if f.sizes["config"]]
    pool = concat(nonempty) if nonempty else kept[0]
    pool_owner = np.concatenate(owner) if owner else np.zeros(0, np.int64)
    idx = pick_frames(pool_owner, inputs.n_systems, settings.n_frames, seed)
    drawn = pool.isel(config=idx).drop_vars([v for v in ("grade", "frame") if v in pool])
    drawn_owner = pool_owner[idx]
    if inputs.stored is None:
        return EnsembleDrawResult(drawn, drawn_owner, True, np.full(inputs.n_systems, np.nan))
    p = representative(inputs.potential, inputs.stored, inputs.stored_owner, drawn, drawn_owner, inputs.n_systems)
    return EnsembleDrawResult(drawn, drawn_owner, bool((p < settings.min_p_value).any()), p)


ensemble_draw_task = task(run_ensemble_draw, name="ensemble test set")

__all__ = ["EnsembleDrawInputs", "EnsembleDrawResult", "EnsembleTestSettings", "after_burn_in", "cut_around",
           "energies_per_atom", "ensemble_draw_task", "pick_frames", "representative", "run_ensemble_draw"]
