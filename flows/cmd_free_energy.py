"""``pesflow free-energy``: the melting temperature where the Gibbs free energies of the fcc crystal and the liquid
cross (Frenkel–Ladd, ideal gas → liquid, Gibbs–Helmholtz at fixed P; :mod:`flows.free_energy`).

Inputs are validated before Prefect starts (bad input: one line, exit status 2). Systems as for ``pesflow coexist``:
``--element`` LJ (reduced units) or Ne/Ar/Kr/Xe (K, bar), or ``--potential FILE.mtp`` (then ``--t-guess`` in K).
"""

from __future__ import annotations

from pathlib import Path

import typer

from flows.app import app, console
from flows.cmd_phase import LATTICE_HELP, POTENTIAL_HELP, SPECIES_HELP, _describe, _run_directory, _settings, _system


@app.command("free-energy")
def free_energy(
    element: str = typer.Option(None, show_default="LJ", help="LJ (reduced units) or Ne, Ar, Kr, Xe (K, bar)"),
    potential: Path = typer.Option(None, "--potential", "-p", help=POTENTIAL_HELP),
    species_option: str = typer.Option(None, "--species", help=SPECIES_HELP),
    lattice_constant: float = typer.Option(None, help=LATTICE_HELP),
    pressure: float = typer.Option(1.0, help="pressure (P*, or bar / GPa for rare gases and MTPs)"),
    pressure_unit: str = typer.Option("bar", help="bar or GPa (rare gases and MTPs only)"),
    t_guess: float = typer.Option(None, show_default="published LJ T_m",
                                  help="reference temperature near T_m (T* or K; needed with --potential)"),
    spread: float = typer.Option(0.04, help="NPT temperatures at t_guess × (1 ± spread)"),
    n_temperatures: int = typer.Option(5, help="NPT temperatures per phase (Gibbs–Helmholtz)"),
    n_cells: int = typer.Option(5, help="fcc cells per edge (4·n³ atoms per phase)"),
    n_npt: int = typer.Option(400, help="NPT sweeps per temperature and phase"),
    n_lambda: int = typer.Option(8, help="Frenkel–Ladd λ nodes (Gauss–Legendre)"),
    n_fl: int = typer.Option(200, help="trajectories per Frenkel–Ladd node"),
    n_density: int = typer.Option(8, help="liquid isotherm density nodes"),
    n_beta: int = typer.Option(5, help="liquid isochore temperature nodes"),
    n_liquid: int = typer.Option(200, help="trajectories per liquid node"),
    t_high: float = typer.Option(None, show_default="2.5 × t_guess", help="supercritical isotherm temperature"),
    confidence: float = typer.Option(0.95, help="confidence level of the T_m interval"),
    cutoff: float = typer.Option(None, show_default="3.0", help="LJ cutoff in σ (energy shifted, tail-corrected)"),
    tail: bool = typer.Option(None, "--tail-correction/--no-tail-correction", show_default="on",
                              help="LJ tail correction; off: the truncated-shifted LJ of ASE's calculator (ase:lj)"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/free_energy"), help="run directory"),
    overwrite: bool = typer.Option(False, help="replace the contents of a non-empty --out"),
):
    """Melting temperature from the crossing of the crystal's and the liquid's Gibbs free energies (HMC)."""
    from tasks.free_energy import FreeEnergySettings

    system = _system(element, cutoff, potential, species_option, lattice_constant, tail)
    settings = _settings(FreeEnergySettings, **system, pressure=pressure, pressure_unit=pressure_unit,
                         t_guess=t_guess, spread=spread, n_temperatures=n_temperatures, n_cells=n_cells, n_npt=n_npt,
                         n_lambda=n_lambda, n_fl=n_fl, n_density=n_density, n_beta=n_beta, n_liquid=n_liquid,
                         t_high=t_high, confidence=confidence, seed=seed, n_workers=1)
    _run_directory(out, overwrite)
    from flows.free_energy import free_energy_melting
    from flows.server import flow_server

    console.print(f"free energies of {_describe(settings)}: fcc and liquid, {4 * n_cells**3} atoms each, around "
                  f"T0 = {settings.t_guess:g} → {out}")
    with flow_server():
        summary = free_energy_melting(settings, run_dir=str(out))
    lo, hi = summary["ci"]
    ref = summary.get("reference_T_m")
    console.print(f"T_m from free energies: {summary['T_m']:.4g}, {100 * confidence:g} % interval "
                  f"[{lo:.4g}, {hi:.4g}] (statistical; {summary['cpu_s']:.0f} CPU s)"
                  + (f"; published LJ melting line {ref:.4g}" if ref is not None else ""))
