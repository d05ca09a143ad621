"""Prefect flows for phase transitions: ``melting_curve``, ``coexistence`` and ``seeded_crystallisation``.

``melting_curve``: heating ladders from an fcc crystal (perfect, and with random vacancies/interstitials)
and cooling ladders from a melted liquid at fixed pressure, ``n_chains`` independent replicas each, all
as parallel Prefect tasks. The run directory gets ``ladders/*.nc`` (one per ladder, with its final
configuration), ``melting_curve.nc`` (all curves along dim ``ladder``), ``melting_curve.png`` and
``summary.json`` (the melting bracket from the hysteresis and the published LJ melting line).

``coexistence``: two-phase (fcc | liquid, (100) interface normal to z) NPT HMC runs at several
temperatures, one Prefect task each, run in parallel. A crystal that grows proves T < T_m, one that melts
T > T_m; the run directory gets ``coexistence.nc`` (dim ``temperature`` × ``frame``/``sample``),
``runs/T*.nc`` (with final configurations), ``coexistence.png`` (solid fraction and potential energy
against sweep per T) and ``summary.json`` (the bracket and the published LJ melting temperature).

``seeded_crystallisation``: for each temperature a supercooled liquid is prepared once, then each
(seed structure, seed size) runs as a task; ``seeded.nc`` (dim ``run`` × ``frame``), ``runs/*.nc``,
``seeded.png`` and ``summary.json`` (outcome per run, critical seed-size bracket per temperature and
structure, seed survival and growth-mode statistics).

Results are plain xarray/netCDF and JSON; the numerics live in ``hmc_core`` (ladders, seeding, coexistence), the stage
functions in :mod:`tasks.phase`; this module only wires and reports.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import xarray as xr
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from hmc_core.coexistence import coexistence_bracket
from hmc_core.configurations import write_netcdf
from hmc_core.ladders import melting_bracket
from hmc_core.lj_reference import TRIPLE_POINT_MASTNY_DE_PABLO, melting_temperature, published_melting_temperatures
from hmc_core.melting_statistics import InterfaceVelocity, adaptive_melting_point, fit_runs
from hmc_core.phase_system import PhaseModel
from tasks.phase import (
    coexistence_task,
    crystal_task,
    ladder_task,
    seeded_run_task,
    supercooled_liquid_task,
)
from tasks.phase_settings import CoexistenceSettings, MeltingCurveSettings, SeededSettings

#: the summaries' ``reference`` for a fitted MTP
NO_REFERENCE = "none: a fitted MTP has no published melting line (compare with experiment or the training method)"


def reference_melting_temperature(system: PhaseModel, pressure: float) -> float:
    """Published LJ melting temperature at ``pressure`` in the system's units (NaN outside the fit, and for a
    fitted MTP)."""
    if not system.is_lennard_jones:
        return float("nan")
    p_star = pressure / system.reduced_pressure_to_user(1.0)
    try:
        t_star = TRIPLE_POINT_MASTNY_DE_PABLO if p_star < 0.05 else melting_temperature(p_star)
    except ValueError:  # beyond the fitted range of the melting line
        return float("nan")
    return t_star * system.epsilon_over_kB


def keep_as_finished(futures, path_of) -> list[xr.Dataset]:
    """Results of ``futures`` in submission order, each written to ``path_of(ds)`` (netCDF, atomically) the
    moment its run finishes, so a crash or kill of the study keeps every run that had finished. If runs failed,
    the finished ones are on disk and a RuntimeError names the failures."""
    from prefect.futures import as_completed

    results, failures = {}, []
    index = {id(f): k for k, f in enumerate(futures)}
    for fut in as_completed(futures):
        try:
            ds = fut.result()
        except Exception as exc:  # a failed run must not cost the others their results
            failures.append(f"run {index[id(fut)]}: {type(exc).__name__}: {exc}")
            continue
        write_netcdf(ds, path_of(ds))
        results[index[id(fut)]] = ds
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(futures)} runs failed ({'; '.join(failures)}); the "
                           f"{len(results)} finished runs are saved")
    return [results[k] for k in range(len(futures))]


def published_melting(system: PhaseModel, pressure: float) -> dict:
    """The published LJ melting temperatures at ``pressure`` in the system's units, with sources and their spread
    (:func:`hmc_core.lj_reference.published_melting_temperatures`; full potential, N → ∞); none for an MTP."""
    if not system.is_lennard_jones:
        return {"published_T_m": [], "published_spread": None}
    p_star = pressure / system.reduced_pressure_to_user(1.0)
    values = [{"T_m": v["T_m"] * system.epsilon_over_kB, "source": v["source"]}
              for v in published_melting_temperatures(p_star)]
    ts = [v["T_m"] for v in values]
    return {"published_T_m": values, "published_spread": [min(ts), max(ts)] if ts else None}


def _ladder_name(ds: xr.Dataset) -> str:
    kind = "perfect" if ds.attrs["vacancy_fraction"] == 0 and ds.attrs["interstitial_fraction"] == 0 else "defects"
    return f"{ds.attrs['direction']}-{kind}-r{ds.attrs['replica']}"


def combine_ladders(ladders: list[xr.Dataset]) -> xr.Dataset:
    """All ladders along a new dim ``ladder`` (curve variables only; configurations stay in ladders/*.nc)."""
    curves = [ds.drop_vars(["final_positions", "final_cell"]).drop_attrs(deep=False)
              .expand_dims(ladder=[_ladder_name(ds)]) for ds in ladders]
    out = xr.concat(curves, dim="ladder", join="outer")
    out["direction"] = ("ladder", [ds.attrs["direction"] for ds in ladders])
    out["vacancy_fraction"] = ("ladder", [ds.attrs["vacancy_fraction"] for ds in ladders])
    out["interstitial_fraction"] = ("ladder", [ds.attrs["interstitial_fraction"] for ds in ladders])
    out["n_atoms"] = ("ladder", [ds.attrs["n_atoms"] for ds in ladders])
    keep = ("element", "units", "cutoff_sigma", "potential_cutoff", "potential", "potential_file", "lattice_constant",
            "lattice_constant_source", "pressure", "pressure_unit", "n_samples", "n_warmup")
    out.attrs.update({k: ladders[0].attrs[k] for k in keep if k in ladders[0].attrs})
    out.attrs["schema"] = "pesflow.melting_curve/1"
    return out


def plot_melting_curve(curves: xr.Dataset, summary: dict, path: Path) -> Path:
    """Density, enthalpy per atom and solid fraction against temperature, heating vs cooling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    t = curves["temperature"].values
    for k, name in enumerate(curves["ladder"].values):
        heating = str(curves["direction"].values[k]) == "heating"
        defects = "defects" in str(name)
        style = dict(color=("tab:orange" if defects else "tab:red") if heating else "tab:blue",
                     ls="-" if heating else "--", marker="o" if heating else "s", ms=3, label=str(name))
        for ax, var in zip(axes, ("density", "enthalpy", "solid_fraction_final"), strict=True):
            ax.plot(t, curves[var].values[k], **style)
    lo, hi = summary["bracket"]
    for ax, label in zip(axes, ("density", "enthalpy / atom", "solid fraction (end of each T)"), strict=True):
        if np.isfinite(summary["reference_T_m"]):
            ax.axvline(summary["reference_T_m"], color="grey", lw=1, label="LJ melting line")
        if np.isfinite(lo) and np.isfinite(hi):
            ax.axvspan(lo, hi, color="grey", alpha=0.15, label="bracket")
        ax.set_xlabel(f"T ({'K' if curves.attrs['units'] == 'metal' else 'ε/k_B'})")
        ax.set_ylabel(label)
    axes[2].legend(fontsize=7)
    fig.suptitle(f"{curves.attrs['element']} at P = {curves.attrs['pressure']:g} {curves.attrs['pressure_unit']}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@flow(name="melting-curve", flow_run_name="melt-{settings.element}-P{settings.pressure:g}-{settings.n_cells}cells-"
                                         "rng{settings.seed}", persist_result=False, log_prints=False)
def melting_curve(settings: MeltingCurveSettings, run_dir: str = "runs/melting") -> dict:
    """Heating and cooling curves at fixed pressure with their hysteresis and the melting bracket.

    settings: the validated study (:class:`tasks.phase_settings.MeltingCurveSettings`, built once by the CLI).
    Returns the summary dict (also in ``run_dir/summary.json``).
    """
    s = settings
    system = s.system()
    out = Path(run_dir)
    (out / "ladders").mkdir(parents=True, exist_ok=True)
    log = get_run_logger()
    variants = [(0.0, 0.0)]
    if s.vacancy_fraction > 0 or s.interstitial_fraction > 0:
        variants.append((s.vacancy_fraction, s.interstitial_fraction))
    jobs = []
    for r in range(s.n_chains):
        for vac, inter in variants:
            jobs.append(dict(direction="heating", vacancy_fraction=vac, interstitial_fraction=inter, replica=r))
        jobs.append(dict(direction="cooling", vacancy_fraction=0.0, interstitial_fraction=0.0, replica=r))
    common = dict(system=system, temperatures=list(s.temperatures), pressure=s.pressure, n_cells=s.n_cells,
                  n_samples=s.n_samples, n_warmup=s.n_warmup, analyse_every=s.analyse_every)
    log.info("%d ladders × %d temperatures, %d atoms", len(jobs), len(s.temperatures), 4 * s.n_cells**3)
    with ThreadPoolTaskRunner(max_workers=s.n_workers) as runner:
        futures = [runner.submit(ladder_task, {**common, **job, "seed": s.run_seed(s.stream(k))})
                   for k, job in enumerate(jobs)]
        ladders = keep_as_finished(futures, lambda ds: out / "ladders" / f"{_ladder_name(ds)}.nc")
    curves = combine_ladders(ladders)
    write_netcdf(curves, out / "melting_curve.nc")
    heating = [ds for ds in ladders if ds.attrs["direction"] == "heating"]
    cooling = [ds for ds in ladders if ds.attrs["direction"] == "cooling"]
    bracket = melting_bracket(heating, cooling)
    perfect = melting_bracket([ds for ds in heating if ds.attrs["vacancy_fraction"] == 0
                               and ds.attrs["interstitial_fraction"] == 0], cooling)
    defective = melting_bracket([ds for ds in heating if ds.attrs["vacancy_fraction"] > 0
                                 or ds.attrs["interstitial_fraction"] > 0], cooling)
    summary = {
        "settings": s.summary(), "n_atoms_perfect": 4 * s.n_cells**3,
        "bracket": [v if math.isfinite(v) else None for v in bracket["bracket"]],
        "T_plus": bracket["T_plus"], "T_minus": bracket["T_minus"],
        "T_hysteresis": bracket["T_hysteresis"],
        "T_plus_perfect": perfect["T_plus"], "T_plus_defective": defective["T_plus"],
        "reference_T_m": reference_melting_temperature(system, s.pressure),  # NaN → null below
        "reference": ("Agrawal & Kofke, Mol. Phys. 85, 43 (1995) form with van der Hoef (2000) coefficients; "
                      "triple point 0.694 (Mastny & de Pablo, JCP 127, 104504 (2007)) below P* = 0.05")
        if system.is_lennard_jones else NO_REFERENCE,
        "cutoff_note": (f"LJ cut at {s.cutoff_sigma}σ, energy shifted to zero there, with the analytic tail "
                        "correction; the references are for the full potential and N → ∞") if system.is_lennard_jones
        else f"{system.describe()['potential']}; no published melting line",
        **published_melting(system, s.pressure),
    }
    summary = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    plot_melting_curve(curves, {**summary, "bracket": bracket["bracket"],
                                "reference_T_m": summary["reference_T_m"] or float("nan")}, out / "melting_curve.png")
    create_markdown_artifact(key="melting-curve", markdown=_melting_markdown(summary, out))
    return summary


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _melting_markdown(summary: dict, out: Path) -> str:
    lo, hi = summary["bracket"]
    return (f"# Melting curve ({summary['settings']['element']}, P = {summary['settings']['pressure']})\n\n"
            f"| quantity | value |\n|---|---|\n| T₋ (liquid crystallised on cooling) | {_fmt(lo)} |\n"
            f"| T₊ (crystal melted on heating) | {_fmt(hi)} |\n"
            f"| T₊ perfect / defective | {_fmt(summary['T_plus_perfect'])} / {_fmt(summary['T_plus_defective'])} |\n"
            f"| hysteresis estimate | {_fmt(summary['T_hysteresis'])} |\n"
            f"| published melting line | {_fmt(summary['reference_T_m'])} |\n\nResults in `{out}`.")


def plot_coexistence(combined: xr.Dataset, summary: dict, path: Path) -> Path:
    """Solid fraction and potential energy per atom against sweep, one line per temperature."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.2), constrained_layout=True)
    temps = combined["temperature"].values
    colours = plt.cm.coolwarm(np.linspace(0, 1, len(temps)))
    for k, t in enumerate(temps):
        outcome = str(combined["outcome"].values[k])
        axes[0].plot(combined["sweep"].values[k], combined["solid_fraction"].values[k], color=colours[k],
                     marker="o", ms=2, label=f"T = {t:g} ({outcome})")
        u = combined["potential_energy"].values[k]
        window = max(1, len(u) // 50)
        smooth = np.convolve(u, np.ones(window) / window, mode="valid")
        axes[1].plot(np.arange(len(smooth)) + window, smooth, color=colours[k])
    axes[0].set_ylabel("solid-like fraction (ten Wolde–Frenkel)")
    axes[1].set_ylabel(f"potential energy per atom (running mean, {combined.attrs['energy_unit']})")
    for ax in axes[:2]:
        ax.set_xlabel("NPT HMC sweep (after the interface relaxed)")
    plot_velocities(axes[2], combined, summary.get("melting_point"))
    lo, hi = (f"{v:.4g}" if v is not None else "?" for v in summary["bracket"])
    ref = summary["reference_T_m"]
    attrs = combined.attrs
    fig.suptitle(f"{attrs['element']} at P = {attrs['pressure']:g} {attrs['pressure_unit']}, "
                 f"{combined.attrs['n_atoms']} atoms, r_c = {_cutoff_text(attrs)}: {lo} < T_m < {hi}"
                 + (f" (published {ref:.3f})" if ref is not None else ""))
    axes[0].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_velocities(ax, combined: xr.Dataset, melting_point: dict | None) -> None:
    """Interface velocity ± 2 standard errors against T, with the fitted zero crossing and its interval."""
    if "velocity" not in combined:
        return
    t = combined["temperature"].values
    v, e = combined["velocity"].values * 1000, combined["velocity_standard_error"].values * 1000
    ax.errorbar(t, v, yerr=2 * np.nan_to_num(e), fmt="o", ms=4, capsize=2, color="k")
    ax.axhline(0, color="grey", lw=0.8)
    if melting_point and melting_point.get("T_m") is not None:
        tm = melting_point["T_m"]
        ax.axvline(tm, color="C3", label=f"T_m = {tm:.4g}")
        lo, hi = melting_point["ci"]
        if lo is not None and hi is not None:
            ax.axvspan(lo, hi, color="C3", alpha=0.2, label=f"{100 * melting_point['level']:g} % [{lo:.4g}, {hi:.4g}]")
        ax.plot(t, melting_point["slope"] * 1000 * (t - tm), color="C3", lw=0.8)
        ax.legend(fontsize=7)
    ax.set_xlabel("temperature")
    ax.set_ylabel("interface velocity (solid fraction per 1000 sweeps)")


def _cutoff_text(attrs) -> str:
    if "cutoff_sigma" in attrs:
        return f"{attrs['cutoff_sigma']:g}σ"
    return f"{attrs['potential_cutoff']:g} Å (MTP)"


def combine_coexistence(runs: list[xr.Dataset]) -> xr.Dataset:
    """Coexistence runs along dim ``temperature`` (no configurations; those stay in runs/*.nc)."""
    runs = sorted(runs, key=lambda ds: ds.attrs["temperature"])
    parts = [ds.drop_vars(["final_positions", "final_cell", "initial_crystal"]).drop_attrs(deep=False)
             .expand_dims(temperature=[ds.attrs["temperature"]]) for ds in runs]
    out = xr.concat(parts, dim="temperature", join="outer")
    for key in ("outcome", "delta_solid_fraction", "delta_potential_energy", "solid_density", "final_density",
                "hmc_acceptance", "volume_acceptance", "initial_solid_fraction", "final_solid_fraction",
                "velocity", "velocity_standard_error", "velocity_outcome", "saturated", "interface_width"):
        out[key] = ("temperature", [ds.attrs[key] for ds in runs])
    keep = ("element", "units", "cutoff_sigma", "potential_cutoff", "potential", "potential_file", "lattice_constant",
            "lattice_constant_source", "pressure", "pressure_unit", "n_atoms", "n_cells", "n_samples", "n_melt",
            "n_hold", "n_steps", "threshold", "volume_mode")
    out.attrs.update({k: runs[0].attrs[k] for k in keep if k in runs[0].attrs})
    out.attrs["energy_unit"] = runs[0]["potential_energy"].attrs["units"]
    out.attrs["schema"] = "pesflow.coexistence_scan/1"
    return out


def _run_path(folder: Path, ds: xr.Dataset) -> Path:
    """runs/T<T>.nc, or T<T>-<k>.nc for a repeated temperature (replicas of an adaptive study)."""
    stem = f"T{ds.attrs['temperature']:g}"
    path, k = folder / f"{stem}.nc", 1
    while path.exists():
        path, k = folder / f"{stem}-{k}.nc", k + 1
    return path


def coexistence_statistics(runs: list[xr.Dataset], settings: CoexistenceSettings, study=None) -> dict:
    """The statistical part of the summary: ``melting_point`` (T_m as the zero crossing of the interface velocity,
    Fieller interval at ``settings.confidence``; :mod:`hmc_core.melting_statistics`), with the adaptive study's
    requested width, rounds and whether it converged, and ``finite_size`` (lateral side over the cutoff and over the
    interface width against the stated minima :data:`~hmc_core.melting_statistics.MIN_LATERAL_CUTOFFS` and
    :data:`~hmc_core.melting_statistics.MIN_LATERAL_WIDTHS`, whatever ``min_cross_section`` allowed; ``ok``,
    ``warning``)."""
    from hmc_core.melting_statistics import MIN_LATERAL_CUTOFFS, MIN_LATERAL_WIDTHS, finite_size_check

    temps = [ds.attrs["temperature"] for ds in runs]
    vels = [InterfaceVelocity.from_dict(ds.attrs) for ds in runs]
    usable = [k for k, v in enumerate(vels) if math.isfinite(v.velocity)]
    point = (study.melting_point if study is not None
             else fit_runs([temps[k] for k in usable], [vels[k] for k in usable], settings.confidence,
                           settings.fit_window))
    melting = {**point.as_dict(), "adaptive": study is not None, "requested_ci_width": settings.ci_width,
               "converged": None if study is None else study.converged,
               "rounds": 1 if study is None else study.rounds, "n_runs": len(runs),
               "velocity_unit": "solid fraction per sweep"}
    widths = [ds.attrs["interface_width"] for ds in runs if math.isfinite(ds.attrs["interface_width"])]
    width = float(np.median(widths)) if widths else float("nan")
    cutoff = runs[0].attrs["lateral_side"] / runs[0].attrs["lateral_over_cutoff"]
    finite = finite_size_check(runs[0].attrs["lateral_side"], cutoff, width, MIN_LATERAL_CUTOFFS, MIN_LATERAL_WIDTHS)
    return {"melting_point": melting, "finite_size": {**finite, "n_atoms": runs[0].attrs["n_atoms"],
                                                      "n_cells": runs[0].attrs["n_cells"],
                                                      "min_cross_section_setting": settings.min_cross_section}}


@flow(name="coexistence", flow_run_name="coexist-{settings.element}-P{settings.pressure:g}-rng{settings.seed}",
      persist_result=False, log_prints=False)
def coexistence(settings: CoexistenceSettings, run_dir: str = "runs/coexistence") -> dict:
    """Melting temperature from two-phase (solid | liquid) NPT HMC runs at fixed pressure: the bracket of grown and
    melted runs, and T_m with a confidence interval from the zero crossing of the interface velocity.

    settings: the validated study (:class:`tasks.phase_settings.CoexistenceSettings`, built once by the CLI).
    Each temperature is one task (parallel threads); with ``settings.ci_width`` further batches of
    ``n_workers`` runs follow at adaptively chosen temperatures (:func:`hmc_core.melting_statistics.
    adaptive_melting_point`) until the interval is that narrow or ``max_runs`` runs were made. Returns the summary
    (also ``run_dir/summary.json``).
    """
    s = settings
    system = s.system()
    out = Path(run_dir)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    log = get_run_logger()
    log.info("coexistence runs at %d temperatures, %d atoms each, %d sweeps%s", len(s.temperatures),
             4 * int(np.prod(s.n_cells)), s.n_samples,
             "" if s.ci_width is None else f", then adaptive until the interval is ≤ {s.ci_width:g} wide")
    runs: list[xr.Dataset] = []
    with ThreadPoolTaskRunner(max_workers=s.n_workers) as runner:
        def run_batch(temps):
            start = len(runs)
            futures = [runner.submit(coexistence_task, dict(
                system=system, temperature=t, pressure=s.pressure, n_cells=s.n_cells, n_samples=s.n_samples,
                analyse_every=s.analyse_every, n_melt=s.n_melt, n_hold=s.n_hold, n_bulk=s.n_bulk, n_steps=s.n_steps,
                threshold=s.threshold, seed=s.run_seed(s.stream(start + k)), melt_temperature=s.melt_temperature))
                for k, t in enumerate(temps)]
            new = keep_as_finished(futures, lambda ds: _run_path(out / "runs", ds))
            runs.extend(new)
            for ds in new:
                log.info("T=%g: interface velocity %+.3g ± %.2g per sweep (%s)", ds.attrs["temperature"],
                         ds.attrs["velocity"], ds.attrs["velocity_standard_error"], ds.attrs["velocity_outcome"])
            return [InterfaceVelocity.from_dict(ds.attrs) for ds in new]

        study = None
        if s.ci_width is None:
            run_batch(list(s.temperatures))
        else:
            study = adaptive_melting_point(run_batch, s.temperatures, s.ci_width, s.n_workers, s.max_runs,
                                           s.confidence, s.fit_window, resolution=s.ci_width / 20)
    combined = combine_coexistence(runs)
    write_netcdf(combined, out / "coexistence.nc")
    bracket = coexistence_bracket(runs)
    statistics = coexistence_statistics(runs, s, study)
    summary = {
        "settings": s.summary(), "n_atoms": runs[0].attrs["n_atoms"],
        **statistics,
        "bracket": [v if math.isfinite(v) else None for v in bracket["bracket"]],
        "T_grew": bracket["T_grew"], "T_melted": bracket["T_melted"], "T_mid": bracket["T_mid"],
        "consistent": bracket["consistent"],
        "reference_T_m": reference_melting_temperature(system, s.pressure),
        "reference": ("Agrawal & Kofke, Mol. Phys. 85, 43 (1995) form with van der Hoef (2000) coefficients "
                      "(full potential, N → ∞)") if system.is_lennard_jones else NO_REFERENCE,
        **published_melting(system, s.pressure),
        "potential": runs[0].attrs["potential"],
        "runs": [{k: _plain(ds.attrs[k]) for k in RUN_KEYS} for ds in runs],
    }
    summary = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}
    plot_coexistence(combined, summary, out / "coexistence.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    rows = "\n".join(f"| {r['temperature']:g} | {r['outcome']} | {r['delta_solid_fraction']:+.3f} | "
                     f"{velocity_text(r)} | {r['delta_potential_energy']:+.4f} |" for r in summary["runs"])
    mp = summary["melting_point"]
    create_markdown_artifact(key="coexistence", markdown=(
        f"T_m = {mp['T_m']} ({100 * s.confidence:g} % interval {mp['ci']}); bracket {summary['bracket']} "
        f"(published {summary['reference_T_m']})\n\n"
        + (f"**finite size**: {summary['finite_size']['warning']}\n\n" if summary["finite_size"]["warning"] else "")
        + "| T | outcome | Δ solid fraction | interface velocity | ΔU per atom |\n|---|---|---|---|---|\n" + rows))
    log.info("T_m = %s, %g %% interval %s; melting bracket %s (published %s)", mp["T_m"], 100 * s.confidence,
             mp["ci"], summary["bracket"], summary["reference_T_m"])
    if summary["finite_size"]["warning"]:
        log.warning("finite size: %s", summary["finite_size"]["warning"])
    return summary


#: per-run entries of the coexistence summary
RUN_KEYS = ("temperature", "outcome", "delta_solid_fraction", "delta_potential_energy", "initial_solid_fraction",
            "final_solid_fraction", "solid_density", "final_density", "hmc_acceptance", "volume_acceptance",
            "velocity", "velocity_standard_error", "velocity_dof", "velocity_outcome", "saturated",
            "interface_width", "seed")


def velocity_text(run: dict) -> str:
    """"+1.2e-05 ± 3e-06 per sweep (grew)" for a run of the summary; "n/a" without a velocity."""
    if run.get("velocity") is None:
        return "n/a (too few frames)"
    if run.get("velocity_standard_error") is None:
        return f"{run['velocity']:+.3g} per sweep, no error: saturated within a few frames ({run['velocity_outcome']})"
    return f"{run['velocity']:+.3g} ± {run['velocity_standard_error']:.2g} per sweep ({run['velocity_outcome']})"


def _plain(v):
    """netCDF attribute values → JSON (numpy scalars to Python, NaN to None)."""
    v = v.item() if hasattr(v, "item") else v
    return None if isinstance(v, float) and not math.isfinite(v) else v


def critical_size_brackets(runs: list[xr.Dataset]) -> list[dict]:
    """Per (temperature, structure): the largest seed size that dissolved in most of its runs (more than
    half) and the smallest that grew in most of its runs, with the outcome counts per size."""
    out = []
    keys = sorted({(ds.attrs["temperature"], ds.attrs["structure"]) for ds in runs})
    for t, st in keys:
        group = [ds for ds in runs if ds.attrs["temperature"] == t and ds.attrs["structure"] == st]
        counts = {}
        for ds in group:
            c = counts.setdefault(int(ds.attrs["n_seed"]), {"grew": 0, "dissolved": 0, "undecided": 0})
            c[ds.attrs["outcome"]] += 1
        dissolved = [n for n, c in counts.items() if 2 * c["dissolved"] > sum(c.values())]
        grew = [n for n, c in counts.items() if 2 * c["grew"] > sum(c.values())]
        out.append({"temperature": t, "structure": st, "largest_dissolved": max(dissolved, default=None),
                    "smallest_grown": min(grew, default=None),
                    "outcomes": {str(n): counts[n] for n in sorted(counts)}})
    return out


def plot_seeded(combined: xr.Dataset, path: Path) -> Path:
    """Largest solid cluster against sweeps, one panel per temperature."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    temps = sorted(set(combined["temperature"].values.tolist()))
    fig, axes = plt.subplots(1, len(temps), figsize=(5 * len(temps), 3.8), squeeze=False, constrained_layout=True)
    styles = {"fcc": "-", "hcp": "--", "bcc": ":", "ico": "-."}
    for r in range(combined.sizes["run"]):
        ax = axes[0, temps.index(float(combined["temperature"].values[r]))]
        st = str(combined["structure"].values[r])
        ax.plot(combined["sweep"].values[r], combined["largest_cluster"].values[r], ls=styles[st],
                label=f"{st} {int(combined['n_seed'].values[r])} r{int(combined['replica'].values[r])}")
    for ax, t in zip(axes[0], temps, strict=True):
        ax.set_title(f"T = {t:g}")
        ax.set_xlabel("NPT HMC sweep")
        ax.set_ylabel("largest cluster of ordered units (atoms)")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@flow(name="seeded-crystallisation", flow_run_name="seed-{settings.element}-P{settings.pressure:g}-"
                                                  "{settings.n_cells}cells-rng{settings.seed}",
      persist_result=False, log_prints=False)
def seeded_crystallisation(settings: SeededSettings, run_dir: str = "runs/seeded") -> dict:
    """Insert crystal seeds into supercooled liquids and follow the largest cluster of ordered a-CNA units
    (fcc/hcp/bcc/ico/five-fold atoms with their shells, :mod:`hmc_core.seeding`; the q6 size beside it).

    Per temperature: one supercooled liquid and the bulk fcc density at (T, P) (the seeds' lattice);
    each (structure, size, replica) is a task. ``n_hold`` sweeps with the seed held let the liquid relax
    around it before the followed ``n_samples`` sweeps; replicas differ in their random streams.

    The liquid is melted at ``melt_temperature`` (default 2 × the published melting temperature) and
    quenched for ``n_quench`` NPT sweeps: its density must settle before the seed goes in (with 100
    sweeps it was still 10 % low at T* = 0.6 and every seed dissolved while the box shrank)."""
    s = settings
    system = s.system()
    out = Path(run_dir)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    t_melt = s.melt_temperature or 2.0 * reference_melting_temperature(system, s.pressure)
    with ThreadPoolTaskRunner(max_workers=s.n_workers) as runner:
        liquids = {t: runner.submit(supercooled_liquid_task, dict(
            system=system, temperature=t, pressure=s.pressure, n_cells=s.n_cells, melt_temperature=t_melt,
            n_quench=s.n_quench, seed=s.run_seed(s.stream(0, k)))) for k, t in enumerate(s.temperatures)}
        crystal = {t: runner.submit(crystal_task, dict(system=system, temperature=t, pressure=s.pressure,
                                                       seed=s.run_seed(s.stream(1, k))))
                   for k, t in enumerate(s.temperatures)}
        futures = []
        for i, t in enumerate(s.temperatures):
            for j, st in enumerate(s.structures):
                for k, n in enumerate(s.seed_sizes):
                    for r in range(s.n_replicas):
                        futures.append(runner.submit(seeded_run_task, dict(
                            system=system, liquid=liquids[t], structure=st, n_seed=n, temperature=t,
                            pressure=s.pressure, n_samples=s.n_samples, analyse_every=s.analyse_every,
                            seed=s.run_seed(s.stream(2, i, j, k, r)), n_hold=s.n_hold, replica=r, crystal=crystal[t],
                            n_steps=s.n_steps)))
        runs = keep_as_finished(futures, lambda ds: out / "runs" / (
            f"T{ds.attrs['temperature']:g}-{ds.attrs['structure']}-{ds.attrs['n_seed']}-r{ds.attrs['replica']}.nc"))
    combined = xr.concat([ds.drop_attrs(deep=False) for ds in runs], dim="run", join="outer")
    for key in ("temperature", "structure", "n_seed", "replica", "outcome", "n_atoms"):
        combined[key] = ("run", [ds.attrs[key] for ds in runs])
    combined.attrs.update({**system.describe(), "pressure": s.pressure, "schema": "pesflow.seeded/1"})
    write_netcdf(combined, out / "seeded.nc")
    plot_seeded(combined, out / "seeded.png")
    summary = {"settings": s.summary(), "melt_temperature": t_melt, "brackets": critical_size_brackets(runs),
               "runs": [{k: ds.attrs[k] for k in ("temperature", "structure", "n_seed", "replica", "n_atoms",
                                                   "outcome", "seed_density", "liquid_density",
                                                   "cluster_criterion", "inserted_largest_cluster",
                                                   "inserted_largest_cluster_q6", "initial_largest_cluster",
                                                   "settled_largest_cluster", "final_largest_cluster",
                                                   "max_largest_cluster",
                                                   "final_seed_solid_fraction", "initial_composition",
                                                   "final_composition", "mean_abs_increment", "max_increment",
                                                   "mean_increment_per_sweep", "max_increment_per_sweep",
                                                   "fraction_small_increments")} for ds in runs]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    rows = "\n".join(f"| {r['temperature']:g} | {r['structure']} | {r['n_seed']} r{r['replica']} | {r['outcome']} | "
                     f"{r['final_largest_cluster']:.0f} | {r['final_composition']} |" for r in summary["runs"])
    create_markdown_artifact(key="seeded-crystallisation", markdown=(
        "| T | seed | size | outcome | final largest cluster | final composition |\n|---|---|---|---|---|---|\n"
        + rows))
    return summary


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")
