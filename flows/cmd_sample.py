"""``pesflow sample``: HMC with Lennard-Jones or a fitted MTP on given (or built-in) structures.

A chain whose production acceptance is below :data:`LOW_ACCEPTANCE` gets a warning on the console (the
samples are written, exit status 0): its samples are (nearly) copies of the start, almost always because
the time step is too large (``--dt``; with ``--warmup 0`` it is not adapted).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from flows.app import UserError, app, console
from flows.potential_file import load_mtp, parse_species

LOW_ACCEPTANCE = 0.05  # below this share of accepted trajectories a chain is reported as stuck


def builtin_structure(name: str):
    """Built-in starting structures: ``lj-fcc`` (256 atoms, ρ* = 0.8442, reduced units) and
    ``ar-fcc`` (108 argon atoms, a = 5.26 Å), ``ar13`` (icosahedral argon cluster)."""
    from ase.build import bulk
    from ase.cluster import Icosahedron

    if name == "lj-fcc":
        a = (4 / 0.8442) ** (1 / 3)
        atoms = bulk("X", "fcc", a=a, cubic=True).repeat((4, 4, 4))
        atoms.numbers[:] = 1
        return atoms, "lj"
    if name == "ar-fcc":
        return bulk("Ar", "fcc", a=5.26, cubic=True).repeat((3, 3, 3)), "metal"
    if name == "ar13":
        return Icosahedron("Ar", noshells=2, latticeconstant=5.26), "metal"
    raise UserError(f"unknown built-in structure {name!r}; choose lj-fcc, ar-fcc or ar13, or give a file")


def _rare_gas_lj(path: str, species, pbc):
    """Built-in Lennard-Jones for a one-element rare-gas structure (tail correction if fully periodic)."""
    from hmc_core.potentials import LennardJones

    symbols = {18: "Ar", 36: "Kr", 54: "Xe", 10: "Ne"}
    elements = np.unique(species)
    if len(elements) != 1 or int(elements[0]) not in symbols:
        raise UserError(f"{path}: built-in Lennard-Jones parameters exist for Ne, Ar, Kr and Xe only; "
                        "for other elements give a fitted potential with --potential FILE.mtp")
    periodic = bool(np.all(pbc))
    return LennardJones.rare_gas(symbols[int(elements[0])], tail=periodic, shift=not periodic)


@app.command()
def sample(
    structures: str = typer.Argument("lj-fcc", help="structure file ASE reads, or lj-fcc / ar-fcc / ar13"),
    temperature: list[float] = typer.Option(None, "--temperature", "-T",
                                            help="one chain per value (K, or T* for lj-fcc)"),
    n_samples: int = typer.Option(200, help="production HMC trajectories per chain"),
    n_steps: int = typer.Option(10, help="integrator steps per trajectory"),
    dt: float = typer.Option(None, help="time step (fs; τ for lj-fcc); adapted during warm-up"),
    warmup: int = typer.Option(50, help="warm-up trajectories (step-size adaptation)"),
    integrator: str = typer.Option("verlet", help="verlet or omelyan"),
    seed: int = typer.Option(0),
    potential: Path = typer.Option(None, "--potential", "-p",
                                   help="fitted MTP (.mtp; pesflow-written files name their elements) instead of LJ"),
    species_option: str = typer.Option(None, "--species",
                                help="elements of the .mtp's species indices 0, 1, … (symbols or Z: Mo,Li or "
                                     "42,3); needed for MLIP/motep-trained files"),
    out: Path = typer.Option(Path("runs/sample.nc"), help="netCDF output (xarray)"),
):
    """Sample with Hybrid Monte Carlo (Lennard-Jones or a fitted MTP) and write an xarray dataset.

    A chain that accepts fewer than 5 % of its trajectories is reported with a warning (lower --dt); the
    samples are still written and the exit status is 0."""
    from hmc_core.configurations import ConfigurationError, read_structures, write_netcdf
    from hmc_core.hmc import HMCConfig, run_chains
    from hmc_core.potentials import LennardJones

    for name, value, low in (("--n-samples", n_samples, 1), ("--n-steps", n_steps, 1), ("--warmup", warmup, 0)):
        if value < low:
            raise UserError(f"{name} = {value}: must be ≥ {low}")
    if dt is not None and not dt > 0:
        raise UserError(f"--dt = {dt}: the time step must be > 0 (fs; τ for lj-fcc)")
    if species_option is not None and potential is None:
        raise UserError("--species names the elements of a --potential FILE.mtp; give --potential too")
    elements = parse_species(species_option) if species_option is not None else None
    if Path(structures).exists():
        from hmc_core.configurations import config_arrays

        pos, species, cell, pbc = config_arrays(read_structures(structures), 0)
        units = "metal"
        if potential is None:
            pot = _rare_gas_lj(structures, species, pbc)
    else:
        if structures.endswith((".xyz", ".extxyz", ".cif", ".nc", "POSCAR", ".vasp")):
            raise FileNotFoundError(f"no such structure file: {structures}")
        atoms, units = builtin_structure(structures)
        pos, species, cell, pbc = atoms.positions, atoms.numbers, atoms.cell.array, atoms.pbc
        if units == "lj":
            pot = LennardJones(cutoff_sigma=2.5)
        else:
            pot = LennardJones.rare_gas("Ar", tail=bool(np.all(pbc)), shift=not np.all(pbc))
    if potential is not None:
        if units == "lj":
            raise UserError("lj-fcc is in reduced units; give a structure file (or ar-fcc / ar13) with --potential")
        pot = load_mtp(potential, species, elements)
    temps = temperature or ([0.9] if units == "lj" else [60.0])
    if dt is None:
        dt = 0.005 if units == "lj" else 5.0
    try:
        cfg = HMCConfig(temperature=temps[0], dt=dt, n_steps=n_steps, units=units, n_warmup=warmup,
                        integrator=integrator)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    console.print(f"HMC on {len(species)} atoms, {len(temps)} chain(s), {n_samples} samples each …")
    t0 = time.perf_counter()
    try:
        result = run_chains(pot, species, pos, cfg, n_samples, temperatures=temps, cell=cell, pbc=pbc,
                            seed=seed, n_workers=min(2, len(temps)))
    except ConfigurationError as exc:
        raise UserError(str(exc)) from exc
    wall = time.perf_counter() - t0
    from flows.netcdf_units import annotate_units

    write_netcdf(annotate_units(result, strict=False), out)
    table = Table(title=f"HMC samples → {out}")
    for col in ("T", "⟨U⟩/N", "acceptance", "dt (final)", "force evals"):
        table.add_column(col)
    for c in range(result.sizes["chain"]):
        table.add_row(f"{result.temperature.values[c]:g}",
                      f"{np.nanmean(result.potential_energy.values[c]) / len(species):.4f}",
                      f"{result.acceptance_rate.values[c]:.2f}", f"{result.final_dt.values[c]:.4g}",
                      f"{result.force_evaluations.values[c]}")
    Console().print(table)
    for c in range(result.sizes["chain"]):
        rate = float(result.acceptance_rate.values[c])
        if rate < LOW_ACCEPTANCE:
            fix = ("lower --dt (with --warmup 0 it is not adapted)" if warmup == 0
                   else "lower --dt or give a longer --warmup")
            console.print(f"[bold yellow]warning:[/] the chain at T = {result.temperature.values[c]:g} accepted "
                          f"{rate:.2f} of its trajectories (below {LOW_ACCEPTANCE:g}): its samples are copies of the "
                          f"start, the time step dt = {result.final_dt.values[c]:.4g} is too large; {fix}",
                          highlight=False, soft_wrap=True)
    console.print(f"wall time {wall:.1f} s")
