"""Cluster-cut stage: selected periodic frames + per-atom grades → molecular cluster configurations to label.

Periodic ab initio labels of large cells are slow or impossible (PySCF: Γ-point GTH only). After MLIP-3
(Podryabinkin, Garifullin, Shapeev, Novikov et al., J. Chem. Phys. 159, 084112 (2023): configurations cut from
large atomistic systems), every uncertain atomic environment of a selected periodic frame becomes one cluster:
all atoms within ``r_cut + buffer`` of the uncertain atom (periodic images included), cut as a molecule by
:func:`hmc_core.cluster_cut.cut_clusters`. Any labeler labels it (PySCF molecules, ``ase:lj``, ``ase:xtb``…);
the fit (:mod:`hmc_core.mtp.fit`) uses only what the cut determines: the forces on the core atoms (distance ≤
``buffer`` from the centre: their whole cutoff sphere lies inside the cluster), through the dataset variable
``force_weight`` (1 core, 0 elsewhere); the cluster's energy only when ``fit_energies`` (``energy_weight``).

Selection works on atomic environments: each atom whose grade γ (w.r.t. the active set, atom mode) is above the
selection threshold gives one cluster, highest grade first, at most ``budget`` clusters. Atoms with a non-finite
grade (atoms closer than the potential's ``min_dist``) are never cut, as :mod:`tasks.select` never selects them.

Settings: :class:`ClusterCutSettings` (``[labeling] cluster_cut = {buffer = …, max_atoms = …, fit_energies =
…}``). Core function: :func:`cluster_cuts`; per-atom grades: :func:`atom_grades`; stage: :func:`run_cluster_cuts`
and :data:`cluster_cut_task`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from prefect import task
from pydantic import BaseModel, ConfigDict, Field

from hmc_core.cluster_cut import SOURCE, ClusterCutError, check_radii, cut_clusters
from hmc_core.configurations import config_arrays, make_configurations, validate

#: per-config variables of a frame that its clusters do not inherit (labels and label provenance are the clusters')
NOT_CARRIED = frozenset({"energy", "status", "reason", "scf_cycles", "wall_time", "warm_start", "warm_start_rmsd",
                         "cache_hit", "scf_ladder_step", "scf_stability"})
SCHEMA_NOTE = ("cluster cuts: force_weight 1 on core atoms (fitted), 0 on buffer atoms; energy_weight 1 if the "
               "cluster energy is fitted, else 0")


class ClusterCutSettings(BaseModel):
    """Cluster cuts instead of periodic labels (campaign ``[labeling] cluster_cut = {buffer = 4.0}``).

    buffer        Å ≥ 0: the cut radius is the potential's cutoff + buffer; atoms within ``buffer`` of the centre
                  are core (their forces are fitted). Larger buffers give more core atoms and more bulk-like
                  core forces, at a cost growing as (cutoff + buffer)³.
    max_atoms     the labeler's atom limit: a cluster with more atoms is refused (before anything is labeled).
    fit_energies  also fit the clusters' energies (their surface is artificial, so by default they are not).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    buffer: float = Field(ge=0, le=50.0, allow_inf_nan=False)
    max_atoms: int = Field(200, ge=1, le=100_000)
    fit_energies: bool = False


def atom_grades(model, active_set, frames: xr.Dataset) -> np.ndarray:
    """Extrapolation grade γ of every atomic environment (config, atom) of ``frames`` w.r.t. ``active_set``
    (atom mode); NaN in padding, inf where the basis is not finite. ``model``: the MTP (or basis callable)."""
    from hmc_core.uncertainty import configuration_rows

    if active_set.mode != "atom":
        raise ValueError(f"cluster cuts select atomic environments: the active set must be in atom mode, got "
                         f"{active_set.mode!r}")
    rows, row_config, row_atom = configuration_rows(model, frames, "atom")
    finite = np.isfinite(rows).all(axis=1)
    g = np.full(len(rows), np.inf)
    if finite.any():
        g[finite] = active_set.grades(np.ascontiguousarray(rows[finite]))
    out = np.full((frames.sizes["config"], frames.sizes["atom"]), np.nan)
    out[row_config, row_atom] = g
    return out


def pick_centres(grades: np.ndarray, n_atoms: np.ndarray, threshold: float, budget: int
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """The (frame, atom) pairs to cut: finite grade > ``threshold``, highest first (ties: frame, then atom
    index), at most ``budget``. Returns frame indices, atom indices and the number of candidates (before the cap)."""
    g = np.asarray(grades, dtype=np.float64)
    real = np.arange(g.shape[1])[None, :] < np.asarray(n_atoms)[:, None]
    frame, atom = np.nonzero(real & np.isfinite(g) & (g > threshold))
    order = np.lexsort((atom, frame, -g[frame, atom]))
    return frame[order][:budget], atom[order][:budget], len(frame)


def cluster_cuts(frames: xr.Dataset, grades: np.ndarray, settings: ClusterCutSettings, r_cut: float,
                 threshold: float, budget: int) -> xr.Dataset:
    """One cluster per uncertain atom of ``frames`` (see module docstring), as a configurations dataset.

    frames: periodic configurations (e.g. the select stage's candidates); grades (config, atom): per-atom γ
    (:func:`atom_grades`); r_cut: the potential's cutoff, Å; threshold: the selection threshold (γ > threshold
    is uncertain); budget: at most this many clusters.

    Returns open-boundary configurations (positions Å, centre atom first at the origin, no cell) with
    ``force_weight`` (config, atom) 1 core / 0 buffer (NaN padding), ``energy_weight`` (config,) 1 or 0
    (``settings.fit_energies``), ``n_core`` (config,), ``centre_grade`` (config,) γ of the centre atom,
    ``source_frame`` (config,) index into ``frames``, ``centre_atom`` (config,) and ``frame_atom`` (config,
    atom; −1 padding) the atoms' indices in their frame, and every other per-config variable of the source frame
    (``pool_index``, ``system``, ``grade``, …; not its labels, :data:`NOT_CARRIED`).

    Raises :class:`ClusterCutError` (a ValueError) before cutting anything when a frame with an uncertain atom
    is not periodic in any direction, is too small for the cut radius, or a cluster would exceed
    ``settings.max_atoms`` (the message names the frame); ValueError for grades of the wrong shape.
    """
    validate(frames)
    radius = check_radii(r_cut, settings.buffer)
    if int(budget) != budget or budget < 0:
        raise ValueError(f"budget must be a non-negative integer, got {budget}")
    n_atoms = frames["n_atoms"].values
    grades = np.asarray(grades, dtype=np.float64)
    if grades.shape != (frames.sizes["config"], frames.sizes["atom"]):
        raise ValueError(f"grades must be (config, atom) = {(frames.sizes['config'], frames.sizes['atom'])}, got "
                         f"{grades.shape}")
    frame, atom, n_candidates = pick_centres(grades, n_atoms, threshold, int(budget))
    cuts = []
    for k in sorted(set(frame.tolist())):  # every check first: nothing is cut unless all cuts can be made
        x, z, cell, pbc = config_arrays(frames, k)
        if not pbc.any():
            raise ClusterCutError(f"frame {k} is not periodic: it is a molecule already; label it directly (cluster "
                                  "cuts are for periodic frames)")
        try:
            cuts += [(k, c) for c in cut_clusters(x, z, cell, pbc, atom[frame == k], r_cut, settings.buffer,
                                                  settings.max_atoms)]
        except ClusterCutError as exc:
            raise ClusterCutError(f"frame {k}: {exc}") from None
    by_pair = {(k, c.centre): c for k, c in cuts}
    ordered = [by_pair[(int(k), int(i))] for k, i in zip(frame, atom, strict=True)]
    ds = make_configurations([c.positions for c in ordered], [c.species for c in ordered],
                             cells=[np.zeros((3, 3))] * len(ordered), pbc=[(False,) * 3] * len(ordered),
                             attrs={"source": SOURCE, "cluster_cut": SCHEMA_NOTE})
    n_max = ds.sizes["atom"]
    weight = np.full((len(ordered), n_max), np.nan)
    frame_atom = np.full((len(ordered), n_max), -1, np.int64)
    for j, c in enumerate(ordered):
        weight[j, : c.n_atoms] = c.core.astype(np.float64)
        frame_atom[j, : c.n_atoms] = c.indices
    ds["force_weight"] = (("config", "atom"), weight, {"description": "1 = force fitted (core), 0 = ignored"})
    ds["energy_weight"] = ("config", np.full(len(ordered), 1.0 if settings.fit_energies else 0.0))
    ds["n_core"] = ("config", np.array([c.n_core for c in ordered], np.int32))
    ds["centre_grade"] = ("config", grades[frame, atom])
    ds["source_frame"] = ("config", frame.astype(np.int64))
    ds["centre_atom"] = ("config", atom.astype(np.int64))
    ds["frame_atom"] = (("config", "atom"), frame_atom)
    for name in frames.data_vars:  # the source frame's per-config provenance (pool_index, system, grade, …)
        if frames[name].dims == ("config",) and name not in ds and name not in NOT_CARRIED:
            ds[name] = ("config", np.asarray(frames[name].values)[frame], frames[name].attrs)
    ds.attrs.update({"cluster_cut_buffer_A": float(settings.buffer), "cluster_cut_r_cut_A": float(r_cut),
                     "cluster_cut_radius_A": float(radius), "cluster_cut_max_atoms": int(settings.max_atoms),
                     "cluster_cut_fit_energies": int(settings.fit_energies),
                     "selection_threshold": float(threshold), "budget": int(budget),
                     "n_uncertain_atoms": int(n_candidates)})
    return ds


@dataclass(frozen=True)
class ClusterCutInputs:
    """frames: the selected periodic configurations; potential: the MTP (its cutoff is r_cut and its basis
    defines the grades); active_set: its active set (atom mode); threshold: the selection threshold; budget:
    at most this many clusters (the campaign's remaining label budget and ``[selection] budget``)."""

    frames: xr.Dataset
    potential: object
    active_set: object
    threshold: float
    budget: int


@dataclass(frozen=True)
class ClusterCutResult:
    """clusters: the configurations to label (:func:`cluster_cuts`); n_uncertain_atoms: atoms above the
    threshold before the budget cap."""

    clusters: xr.Dataset
    n_uncertain_atoms: int


def run_cluster_cuts(inputs: ClusterCutInputs, settings: ClusterCutSettings, seed=None) -> ClusterCutResult:
    """Per-atom grades of ``inputs.frames``, then :func:`cluster_cuts` with the potential's cutoff as r_cut.
    Deterministic (``seed`` is accepted for the stage contract and unused)."""
    grades = atom_grades(inputs.potential, inputs.active_set, inputs.frames)
    clusters = cluster_cuts(inputs.frames, grades, settings, float(inputs.potential.cutoff), inputs.threshold,
                            inputs.budget)
    return ClusterCutResult(clusters, int(clusters.attrs["n_uncertain_atoms"]))


def exploration_starts(labels: xr.Dataset) -> xr.Dataset:
    """The configurations of ``labels`` an HMC chain may start from: all but cluster cuts (open clusters cut from
    periodic frames, marked by a ``centre_atom`` ≥ 0; other labels hold −1 or NaN there once stored together,
    :func:`flows.store._aligned`; a chain must run in a periodic frame's own cell)."""
    if "centre_atom" not in labels:
        return labels
    cut = np.asarray(labels["centre_atom"].values, dtype=np.float64) >= 0
    return labels.isel(config=np.flatnonzero(~cut))


cluster_cut_task = task(run_cluster_cuts, name="cluster cuts")

__all__ = ["ClusterCutInputs", "ClusterCutResult", "ClusterCutSettings", "atom_grades", "cluster_cut_task",
           "cluster_cuts", "exploration_starts", "pick_centres", "run_cluster_cuts"]
