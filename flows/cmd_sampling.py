"""``pesflow temper``: replica-exchange (parallel-tempering) HMC on a Lennard-Jones cluster, or with
``--potential FILE.mtp`` on a cluster of the fitted MTP's element (metal units: K, eV, Å, fs).

The MTP cluster starts from the N fcc sites nearest a centre (the potential's 0 K lattice constant,
:func:`hmc_core.mtp_phase.relaxed_lattice_constant`, or ``--lattice-constant``) with small random displacements,
inside a soft confining sphere (``--radius`` Å; default 2.25 σ_eff, σ_eff = a / 4^(1/3), the LJ default in the
crystal's length scale, widened to hold the cluster at liquid density).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from flows.app import UserError, app, console
from flows.potential_file import load_mtp, parse_species, refuse_mtp_options

# Lowest known minima of LJ_N clusters (ε), for comparison only: Cambridge Cluster Database (Wales & Doye 1997)
GLOBAL_MINIMA = {13: -44.326801, 38: -173.928427, 55: -279.248470}
GLOBAL_MINIMA_SOURCE = "Cambridge Cluster Database, Wales & Doye 1997"
MTP_WALL_STIFFNESS = 10.0  # eV/Å² of the confining sphere around an MTP cluster
MTP_DT_FS = 1.0  # starting time step (fs) with an MTP; adapted during warm-up


def mtp_cluster(potential: Path, species_text: str | None, n_atoms: int, radius: float | None,
                lattice_constant: float | None, seed: int):
    """(make_forcefield, start positions (N, 3) Å, species (N,), radius Å, description) of an MTP cluster."""
    from hmc_core.mtp_phase import FCC_A_PER_SIGMA, relaxed_lattice_constant
    from hmc_core.potentials import ForceField
    from hmc_core.potentials.combined import SumPotential
    from hmc_core.potentials.confinement import ConfiningSphere
    from hmc_core.structures import lattice

    mtp = load_mtp(potential, [], parse_species(species_text) if species_text is not None else None)
    if mtp.n_species != 1:
        raise UserError(f"--potential {potential} has {mtp.n_species} species; temper samples a one-element cluster")
    z = mtp.species[0]
    if lattice_constant is None:
        try:
            lattice_constant = relaxed_lattice_constant(mtp, z)
        except ValueError as exc:
            raise UserError(f"--potential {potential}: {exc}") from None
    elif not lattice_constant > 0:
        raise UserError(f"--lattice-constant = {lattice_constant}: must be > 0 (Å)")
    if radius is None:
        # 2.25 σ holds LJ₃₈; a larger cluster needs the radius of its volume at ~0.9 of the crystal's density
        radius = max(2.25 * lattice_constant / FCC_A_PER_SIGMA,
                     1.5 * (3 * n_atoms * lattice_constant**3 / (4 * 0.9 * 4 * np.pi)) ** (1 / 3))
    elif not radius > 0:
        raise UserError(f"--radius must be > 0 (Å), got {radius}")
    cells = int(np.ceil((n_atoms / 4) ** (1 / 3))) + 2
    sites, cell = lattice("fcc", cells, 4.0 / lattice_constant**3)
    centre = sites.mean(axis=0) + 0.01 * lattice_constant
    nearest = np.argsort(np.linalg.norm(sites - centre, axis=1), kind="stable")[:n_atoms]
    start = sites[nearest] - sites[nearest].mean(axis=0)
    start += np.random.default_rng(seed).normal(0.0, 0.02 * lattice_constant, start.shape)
    species = np.full(n_atoms, z, int)
    wall = ConfiningSphere(radius, MTP_WALL_STIFFNESS, units="metal")

    def make_forcefield():
        return ForceField(SumPotential([mtp.copy(), wall]), species)

    from ase.data import chemical_symbols

    text = (f"{chemical_symbols[z]}{n_atoms} with MTP {potential.name} (fcc start, a = {lattice_constant:.4f} Å), "
            f"confined to {radius:.3f} Å")
    return make_forcefield, start, species, radius, text


@app.command()
def temper(
    n_atoms: int = typer.Option(38, "--atoms", help="cluster size N (reduced LJ units, ε = σ = m = 1)"),
    potential: Path = typer.Option(None, "--potential", "-p",
                                   help="fitted MTP (.mtp, one element) instead of LJ; temperatures in K, radius Å"),
    species_option: str = typer.Option(None, "--species",
                                       help="element of the .mtp's species index 0; needed for MLIP-trained files"),
    lattice_constant: float = typer.Option(None, help="fcc lattice constant (Å) of the MTP cluster's start "
                                                      "(default: the potential's 0 K minimum)"),
    t_min: float = typer.Option(None, show_default="0.09 (LJ)", help="lowest temperature (T*, or K with an MTP)"),
    t_max: float = typer.Option(None, show_default="0.25 (LJ)", help="highest temperature (T*, or K with an MTP)"),
    rungs: int = typer.Option(0, help="number of rungs (geometric); 0 = choose for --target-swap"),
    target_swap: float = typer.Option(0.4, help="swap rate the automatic ladder aims at"),
    sweeps: int = typer.Option(500, help="production sweeps (one HMC trajectory per rung + swaps)"),
    n_steps: int = typer.Option(10, help="integrator steps per trajectory"),
    integrator: str = typer.Option("verlet", help="verlet, omelyan, force_gradient, force_gradient_hf"),
    warmup: int = typer.Option(50, help="warm-up trajectories per rung (step-size adaptation)"),
    radius: float = typer.Option(None, show_default="2.25 σ (LJ)",
                                 help="confining radius about the centre of mass (σ, or Å with an MTP)"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/temper.nc"), help="netCDF output (xarray)"),
):
    """Parallel-tempering HMC of an LJ_N cluster from a random start (or of a cluster of a fitted MTP's element,
    --potential); writes energies, swaps, frames."""
    from hmc_core.configurations import write_netcdf
    from hmc_core.hmc import HMCConfig
    from hmc_core.potentials import ForceField
    from hmc_core.potentials.lj_cluster import LennardJonesCluster, minimize_cluster
    from hmc_core.replica_exchange import ReplicaExchange, auto_ladder, geometric_ladder, validate_ladder

    if n_atoms < 2:
        raise UserError(f"--atoms must be ≥ 2, got {n_atoms}")
    if sweeps < 1:
        raise UserError(f"--sweeps must be ≥ 1, got {sweeps}")
    if potential is None:
        refuse_mtp_options({"--species": species_option is not None,
                            "--lattice-constant": lattice_constant is not None})
        t_min = 0.09 if t_min is None else t_min
        t_max = 0.25 if t_max is None else t_max
    elif t_min is None or t_max is None:
        raise UserError("give --t-min and --t-max (K) with --potential: the defaults are reduced LJ temperatures")
    validate_ladder([t_min, t_max])
    units = "lj" if potential is None else "metal"
    if potential is None:
        radius = 2.25 if radius is None else radius
        species = np.ones(n_atoms, int)
        if not radius > 0:
            raise UserError(f"--radius must be > 0 (σ), got {radius}")
        cluster = LennardJonesCluster(radius=radius, stiffness=200.0)  # all pairs; fused Verlet trajectories

        def make_forcefield():
            return ForceField(cluster, species)

        rng = np.random.default_rng(seed)
        r = 0.85 * radius * rng.uniform(0, 1, n_atoms) ** (1 / 3)
        v = rng.standard_normal((n_atoms, 3))
        x0 = v / np.linalg.norm(v, axis=1, keepdims=True) * r[:, None]
        start = minimize_cluster(cluster, x0, max_iter=50)[1]  # remove overlaps, stay disordered
        what = f"LJ{n_atoms}"
    else:
        make_forcefield, start, species, radius, what = mtp_cluster(potential, species_option, n_atoms, radius,
                                                                    lattice_constant, seed)
    cfg = HMCConfig(temperature=t_min, dt=0.02 if units == "lj" else MTP_DT_FS, n_steps=n_steps,
                    integrator=integrator, units=units, jitter_dt=0.2, n_warmup=warmup)
    if rungs == 1:
        raise UserError("--rungs must be ≥ 2 (or 0 for an automatic ladder)")
    if rungs >= 2:
        ladder = geometric_ladder(t_min, t_max, rungs)
    else:
        console.print(f"choosing the ladder for swap rate {target_swap} from pilot runs …")
        ladder = auto_ladder(make_forcefield, cfg, start, t_min, t_max, target=target_swap, n_pilot=100, seed=seed)
    lj = units == "lj"
    t_unit, e_unit, l_unit = ("ε/k_B", "ε", "σ") if lj else ("K", "eV", "Å")
    console.print(f"replica exchange: {what}, {len(ladder)} rungs {'T*' if lj else 'T'} = {ladder[0]:.3f} … "
                  f"{ladder[-1]:.3f}{'' if lj else ' K'}, {sweeps} sweeps …")
    t0 = time.perf_counter()
    result = ReplicaExchange(make_forcefield, cfg, ladder).run(start, sweeps, seed=seed, save_every=10)
    wall = time.perf_counter() - t0
    verdict = result.verdict(min_round_trips=1, min_swap_rate=0.1)
    trips = result.walker_round_trips
    u_min = float(np.min(result.potential_energy))
    ds = result.to_dataset(units, species)
    from hmc_core.units import get_units

    ds["heat_capacity"] = (("rung",), result.heat_capacity(kB=get_units(units).kB, n_atoms=n_atoms))
    ds["heat_capacity"].attrs.update(units="k_B", long_name="C_V / k_B of the cluster from Var(U) (first 20 % "
                                     "of sweeps discarded) + 3N/2 kinetic; meaningful only if equilibrated")
    ds.attrs.update(
        command="pesflow temper", system=what,
        units="reduced Lennard-Jones: energy ε, length σ, temperature ε/k_B, time τ" if lj
        else "metal: energy eV, length Å, temperature K, time fs",
        n_atoms=n_atoms, seed=seed, ladder=np.asarray(ladder, float), ladder_units=t_unit,
        ladder_kind="geometric" if rungs >= 2 else f"automatic for swap rate {target_swap}",
        target_swap_rate=target_swap, sweeps=sweeps, n_steps=n_steps, integrator=integrator, dt=cfg.dt,
        dt_units=f"{'τ' if lj else 'fs'} (initial; adapted during warm-up)", warmup_trajectories=warmup,
        radius=radius, radius_units=l_unit, confinement_stiffness=200.0 if lj else MTP_WALL_STIFFNESS,
        confinement_stiffness_units=f"{e_unit}/{l_unit}²",
        lowest_potential_energy=u_min, lowest_potential_energy_units=e_unit,
        equilibrated=int(verdict.equilibrated), verdict=verdict.text, verdict_criteria=verdict.criteria,
        total_round_trips=int(trips.sum()), wall_time_s=round(wall, 2))
    if lj and n_atoms in GLOBAL_MINIMA:
        ds.attrs.update(global_minimum_energy=GLOBAL_MINIMA[n_atoms], global_minimum_source=GLOBAL_MINIMA_SOURCE)
    write_netcdf(ds, out)
    table = Table(title=f"replica exchange → {out}")
    t_name = "T*" if lj else "T"
    for col in (f"{t_name} ({t_unit})", f"⟨U⟩ ({e_unit})", "C_V (k_B)", "HMC acc.", "swap rate → next",
                f"round trips of walker from {t_name}"):
        table.add_column(col, justify="right")
    cv = ds["heat_capacity"].values
    for k, t in enumerate(ladder):
        swap = f"{result.swap_rates[k]:.2f}" if k < len(ladder) - 1 else ""
        table.add_row(f"{t:.4f}", f"{np.mean(result.potential_energy[:, k]):.3f}", f"{cv[k]:.1f}",
                      f"{result.acceptance_rates[k]:.2f}", swap, f"{trips[k]:d}")
    Console().print(table)
    console.print("round trips: per replica (walker that started on that rung), bottom → top → bottom; "
                  f"{int(trips.sum())} in all, {int(np.count_nonzero(trips))} of {len(trips)} replicas made one")
    reference = (f" (LJ{n_atoms} global minimum {GLOBAL_MINIMA[n_atoms]:.3f} ε, {GLOBAL_MINIMA_SOURCE})"
                 if lj and n_atoms in GLOBAL_MINIMA else "")
    console.print(f"lowest sampled potential energy {u_min:.3f} {e_unit} (at T > 0, not quenched){reference}; "
                  f"force evaluations {result.force_evaluations}, wall time {wall:.1f} s")
    if verdict.equilibrated:
        console.print(f"[green]{verdict.text}[/]")
    else:
        console.print(f"[bold red]{verdict.text}[/]\n[red]the ⟨U⟩ and C_V columns are not equilibrium values: run "
                      "more --sweeps, or use more rungs (--rungs, --target-swap) or a narrower T range[/]")
