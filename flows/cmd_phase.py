"""``pesflow melt`` (melting/solidification curves), ``pesflow coexist`` (two-phase melting bracket) and
``pesflow seed`` (seeded crystallisation).

Both run the Prefect flows of :mod:`flows.phase`; inputs are validated before Prefect starts, so bad
input fails fast with one line. Units: ``--element LJ`` is reduced (T*, P*); Ne/Ar/Kr/Xe use K and bar
(or GPa with ``--pressure-unit GPa``).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flows.app import UserError, app, console

#: settings field → command-line option, where the two names differ
OPTION_NAMES = {"n_chains": "chains", "vacancy_fraction": "vacancies", "interstitial_fraction": "interstitials",
                "n_warmup": "warmup", "cutoff_sigma": "cutoff", "n_workers": "workers", "analyse_every": "every",
                "n_melt": "melt-sweeps", "n_hold": "hold", "n_steps": "steps", "structures": "structure",
                "seed_sizes": "size", "n_quench": "quench", "n_replicas": "replicas", "temperatures": "t-min/--t-max",
                "n_cells": "n-cells / --cells"}


def _settings(model, **values):
    """The study's settings model, validated once; pydantic's errors become one line naming the option."""
    from pydantic import ValidationError

    from hmc_core.units import pressure_in_bar

    unit = values.pop("pressure_unit")
    try:
        values["pressure"] = pressure_in_bar(values["pressure"], unit, reduced=values.get("element") == "LJ")
    except ValueError as exc:
        raise UserError(f"--pressure-unit: {exc}") from None
    try:
        return model(**values)
    except ValidationError as exc:
        parts = []
        for e in exc.errors():
            field = "_".join(str(p) for p in e["loc"] if not isinstance(p, int))
            key = OPTION_NAMES.get(field, field.replace("_", "-"))
            msg = e["msg"].removeprefix("Value error, ")
            parts.append(f"--{key} = {e.get('input')!r}: {msg}" if key else msg)
        raise UserError("; ".join(parts)) from None
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _run_directory(out: Path, overwrite: bool) -> None:
    """Refuse a run directory that already holds results (their files would be mixed with the new run's and
    the new summary would not describe them) unless ``--overwrite``; refuse one that cannot be created."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"--out {out} is not empty (results of an earlier run?); choose another --out, or add "
                            "--overwrite to replace its contents")
        import shutil

        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    from flows.preflight import writable_folder

    writable_folder(out, "run directory (--out)")


@app.command()
def melt(
    element: str = typer.Option("LJ", help="LJ (reduced units) or Ne, Ar, Kr, Xe (K, bar)"),
    pressure: float = typer.Option(1.0, help="pressure (P*, or bar / GPa for rare gases)"),
    pressure_unit: str = typer.Option("bar", help="bar or GPa (rare gases only)"),
    t_min: float = typer.Option(0.6, help="lowest temperature (T* or K)"),
    t_max: float = typer.Option(1.1, help="highest temperature (T* or K)"),
    n_temperatures: int = typer.Option(6, help="temperatures in the ladder (20 for a fine curve)"),
    n_cells: int = typer.Option(4, help="fcc cells per edge (4·n³ atoms)"),
    chains: int = typer.Option(1, help="independent replicas of each ladder"),
    vacancies: float = typer.Option(0.02, help="vacancy fraction of the defective crystal (0 = none)"),
    interstitials: float = typer.Option(0.0, help="interstitial fraction of the defective crystal"),
    n_samples: int = typer.Option(200, help="production NPT sweeps per temperature"),
    warmup: int = typer.Option(50, help="warm-up sweeps per temperature"),
    cutoff: float = typer.Option(3.0, help="LJ cutoff in σ (tail-corrected)"),
    workers: int = typer.Option(2, help="ladders run in parallel"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/melting"), help="run directory"),
    overwrite: bool = typer.Option(False, help="replace the contents of a non-empty --out"),
):
    """Heat an fcc crystal and cool a liquid at fixed pressure: curves, hysteresis, melting bracket."""
    from hmc_core.phase_system import scan_temperatures
    from tasks.phase_settings import MeltingCurveSettings

    try:
        temps = tuple(scan_temperatures(t_min, t_max, n_temperatures))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    settings = _settings(MeltingCurveSettings, element=element, pressure=pressure, pressure_unit=pressure_unit,
                         temperatures=temps, n_cells=n_cells, n_chains=chains, vacancy_fraction=vacancies,
                         interstitial_fraction=interstitials, n_samples=n_samples, n_warmup=warmup,
                         cutoff_sigma=cutoff, seed=seed, n_workers=workers)
    _run_directory(out, overwrite)
    from flows.phase import melting_curve
    from flows.server import flow_server

    console.print(f"melting curve of {element}: {len(temps)} temperatures, {4 * n_cells**3} atoms → {out}")
    with flow_server():
        summary = melting_curve(settings, run_dir=str(out))
    lo, hi = summary["bracket"]
    console.print(f"melting bracket: T₋ = {lo}, T₊ = {hi}; hysteresis estimate {summary['T_hysteresis']}; "
                  f"published LJ melting line {summary['reference_T_m']}")
    console.print(json.dumps({k: summary[k] for k in ("T_plus_perfect", "T_plus_defective")}))


@app.command()
def coexist(
    element: str = typer.Option("LJ", help="LJ (reduced units) or Ne, Ar, Kr, Xe (K, bar)"),
    pressure: float = typer.Option(1.0, help="pressure (P*, or bar / GPa for rare gases)"),
    pressure_unit: str = typer.Option("bar", help="bar or GPa (rare gases only)"),
    t_min: float = typer.Option(0.66, help="lowest temperature (T* or K)"),
    t_max: float = typer.Option(0.86, help="highest temperature (T* or K)"),
    n_temperatures: int = typer.Option(6, help="temperatures, one parallel two-phase run each"),
    cells: tuple[int, int, int] = typer.Option((6, 6, 12), help="fcc cells nx ny nz (z: half crystal, half liquid)"),
    n_samples: int = typer.Option(1500, help="production NPT sweeps per temperature"),
    every: int = typer.Option(25, help="order parameters every k sweeps"),
    melt_sweeps: int = typer.Option(150, help="sweeps melting the liquid half (crystal held)"),
    hold: int = typer.Option(30, help="sweeps at T with the crystal held while the liquid relaxes"),
    steps: int = typer.Option(20, help="integrator steps per HMC trajectory"),
    threshold: float = typer.Option(0.03, help="change of solid fraction that counts as growth / melting"),
    cutoff: float = typer.Option(3.0, help="LJ cutoff in σ (energy shifted, tail-corrected)"),
    workers: int = typer.Option(2, help="temperatures run in parallel"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/coexistence"), help="run directory"),
    overwrite: bool = typer.Option(False, help="replace the contents of a non-empty --out"),
):
    """Solid | liquid coexistence runs at fixed pressure: the crystal grows below T_m, melts above it."""
    from hmc_core.phase_system import scan_temperatures
    from tasks.phase_settings import CoexistenceSettings

    try:
        if t_min <= 0:
            raise ValueError(f"--t-min {t_min} must be a positive temperature")
        temps = tuple(scan_temperatures(t_min, t_max, n_temperatures))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    settings = _settings(CoexistenceSettings, element=element, pressure=pressure, pressure_unit=pressure_unit,
                         temperatures=temps, n_cells=tuple(cells), n_samples=n_samples, analyse_every=every,
                         n_melt=melt_sweeps, n_hold=hold, n_steps=steps, threshold=threshold, cutoff_sigma=cutoff,
                         seed=seed, n_workers=workers)
    _run_directory(out, overwrite)
    from flows.phase import coexistence
    from flows.server import flow_server

    console.print(f"coexistence runs of {element}: {len(temps)} temperatures, {4 * cells[0] * cells[1] * cells[2]} "
                  f"atoms each, {n_samples} sweeps → {out}")
    with flow_server():
        summary = coexistence(settings, run_dir=str(out))
    for r in summary["runs"]:
        console.print(f"T={r['temperature']:g}: {r['outcome']} (solid fraction {r['initial_solid_fraction']:.3f} → "
                      f"{r['final_solid_fraction']:.3f}, Δφ = {r['delta_solid_fraction']:+.3f}, "
                      f"ΔU = {r['delta_potential_energy']:+.4f} per atom)")
    lo, hi = summary["bracket"]
    note = "" if summary["consistent"] else " (inconsistent: a melted run lies below a grown one; run longer)"
    console.print(f"melting bracket: {lo} < T_m < {hi}{note}; published LJ melting line {summary['reference_T_m']}")


@app.command()
def seed(
    element: str = typer.Option("LJ", help="LJ (reduced units) or Ne, Ar, Kr, Xe (K, bar)"),
    pressure: float = typer.Option(1.0, help="pressure (P*, or bar / GPa for rare gases)"),
    pressure_unit: str = typer.Option("bar", help="bar or GPa (rare gases only)"),
    temperature: list[float] = typer.Option(None, "--temperature", "-T", show_default="0.6 (LJ) or 70 K",
                                            help="supercooled temperature(s), repeatable"),
    structure: list[str] = typer.Option(None, "--structure", "-s", show_default="fcc",
                                        help="fcc, hcp, bcc or ico (repeatable)"),
    size: list[int] = typer.Option(None, "--size", "-n", show_default="13 43 79",
                                   help="seed size in atoms (repeatable)"),
    n_cells: int = typer.Option(6, help="fcc cells per edge of the liquid's starting crystal (4·n³ atoms)"),
    n_samples: int = typer.Option(200, help="NPT sweeps after inserting the seed"),
    every: int = typer.Option(5, help="analyse the cluster every k sweeps"),
    quench: int = typer.Option(400, help="NPT sweeps that equilibrate the supercooled liquid before seeding"),
    hold: int = typer.Option(50, help="sweeps with the seed held while the liquid relaxes around it (0 = none)"),
    replicas: int = typer.Option(1, help="independent runs per (T, structure, size)"),
    steps: int = typer.Option(10, help="integrator steps per HMC trajectory (20: twice the time per sweep)"),
    cutoff: float = typer.Option(3.0, help="LJ cutoff in σ (tail-corrected)"),
    workers: int = typer.Option(2, help="runs in parallel"),
    random_seed: int = typer.Option(0, "--random-seed"),
    out: Path = typer.Option(Path("runs/seeded"), help="run directory"),
    overwrite: bool = typer.Option(False, help="replace the contents of a non-empty --out"),
):
    """Insert crystal seeds into a supercooled liquid and follow the largest solid cluster.

    Seeds take the bulk crystal's lattice at (T, P); the liquid first relaxes around the held seed."""
    from tasks.phase_settings import SeededSettings

    temps = tuple(temperature or ((0.6,) if element == "LJ" else (70.0,)))
    settings = _settings(SeededSettings, element=element, pressure=pressure, pressure_unit=pressure_unit,
                         temperatures=temps, structures=tuple(structure or ("fcc",)),
                         seed_sizes=tuple(size or (13, 43, 79)), n_cells=n_cells, n_samples=n_samples,
                         analyse_every=every, n_quench=quench, cutoff_sigma=cutoff, seed=random_seed,
                         n_workers=workers, n_hold=hold, n_replicas=replicas, n_steps=steps)
    _run_directory(out, overwrite)
    from flows.phase import seeded_crystallisation
    from flows.server import flow_server

    console.print(f"seeded crystallisation of {element}: {len(settings.structures)} structure(s) × "
                  f"{len(settings.seed_sizes)} size(s) × {len(temps)} T → {out}")
    with flow_server():
        summary = seeded_crystallisation(settings, run_dir=str(out))
    for r in summary["runs"]:
        console.print(f"T={r['temperature']:g} {r['structure']} seed of {r['n_seed']} (r{r['replica']}): "
                      f"{r['outcome']} "
                      f"(largest cluster {r['initial_largest_cluster']:.0f} at release, "
                      f"{r['settled_largest_cluster']:.0f} settled → {r['final_largest_cluster']:.0f}, "
                      f"max {r['max_largest_cluster']:.0f}; mean Δ/sweep {r['mean_increment_per_sweep']:+.2f}, "
                      f"max {r['max_increment_per_sweep']:+.1f}; {r['final_composition']})")
    for b in summary["brackets"]:
        console.print(f"critical size at T={b['temperature']:g} ({b['structure']}): between "
                      f"{b['largest_dissolved']} (dissolved in most runs) and {b['smallest_grown']} (grew in most); "
                      f"outcomes {json.dumps(b['outcomes'])}")
