"""``pesflow melt`` (melting/solidification curves), ``pesflow coexist`` (two-phase melting bracket) and
``pesflow seed`` (seeded crystallisation).

All run the Prefect flows of :mod:`flows.phase`; inputs are validated before Prefect starts, so bad
input fails fast with one line. Units: ``--element LJ`` is reduced (T*, P*); Ne/Ar/Kr/Xe use K and bar
(or GPa with ``--pressure-unit GPa``). ``--potential FILE.mtp`` samples a fitted MTP instead (one element: from the
file's pesflow tag or ``--species``; K, bar/GPa, Å); its starting fcc lattice constant is ``--lattice-constant`` or
the potential's 0 K energy minimum (:func:`hmc_core.mtp_phase.relaxed_lattice_constant`), and ``--element`` /
``--cutoff`` (Lennard-Jones only) are refused with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flows.app import UserError, app, console
from flows.potential_file import mtp_species, parse_species, refuse_lj_options, refuse_mtp_options

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


def _system(element: str | None, cutoff: float | None, potential: Path | None, species: str | None,
            lattice_constant: float | None, tail: bool | None = None) -> dict:
    """The settings keys naming the system: built-in LJ (``element``, ``cutoff_sigma``, ``tail_correction``) or a
    fitted MTP (``potential``, ``species``, ``lattice_constant``), with the options of the other kind refused."""
    if potential is None:
        refuse_mtp_options({"--species": species is not None, "--lattice-constant": lattice_constant is not None})
        return {"element": element or "LJ", "cutoff_sigma": 3.0 if cutoff is None else cutoff,
                "tail_correction": True if tail is None else tail}
    refuse_lj_options({"--element": element is not None, "--cutoff": cutoff is not None,
                       "--tail-correction/--no-tail-correction": tail is not None}, potential)
    elements = mtp_species(potential, parse_species(species) if species is not None else None)
    if len(elements) != 1:
        raise UserError(f"--potential {potential} has {len(elements)} species; the phase studies are one-component: "
                        "give an MTP fitted to one element")
    return {"potential": str(potential), "species": tuple(elements), "lattice_constant": lattice_constant}


def _temperatures(system: dict, t_min: float | None, t_max: float | None, lj_default: tuple[float, float]):
    """(t_min, t_max): the (reduced LJ) defaults where not given; both required (K) with a potential file."""
    if "potential" in system and (t_min is None or t_max is None):
        raise UserError("give --t-min and --t-max (K) with --potential: the defaults are reduced LJ temperatures")
    return (lj_default[0] if t_min is None else t_min), (lj_default[1] if t_max is None else t_max)


def _describe(settings) -> str:
    if settings.potential is None:
        return settings.element
    return (f"{settings.element} (MTP {Path(settings.potential).name}, fcc a = {settings.lattice_constant:.4f} Å, "
            f"{settings.lattice_constant_source})")


def _reference(summary: dict) -> str:
    ref = summary.get("reference_T_m")
    return f"; published LJ melting line {ref}" if ref is not None else ""


#: the ``--potential``/``--species``/``--lattice-constant`` options every phase command takes
POTENTIAL_HELP = "fitted MTP (.mtp, one element) instead of Lennard-Jones; temperatures in K, pressures bar/GPa"
SPECIES_HELP = "element of the .mtp's species index 0 (symbol or Z); needed for MLIP/motep-trained files"
LATTICE_HELP = "fcc lattice constant (Å) of the starting crystal with --potential (default: the MTP's 0 K minimum)"


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
    element: str = typer.Option(None, show_default="LJ", help="LJ (reduced units) or Ne, Ar, Kr, Xe (K, bar)"),
    potential: Path = typer.Option(None, "--potential", "-p", help=POTENTIAL_HELP),
    species_option: str = typer.Option(None, "--species", help=SPECIES_HELP),
    lattice_constant: float = typer.Option(None, help=LATTICE_HELP),
    pressure: float = typer.Option(1.0, help="pressure (P*, or bar / GPa for rare gases and MTPs)"),
    pressure_unit: str = typer.Option("bar", help="bar or GPa (rare gases and MTPs only)"),
    t_min: float = typer.Option(None, show_default="0.6 (LJ)", help="lowest temperature (T* or K)"),
    t_max: float = typer.Option(None, show_default="1.1 (LJ)", help="highest temperature (T* or K)"),
    n_temperatures: int = typer.Option(6, help="temperatures in the ladder (20 for a fine curve)"),
    n_cells: int = typer.Option(4, help="fcc cells per edge (4·n³ atoms)"),
    chains: int = typer.Option(1, help="independent replicas of each ladder"),
    vacancies: float = typer.Option(0.02, help="vacancy fraction of the defective crystal (0 = none)"),
    interstitials: float = typer.Option(0.0, help="interstitial fraction of the defective crystal"),
    n_samples: int = typer.Option(200, help="production NPT sweeps per temperature"),
    warmup: int = typer.Option(50, help="warm-up sweeps per temperature"),
    cutoff: float = typer.Option(None, show_default="3.0", help="LJ cutoff in σ (tail-corrected)"),
    tail: bool = typer.Option(None, "--tail-correction/--no-tail-correction", show_default="on",
                              help="LJ tail correction; off: the truncated-shifted LJ of ASE's calculator (ase:lj)"),
    workers: int = typer.Option(2, help="ladders run in parallel"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/melting"), help="run directory"),
    overwrite: bool = typer.Option(False, help="replace the contents of a non-empty --out"),
):
    """Heat an fcc crystal and cool a liquid at fixed pressure: curves, hysteresis, melting bracket."""
    from hmc_core.phase_system import scan_temperatures
    from tasks.phase_settings import MeltingCurveSettings

    system = _system(element, cutoff, potential, species_option, lattice_constant, tail)
    t_min, t_max = _temperatures(system, t_min, t_max, (0.6, 1.1))
    try:
        temps = tuple(scan_temperatures(t_min, t_max, n_temperatures))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    settings = _settings(MeltingCurveSettings, **system, pressure=pressure, pressure_unit=pressure_unit,
                         temperatures=temps, n_cells=n_cells, n_chains=chains, vacancy_fraction=vacancies,
                         interstitial_fraction=interstitials, n_samples=n_samples, n_warmup=warmup,
                         seed=seed, n_workers=workers)
    _run_directory(out, overwrite)
    from flows.phase import melting_curve
    from flows.server import flow_server

    console.print(f"melting curve of {_describe(settings)}: {len(temps)} temperatures, {4 * n_cells**3} atoms → {out}")
    with flow_server():
        summary = melting_curve(settings, run_dir=str(out))
    lo, hi = summary["bracket"]
    console.print(f"melting bracket: T₋ = {lo}, T₊ = {hi}; hysteresis estimate {summary['T_hysteresis']}"
                  f"{_reference(summary)}")
    console.print(json.dumps({k: summary[k] for k in ("T_plus_perfect", "T_plus_defective")}))


@app.command()
def coexist(
    element: str = typer.Option(None, show_default="LJ", help="LJ (reduced units) or Ne, Ar, Kr, Xe (K, bar)"),
    potential: Path = typer.Option(None, "--potential", "-p", help=POTENTIAL_HELP),
    species_option: str = typer.Option(None, "--species", help=SPECIES_HELP),
    lattice_constant: float = typer.Option(None, help=LATTICE_HELP),
    pressure: float = typer.Option(1.0, help="pressure (P*, or bar / GPa for rare gases and MTPs)"),
    pressure_unit: str = typer.Option("bar", help="bar or GPa (rare gases and MTPs only)"),
    t_min: float = typer.Option(None, show_default="0.66 (LJ)", help="lowest temperature (T* or K)"),
    t_max: float = typer.Option(None, show_default="0.86 (LJ)", help="highest temperature (T* or K)"),
    n_temperatures: int = typer.Option(6, help="temperatures, one parallel two-phase run each"),
    cells: tuple[int, int, int] = typer.Option((6, 6, 12), help="fcc cells nx ny nz (z: half crystal, half liquid)"),
    n_samples: int = typer.Option(1500, help="production NPT sweeps per temperature"),
    every: int = typer.Option(25, help="order parameters every k sweeps"),
    melt_sweeps: int = typer.Option(150, help="sweeps melting the liquid half (crystal held)"),
    hold: int = typer.Option(30, help="sweeps at T with the crystal held while the liquid relaxes"),
    melt_temperature: float = typer.Option(None, show_default="max(2T, 2ε/k_B) (LJ), 2T (MTP)",
                                           help="temperature that melts the liquid half"),
    steps: int = typer.Option(20, help="integrator steps per HMC trajectory"),
    threshold: float = typer.Option(0.03, help="change of solid fraction that counts as growth / melting"),
    cutoff: float = typer.Option(None, show_default="3.0", help="LJ cutoff in σ (energy shifted, tail-corrected)"),
    tail: bool = typer.Option(None, "--tail-correction/--no-tail-correction", show_default="on",
                              help="LJ tail correction; off: the truncated-shifted LJ of ASE's calculator (ase:lj)"),
    ci_width: float = typer.Option(None, show_default="off (one scan)",
                                   help="adaptive: add runs until the T_m interval is at most this wide (T* or K)"),
    max_runs: int = typer.Option(24, help="most runs of an adaptive study (--ci-width)"),
    confidence: float = typer.Option(0.95, help="confidence level of the T_m interval"),
    fit_window: float = typer.Option(None, show_default="all runs",
                                     help="fit the velocity line to runs within this distance of T_m (T* or K)"),
    min_cross_section: float = typer.Option(3.0, help="smallest lateral box side, in cutoffs, for --ci-width"),
    workers: int = typer.Option(2, help="temperatures run in parallel (and runs per adaptive round)"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/coexistence"), help="run directory"),
    overwrite: bool = typer.Option(False, help="replace the contents of a non-empty --out"),
):
    """Solid | liquid coexistence runs at fixed pressure: the crystal grows below T_m, melts above it.

    Each run's interface velocity (drift of the solid fraction, ± its batch-means error) gives T_m as the zero
    crossing of velocity(T) with a confidence interval; --ci-width makes the study adaptive."""
    from hmc_core.phase_system import scan_temperatures
    from tasks.phase_settings import CoexistenceSettings

    system = _system(element, cutoff, potential, species_option, lattice_constant, tail)
    t_min, t_max = _temperatures(system, t_min, t_max, (0.66, 0.86))
    try:
        if t_min <= 0:
            raise ValueError(f"--t-min {t_min} must be a positive temperature")
        temps = tuple(scan_temperatures(t_min, t_max, n_temperatures))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    settings = _settings(CoexistenceSettings, **system, pressure=pressure, pressure_unit=pressure_unit,
                         temperatures=temps, n_cells=tuple(cells), n_samples=n_samples, analyse_every=every,
                         n_melt=melt_sweeps, n_hold=hold, n_steps=steps, threshold=threshold,
                         melt_temperature=melt_temperature, seed=seed, n_workers=workers, ci_width=ci_width,
                         max_runs=max_runs, confidence=confidence, fit_window=fit_window,
                         min_cross_section=min_cross_section)
    _run_directory(out, overwrite)
    from flows.phase import coexistence
    from flows.server import flow_server

    console.print(f"coexistence runs of {_describe(settings)}: {len(temps)} temperatures, "
                  f"{4 * cells[0] * cells[1] * cells[2]} atoms each, {n_samples} sweeps → {out}")
    with flow_server():
        summary = coexistence(settings, run_dir=str(out))
    from flows.phase import velocity_text

    for r in summary["runs"]:
        console.print(f"T={r['temperature']:g}: {r['outcome']} (solid fraction {r['initial_solid_fraction']:.3f} → "
                      f"{r['final_solid_fraction']:.3f}, Δφ = {r['delta_solid_fraction']:+.3f}, "
                      f"ΔU = {r['delta_potential_energy']:+.4f} per atom); velocity {velocity_text(r)}")
    lo, hi = summary["bracket"]
    note = "" if summary["consistent"] else " (inconsistent: a melted run lies below a grown one; run longer)"
    console.print(f"melting bracket: {lo} < T_m < {hi}{note}{_reference(summary)}")
    console.print(_melting_point_text(summary["melting_point"]))
    if summary["finite_size"]["warning"]:
        console.print(f"[yellow]finite size: {summary['finite_size']['warning']}[/yellow]")


def _melting_point_text(mp: dict) -> str:
    """One line: T_m with its interval from the velocity zero crossing, or why there is none."""
    runs = f"{mp['n_runs']} runs, {mp['rounds']} round(s)"
    if mp["T_m"] is None:
        return f"T_m from the interface velocity: no fit (fewer than two temperatures with a velocity; {runs})"
    lo, hi = mp["ci"]
    interval = (f"{100 * mp['level']:g} % interval [{lo:.4g}, {hi:.4g}] (width {mp['ci_width']:.3g})"
                if mp["bounded"] else "interval unbounded (the velocity's slope is not significant; run longer or "
                "wider)")
    goal = ""
    if mp["adaptive"]:
        goal = (f"; requested width {mp['requested_ci_width']:g} " + ("reached" if mp["converged"] else
                                                                     "NOT reached: raise --max-runs"))
    return f"T_m from the interface velocity: {mp['T_m']:.4g}, {interval}; {runs}{goal}"


@app.command()
def seed(
    element: str = typer.Option(None, show_default="LJ", help="LJ (reduced units) or Ne, Ar, Kr, Xe (K, bar)"),
    potential: Path = typer.Option(None, "--potential", "-p", help=POTENTIAL_HELP),
    species_option: str = typer.Option(None, "--species", help=SPECIES_HELP),
    lattice_constant: float = typer.Option(None, help=LATTICE_HELP),
    pressure: float = typer.Option(1.0, help="pressure (P*, or bar / GPa for rare gases and MTPs)"),
    pressure_unit: str = typer.Option("bar", help="bar or GPa (rare gases and MTPs only)"),
    temperature: list[float] = typer.Option(None, "--temperature", "-T", show_default="0.6 (LJ) or 70 K",
                                            help="supercooled temperature(s), repeatable (needed with --potential)"),
    melt_temperature: float = typer.Option(None, show_default="2 × published T_m (LJ)",
                                           help="temperature that melts the liquid (needed with --potential)"),
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
    cutoff: float = typer.Option(None, show_default="3.0", help="LJ cutoff in σ (tail-corrected)"),
    tail: bool = typer.Option(None, "--tail-correction/--no-tail-correction", show_default="on",
                              help="LJ tail correction; off: the truncated-shifted LJ of ASE's calculator (ase:lj)"),
    workers: int = typer.Option(2, help="runs in parallel"),
    random_seed: int = typer.Option(0, "--random-seed"),
    out: Path = typer.Option(Path("runs/seeded"), help="run directory"),
    overwrite: bool = typer.Option(False, help="replace the contents of a non-empty --out"),
):
    """Insert crystal seeds into a supercooled liquid and follow the largest solid cluster.

    Seeds take the bulk crystal's lattice at (T, P); the liquid first relaxes around the held seed."""
    from tasks.phase_settings import SeededSettings

    system = _system(element, cutoff, potential, species_option, lattice_constant, tail)
    if not temperature and potential is not None:
        raise UserError("give the supercooled temperature(s) with -T (K) with --potential")
    temps = tuple(temperature or ((0.6,) if system.get("element") == "LJ" else (70.0,)))
    if potential is not None and melt_temperature is None:
        raise UserError("give --melt-temperature (K) with --potential: the LJ default is twice the published melting "
                        "temperature, which a fitted MTP does not have")
    settings = _settings(SeededSettings, **system, pressure=pressure, pressure_unit=pressure_unit,
                         temperatures=temps, structures=tuple(structure or ("fcc",)),
                         seed_sizes=tuple(size or (13, 43, 79)), n_cells=n_cells, n_samples=n_samples,
                         analyse_every=every, n_quench=quench, seed=random_seed, melt_temperature=melt_temperature,
                         n_workers=workers, n_hold=hold, n_replicas=replicas, n_steps=steps)
    _run_directory(out, overwrite)
    from flows.phase import seeded_crystallisation
    from flows.server import flow_server

    console.print(f"seeded crystallisation of {_describe(settings)}: {len(settings.structures)} structure(s) × "
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
