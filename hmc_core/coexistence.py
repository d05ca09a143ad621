"""Two-phase (solid | liquid) coexistence runs with NPT HMC and the melting bracket they give.

A crystal that grows at T proves T < T_m, one that melts T > T_m. Units of the system
(:class:`hmc_core.phase_system.PhaseModel`: Lennard-Jones or a fitted MTP): T* or K, P* or bar, σ or Å,
densities in 1/length³.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

from hmc_core.melting_statistics import finite_size_check, interface_velocity, interface_width
from hmc_core.npt import NPTConfig, NPTSampler, run_npt_chain
from hmc_core.order import compute_order, shell_cutoff
from hmc_core.phase_analysis import SolidFraction
from hmc_core.phase_system import PhaseModel, bulk_crystal
from hmc_core.structures import lattice, min_box_height, minimum_image, two_phase_box
from hmc_core.units import get_units


def run_coexistence(system: PhaseModel, temperature: float, pressure: float, n_cells: Sequence[int] = (6, 6, 12),
                    n_samples: int = 1000, analyse_every: int = 20, n_melt: int = 150, n_hold: int = 30,
                    n_bulk: int = 60, melt_temperature: float | None = None, solid_density: float | None = None,
                    n_steps: int = 20, n_warmup: int = 30, threshold: float = 0.03, seed: int = 0,
                    pressure_unit: str | None = None, progress: Callable[[str], None] | None = None
                    ) -> xr.Dataset:
    """Two-phase (solid | liquid) NPT HMC run at one (T, P): does the crystal grow or melt?

    1. ρ_s: a bulk fcc crystal of nx × ny × nz/2 cells at (T, P) by isotropic NPT HMC (``n_bulk`` sweeps; or
       give ``solid_density``). It sets the crystal's lattice, including its lateral spacing, which stays
       fixed afterwards, and its last frame's thermal displacements are put on the crystal half (a held
       T = 0 lattice templated ~4 extra solid-like layers into the liquid during the hold, even at T ≫ T_m).
    2. :func:`two_phase_box` with the upper half stretched to the liquid density (JZG estimate for LJ).
    3. Melt that half at ``melt_temperature`` (default ``system.default_melt_temperature``: max(2 T, 2 ε/k_B) for LJ,
       2 T for an MTP) at fixed volume for ``n_melt``
       sweeps while the crystal atoms are held (mass × 10¹⁰).
    4. ``n_hold`` sweeps at T with the crystal still held and z-only volume moves: the liquid cools and
       L_z relaxes to the pressure.
    5. ``n_samples`` free sweeps at (T, P), volume moves on L_z only (NPTConfig mode "z"): the lateral box
       keeps the bulk crystal's lattice spacing so the crystal is not strained; the liquid transmits the
       pressure along z. Order parameters every ``analyse_every`` sweeps.

    Outcome from the change Δφ of the solid-like fraction (ten Wolde–Frenkel, shell cutoff at ρ_s) from the
    release of the crystal (frame 0) to the mean of the last fifth of the analysed frames: "grew"
    (Δφ > ``threshold``: T < T_m), "melted" (Δφ < −threshold: T > T_m) or "undecided". One (100) layer
    is 1/(2 nz) of the atoms (0.042 at nz = 12).

    Returns a Dataset: per ``sample`` (sweep) ``potential_energy`` (per atom) and ``box_z``; per ``frame``
    ``sweep``, ``solid_fraction``, ``largest_cluster``, ``solid_profile`` (frame, slab); the final
    configuration; attrs with the outcome, Δφ, ΔU per atom (last fifth − first 20 sweeps), densities and
    acceptances, and the statistics of :func:`run_statistics` (interface velocity ± standard error, its t-test
    outcome, interface width, finite-size check).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if melt_temperature is not None and not melt_temperature > temperature:
        raise ValueError(f"melt_temperature = {melt_temperature} must exceed the temperature {temperature}")
    for name, v in (("n_samples", n_samples), ("analyse_every", analyse_every), ("n_steps", n_steps)):
        if v < 1:
            raise ValueError(f"{name} must be ≥ 1, got {v}")
    for name, v in (("n_melt", n_melt), ("n_hold", n_hold), ("n_bulk", n_bulk)):
        if v < 0:
            raise ValueError(f"{name} must be ≥ 0, got {v}")
    say = progress or (lambda msg: None)
    label = f"T={temperature:g}"
    if len(n_cells) != 3:
        raise ValueError(f"n_cells must be three cell counts (nx, ny, nz), got {n_cells}")
    displacements = None
    if solid_density is None:
        if n_bulk < 10:
            raise ValueError(f"n_bulk = {n_bulk}: give ≥ 10 sweeps for the bulk crystal density or pass solid_density")
        half = (int(n_cells[0]), int(n_cells[1]), max(1, int(n_cells[2]) // 2))
        solid_density, c_pos, c_cell = bulk_crystal(system, temperature, pressure, n_cells=half, n_samples=n_bulk,
                                                    seed=seed + 7, pressure_unit=pressure_unit)
        # thermal displacements of the final bulk frame from its lattice sites (centre-of-mass drift removed)
        ideal = lattice("fcc", half, len(c_pos) / abs(np.linalg.det(c_cell)))[0]
        displacements = minimum_image(c_pos - ideal, c_cell)
        displacements -= displacements.mean(axis=0)
        say(f"{label}: bulk fcc density {solid_density:.4f}")
    rho_l = system.liquid_density_guess(temperature, pressure, solid_density, pressure_unit)
    x, cell, is_crystal = two_phase_box(n_cells, solid_density, rho_l)
    if displacements is not None:  # the crystal half starts thermal, not as a T = 0 lattice
        sites = lattice("fcc", half, solid_density)[0]
        x = np.vstack([sites + displacements, x[~is_crystal]])
        is_crystal = np.arange(len(x)) < len(sites)
    cutoff = system.cutoff
    width = min_box_height(lattice("fcc", n_cells, solid_density)[1])
    if width <= 2 * cutoff:
        raise ValueError(f"the box {tuple(int(c) for c in n_cells)} fcc cells is {width:.3g} "
                         f"{system.length_unit} across at its thinnest, not more than twice the "
                         f"cutoff {cutoff:.3g}: atoms would see their own periodic images; use more cells "
                         "(e.g. 6 × 6 × 12 at r_c = 3σ) or a shorter cutoff")
    n = len(x)
    ff = system.force_field(n, cell)
    masses = np.where(is_crystal, 1e10, 1.0) * system.mass
    order_cutoff = shell_cutoff(solid_density)
    analysis = SolidFraction(order_cutoff, n_slabs=2 * int(n_cells[2]))
    state, melted_solid = None, float("nan")
    if n_melt > 0:
        t_melt = melt_temperature or system.default_melt_temperature(temperature)
        melt_sampler = NPTSampler(ff, system.hmc_settings(t_melt, n_steps, n_warmup),
                                  NPTConfig(pressure=pressure, pressure_unit=pressure_unit, volume_moves=0),
                                  masses=masses)
        state = run_npt_chain(melt_sampler, x, n_melt, seed=seed + 1, save_every=n_melt).state
        melted_solid = float(compute_order(state.hmc.positions, state.cell, cutoff=order_cutoff,
                                           structures=False).solid[~is_crystal].mean())
        say(f"{label}: melted the upper half at T={t_melt:g} (solid-like fraction there {melted_solid:.3f})")
        if melted_solid > 0.2:
            raise ValueError(f"the upper half did not melt at T = {t_melt:g} in {n_melt} sweeps (solid-like fraction "
                             f"{melted_solid:.2f}); raise melt_temperature or n_melt")
    npt = NPTConfig(pressure=pressure, pressure_unit=pressure_unit, mode="z")
    cfg = system.hmc_settings(temperature, n_steps, n_warmup)
    if n_hold > 0:
        held = NPTSampler(ff, cfg, npt, masses=masses)
        state = run_npt_chain(held, x, n_hold, seed=seed + 2, save_every=n_hold, state=state).state
        say(f"{label}: liquid relaxed against the held crystal ({n_hold} sweeps)")
    start_x = x if state is None else state.hmc.positions.copy()
    start_cell = cell if state is None else state.cell.copy()
    initial = analysis(start_x, start_cell)
    sampler = NPTSampler(ff, cfg, npt)
    chunks, results = max(1, min(5, n_samples // max(analyse_every, 1))), []
    bounds = np.linspace(0, n_samples, chunks + 1).astype(int)
    for k in range(chunks):
        m = int(bounds[k + 1] - bounds[k])
        res = run_npt_chain(sampler, start_x, m, seed=seed, save_every=analyse_every, analyse=analysis,
                            state=state, warmup=k == 0)
        state = res.state
        results.append((int(bounds[k]), res))
        say(f"{label}: sweep {bounds[k + 1]}/{n_samples}, solid fraction {res.analysis['solid_fraction'][-1]:.3f}")
    u = np.concatenate([r.potential_energy for _, r in results]) / n
    area = float(np.linalg.norm(np.cross(start_cell[0], start_cell[1])))  # lateral cell is never changed
    box_z = np.concatenate([r.volume for _, r in results]) / area
    frame_sweeps = np.concatenate([[0]] + [off + r.frame_sample + 1 for off, r in results])
    keys = ["solid_fraction", "largest_cluster"]
    series = {k: np.concatenate([[initial[k]]] + [r.analysis[k] for _, r in results]) for k in keys}
    slabs = sorted(k for k in initial if k.startswith("slab_"))
    profile = np.array([[initial[k] for k in slabs]]
                       + [[r.analysis[k][f] for k in slabs] for _, r in results for f in range(len(r.frame_sample))])
    phi = series["solid_fraction"]
    fifth = max(1, len(phi) // 5)
    d_phi = float(phi[-fifth:].mean() - phi[0])
    s_fifth = max(1, len(u) // 5)
    d_u = float(u[-s_fifth:].mean() - u[:min(20, s_fifth)].mean())
    outcome = "grew" if d_phi > threshold else ("melted" if d_phi < -threshold else "undecided")
    statistics = run_statistics(frame_sweeps, phi, profile, start_cell, system.cutoff)
    say(f"{label}: {outcome} (Δφ = {d_phi:+.3f}, ΔU = {d_u:+.4f} per atom); interface velocity "
        f"{statistics['velocity'] * 1000:+.4f} ± {statistics['velocity_standard_error'] * 1000:.4f} solid fraction "
        f"per 1000 sweeps: {statistics['velocity_outcome']}")
    units = get_units(system.units)
    ds = xr.Dataset(
        {"potential_energy": ("sample", u), "box_z": ("sample", box_z), "sweep": ("frame", frame_sweeps),
         "solid_fraction": ("frame", series["solid_fraction"]),
         "largest_cluster": ("frame", series["largest_cluster"]),
         "solid_profile": (("frame", "slab"), profile),
         "final_positions": (("atom", "xyz"), state.hmc.positions.copy()),
         "final_cell": (("cell_vector", "xyz"), state.cell.copy()),
         "initial_crystal": ("atom", is_crystal)},
        coords={"sample": np.arange(1, len(u) + 1), "frame": np.arange(len(frame_sweeps)),
                "xyz": ["x", "y", "z"]})
    ds["potential_energy"].attrs["units"] = f"{units.energy}/atom"
    ds["box_z"].attrs["units"] = units.length
    hmc_acc = float(np.mean([r.hmc_acceptance for _, r in results]))
    vol_acc = float(np.nanmean([r.volume_acceptance for _, r in results]))
    ds.attrs.update({
        **system.describe(),
        "temperature": float(temperature), "pressure": float(pressure),
        "pressure_unit": pressure_unit or system.default_pressure_unit,
        "n_atoms": n, "n_cells": " ".join(str(int(c)) for c in n_cells), "solid_density": solid_density,
        "liquid_density_guess": rho_l, "melted_half_solid_fraction": melted_solid,
        "order_cutoff": order_cutoff, "volume_mode": "z",
        "outcome": outcome, "delta_solid_fraction": d_phi, "delta_potential_energy": d_u, "threshold": threshold,
        "initial_solid_fraction": float(phi[0]), "final_solid_fraction": float(phi[-1]),
        "final_density": float(n / abs(np.linalg.det(state.cell))), "hmc_acceptance": hmc_acc,
        "volume_acceptance": vol_acc, "dt": float(results[-1][1].final_dt), "n_samples": n_samples,
        "n_melt": n_melt, "n_hold": n_hold, "n_steps": n_steps, "seed": seed, **statistics,
        "schema": "pesflow.coexistence/2"})
    return ds


def run_statistics(sweeps: np.ndarray, solid_fraction: np.ndarray, profile: np.ndarray, cell: np.ndarray,
                   cutoff: float) -> dict:
    """The statistical verdict of one run (:mod:`hmc_core.melting_statistics`): interface velocity (solid fraction
    per sweep), its batch-means standard error and dof, the t-test outcome at 95 % (``velocity_outcome``),
    ``saturated``; the interface width from the slab profile and the finite-size check of the lateral box side
    (``lateral_side``, ``lateral_over_cutoff``, ``finite_size_ok``, ``finite_size_warning``). Velocity NaN and
    outcome "undecided" when the run has fewer than 6 analysed frames. All values netCDF-attribute types."""
    try:
        v = interface_velocity(sweeps, solid_fraction).as_dict()
    except ValueError:
        nan = float("nan")
        v = {"velocity": nan, "velocity_standard_error": nan, "velocity_dof": 0, "velocity_z": nan,
             "velocity_frames": int(len(sweeps)), "velocity_first_sweep": nan, "velocity_last_sweep": nan,
             "saturated": False, "velocity_outcome": "undecided"}
    v["saturated"] = int(v["saturated"])
    heights = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    lateral = float(min(heights[0], heights[1]))
    width = interface_width(profile, float(heights[2]) / profile.shape[1])
    check = finite_size_check(lateral, cutoff, width)
    return {**v, "interface_width": width, "lateral_side": lateral,
            "lateral_over_cutoff": check["lateral_over_cutoff"], "finite_size_ok": int(check["ok"]),
            "finite_size_warning": check["warning"]}


def coexistence_bracket(runs: Sequence[xr.Dataset]) -> dict:
    """Melting bracket from coexistence runs: T_grew = highest T whose crystal grew (T_m > T_grew),
    T_melted = lowest T whose crystal melted (T_m < T_melted). ``consistent`` is False when a melted run
    lies below a grown one (too short runs or too small a threshold). NaN where not seen."""
    grew = [ds.attrs["temperature"] for ds in runs if ds.attrs["outcome"] == "grew"]
    melted = [ds.attrs["temperature"] for ds in runs if ds.attrs["outcome"] == "melted"]
    lo = max(grew, default=float("nan"))
    hi = min(melted, default=float("nan"))
    consistent = not (grew and melted and min(melted) < max(grew))
    mid = 0.5 * (lo + hi) if np.isfinite(lo) and np.isfinite(hi) else float("nan")
    return {"T_grew": lo, "T_melted": hi, "bracket": (lo, hi), "T_mid": mid, "consistent": consistent}
