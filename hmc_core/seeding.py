"""Seeded crystallisation: a crystal seed (fcc, hcp, bcc or icosahedral) inserted into a supercooled
liquid and followed by NPT HMC; does its solid cluster grow or dissolve?

Units of the system (:class:`hmc_core.phase_system.PhaseSystem`): T* or K, P* or bar, σ or Å. The seed's
size is followed as the largest cluster of ordered a-CNA units (an atom labelled fcc, hcp, bcc, icosahedral
or five-fold, with its 12 or 14 shell neighbours; :mod:`hmc_core.order`), which sees inserted and held seeds
of every structure the command inserts: 55-atom seeds within 10 % (bcc 16 %), 19-atom seeds as their 13-atom
(bcc 15) ordered unit. The ten Wolde–Frenkel q6 clusters, used before, saw icosahedral seeds as 0–1 atoms
(neighbouring atoms of an icosahedron share no q6 orientation) and fcc seeds in part (19 → 1, 55 → 18–24
at T* = 0.6); they are kept as ``largest_cluster_q6``. Once released at T* = 0.6 the recognised part of a
55-atom seed drops within 2 sweeps to 13–62 atoms (its surface disorders; the q6 size drops alike where it
sees the seed at all), and 19-atom seeds reach the liquid's own background of single 13–15-atom units.
Figures per structure, size and temperature: ``bench/seed_recognition.py``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import xarray as xr

from hmc_core.npt import NPTConfig, NPTSampler, run_npt_chain
from hmc_core.order import STRUCTURES, shell_cutoff
from hmc_core.phase_analysis import OrderAnalysis
from hmc_core.phase_system import PhaseModel, bulk_crystal
from hmc_core.structures import crystal_seed, insert_seed, thermal_seed


def run_seeded(system: PhaseModel, liquid_positions, cell, structure: str, n_seed: int, temperature: float,
               pressure: float, n_samples: int = 200, analyse_every: int = 5, seed_density: float | None = None,
               n_warmup: int = 20, n_steps: int = 10, dt: float | None = None, seed: int = 0,
               pressure_unit: str | None = None, n_hold: int = 0, gap: float | None = None,
               crystal: tuple[np.ndarray, np.ndarray] | None = None, n_settle: int = 50) -> xr.Dataset:
    """Insert a crystalline seed (fcc/hcp/bcc/ico, ``n_seed`` atoms) into a liquid and follow it by NPT HMC.

    ``crystal``: (positions, cell) of a bulk fcc crystal thermalised at (T, P) (:func:`bulk_crystal`);
    fcc seeds are carved from it (:func:`thermal_seed`) and other seeds take its density. Without it
    (and without ``seed_density``) such a crystal is made here. ``seed_density`` given alone: a perfect
    lattice at that density. The former default, a perfect lattice at 1.12 ρ_liquid, was 2.6 % too dense
    at T* = 0.55, P* = 1. Host atoms are removed by
    :func:`insert_seed` (density-matched unless ``gap`` is given). ``n_hold``: sweeps with the seed atoms
    held in place (mass × 10¹⁰) at fixed volume while the liquid relaxes against it, before the followed run.

    Returns a Dataset over ``frame`` (``sweep``, ``largest_cluster`` (ordered units, atoms),
    ``largest_cluster_q6`` (ten Wolde–Frenkel, atoms), ``solid_fraction`` (q6), ``seed_solid_fraction``
    and ``seed_in_largest`` (seed atoms in any / the largest unit cluster), ``largest_<structure>``
    composition, ``density``) with attrs
    ``outcome`` (:func:`seeded_outcome`, after ``n_settle`` sweeps), growth-mode statistics and the seed's
    initial and final composition.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if n_hold < 0:
        raise ValueError(f"n_hold must be ≥ 0, got {n_hold}")
    x = np.asarray(liquid_positions, float)
    cell = np.asarray(cell, float)
    rho_liquid = len(x) / abs(np.linalg.det(cell))
    if crystal is None and seed_density is None:
        crystal = bulk_crystal(system, temperature, pressure, n_cells=max(5, math.ceil((n_seed / 4) ** (1 / 3)) + 3),
                               seed=seed + 11, pressure_unit=pressure_unit)[1:]
    if crystal is not None:
        c_pos, c_cell = np.asarray(crystal[0], float), np.asarray(crystal[1], float)
        rho_seed = len(c_pos) / abs(np.linalg.det(c_cell))
        seed_pos = (thermal_seed(c_pos, c_cell, n_seed) if structure == "fcc"
                    else crystal_seed(structure, n_seed, rho_seed))
    else:
        rho_seed = float(seed_density)
        seed_pos = crystal_seed(structure, n_seed, rho_seed)
    x, is_seed = insert_seed(x, cell, seed_pos, gap=gap, seed_density=rho_seed)
    n = len(x)
    npt = NPTConfig(pressure=pressure, pressure_unit=pressure_unit)
    ff = system.force_field(n, cell)
    cfg = system.hmc_settings(temperature, n_steps, n_warmup, dt)
    cutoff = shell_cutoff(rho_liquid)
    analysis = OrderAnalysis(cutoff=cutoff, tracked=is_seed, clusters="units")
    inserted = analysis(x, cell)
    state = None
    if n_hold > 0:
        # fixed volume while held: with cell moves the box expanded by up to 5 % (ρ 0.90 against the liquid's
        # 0.946 around a 321-atom seed) to relieve the seed–liquid contacts the frozen seed cannot relieve
        masses = np.where(is_seed, 1e10, 1.0) * system.mass
        held = NPTSampler(ff, cfg, replace(npt, volume_moves=0), masses=masses)
        state = run_npt_chain(held, x, n_hold, seed=seed + 1, save_every=n_hold).state
        x = state.hmc.positions
        cell = state.cell.copy()
    sampler = NPTSampler(ff, cfg, npt)
    initial = analysis(x, cell)
    res = run_npt_chain(sampler, x, n_samples, seed=seed, save_every=analyse_every, analyse=analysis, state=state)
    sweeps = np.concatenate([[-1], res.frame_sample]) + 1
    data = {key: ("frame", np.concatenate([[initial[key]], values])) for key, values in res.analysis.items()}
    ds = xr.Dataset(data, coords={"frame": np.arange(len(sweeps))})
    ds["sweep"] = ("frame", sweeps)
    volumes = np.concatenate([[abs(np.linalg.det(cell))], np.abs(np.linalg.det(res.frame_cells))])
    ds["density"] = ("frame", n / volumes)
    size = ds["largest_cluster"].values
    n0 = float(size[0])
    outcome, n_ref = seeded_outcome(size, sweeps, n_settle)
    inc = np.diff(size)
    per_sweep = inc / np.maximum(np.diff(sweeps), 1)
    ds.attrs.update({
        **system.describe(), "structure": structure, "n_seed": n_seed,
        "temperature": temperature, "pressure": pressure, "n_atoms": n, "cutoff": cutoff, "outcome": outcome,
        "seed_density": rho_seed, "liquid_density": rho_liquid,
        "cluster_criterion": "ordered a-CNA units (hmc_core.order); largest_cluster_q6: ten Wolde-Frenkel",
        "inserted_largest_cluster": float(inserted["largest_cluster"]),
        "inserted_largest_cluster_q6": float(inserted["largest_cluster_q6"]),
        "inserted_seed_in_largest": float(inserted["seed_in_largest"]),
        "initial_largest_cluster": n0, "settled_largest_cluster": n_ref, "n_settle": n_settle,
        "final_largest_cluster": float(size[-1]),
        "max_largest_cluster": float(size.max()), "final_seed_solid_fraction": float(ds["seed_solid_fraction"][-1]),
        "mean_abs_increment": float(np.abs(inc).mean()) if len(inc) else 0.0,
        "max_increment": float(inc.max()) if len(inc) else 0.0,
        "mean_increment_per_sweep": float(per_sweep.mean()) if len(inc) else 0.0,
        "max_increment_per_sweep": float(per_sweep.max()) if len(inc) else 0.0,
        "fraction_small_increments": float(np.mean(np.abs(inc) <= 3)) if len(inc) else 1.0,
        "initial_composition": " ".join(f"{s}={initial[f'largest_{s}']:.2f}" for s in STRUCTURES),
        "final_composition": " ".join(f"{s}={res.analysis[f'largest_{s}'][-1]:.2f}" for s in STRUCTURES),
        "hmc_acceptance": res.hmc_acceptance, "volume_acceptance": res.volume_acceptance,
        "analyse_every": analyse_every, "n_hold": n_hold, "seed": seed, "schema": "pesflow.seeded_crystallisation/3",
    })
    return ds


def seeded_outcome(largest_cluster, sweeps, n_settle: int = 50) -> tuple[str, float]:
    """Classify a seeded run from its largest-cluster trace: (outcome, n_ref).

    n_ref is the median largest cluster over the frames with 0 < sweep ≤ ``n_settle``: a seed released after
    being held drops at once by ~30 % (its frozen surface atoms had ≥ 7 solid bonds, thermal ones do not:
    282 → 195 for a 321-atom seed at T* = 0.55 in 10 sweeps, which then grew back to 250), so the size at
    release is no reference. With n_end the mean of the last fifth of the frames and n₀ the size at release:
    "grew" when n_end − n_ref > max(20, n_ref / 4); "dissolved" when n_end < n_ref / 2, or when
    n_end < n₀ / 2 and n_end < n_ref (a small seed that dissolved within the settling window leaves the
    liquid's background clusters as n_ref: 0–15 atoms at T* = 0.6–0.7, single 13-atom units of the liquid's
    own icosahedral or crystalline order); else "undecided".
    """
    size = np.asarray(largest_cluster, float)
    sweeps = np.asarray(sweeps)
    settle = size[(sweeps > 0) & (sweeps <= n_settle)]
    n_ref = float(np.median(settle)) if len(settle) else float(size[0])
    n_end = float(size[-max(2, len(size) // 5):].mean())
    if n_end - n_ref > max(20.0, n_ref / 4):
        return "grew", n_ref
    if n_end < n_ref / 2 or (n_end < size[0] / 2 and n_end < n_ref):
        return "dissolved", n_ref
    return "undecided", n_ref
