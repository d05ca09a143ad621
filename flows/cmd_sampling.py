"""``pesflow temper``: replica-exchange (parallel-tempering) HMC on a Lennard-Jones cluster."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from flows.app import UserError, app, console

# Lowest known minima of LJ_N clusters (ε), for comparison only: Cambridge Cluster Database (Wales & Doye 1997)
GLOBAL_MINIMA = {13: -44.326801, 38: -173.928427, 55: -279.248470}
GLOBAL_MINIMA_SOURCE = "Cambridge Cluster Database, Wales & Doye 1997"


@app.command()
def temper(
    n_atoms: int = typer.Option(38, "--atoms", help="cluster size N (reduced LJ units, ε = σ = m = 1)"),
    t_min: float = typer.Option(0.09, help="lowest temperature T*"),
    t_max: float = typer.Option(0.25, help="highest temperature T*"),
    rungs: int = typer.Option(0, help="number of rungs (geometric); 0 = choose for --target-swap"),
    target_swap: float = typer.Option(0.4, help="swap rate the automatic ladder aims at"),
    sweeps: int = typer.Option(500, help="production sweeps (one HMC trajectory per rung + swaps)"),
    n_steps: int = typer.Option(10, help="integrator steps per trajectory"),
    integrator: str = typer.Option("verlet", help="verlet, omelyan, force_gradient, force_gradient_hf"),
    warmup: int = typer.Option(50, help="warm-up trajectories per rung (step-size adaptation)"),
    radius: float = typer.Option(2.25, help="confining radius about the centre of mass (σ)"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/temper.nc"), help="netCDF output (xarray)"),
):
    """Parallel-tempering HMC of an LJ_N cluster from a random start; writes energies, swaps, frames."""
    from hmc_core.configurations import write_netcdf
    from hmc_core.hmc import HMCConfig
    from hmc_core.potentials import ForceField
    from hmc_core.potentials.lj_cluster import LennardJonesCluster, minimize_cluster
    from hmc_core.replica_exchange import ReplicaExchange, auto_ladder, geometric_ladder, validate_ladder

    if n_atoms < 2:
        raise UserError(f"--atoms must be ≥ 2, got {n_atoms}")
    if sweeps < 1:
        raise UserError(f"--sweeps must be ≥ 1, got {sweeps}")
    validate_ladder([t_min, t_max])
    species = np.ones(n_atoms, int)

    if not radius > 0:
        raise UserError(f"--radius must be > 0 (σ), got {radius}")
    potential = LennardJonesCluster(radius=radius, stiffness=200.0)  # all pairs; fused Verlet trajectories

    def make_forcefield():
        return ForceField(potential, species)

    rng = np.random.default_rng(seed)
    r = 0.85 * radius * rng.uniform(0, 1, n_atoms) ** (1 / 3)
    v = rng.standard_normal((n_atoms, 3))
    x0 = v / np.linalg.norm(v, axis=1, keepdims=True) * r[:, None]
    start = minimize_cluster(potential, x0, max_iter=50)[1]  # remove overlaps, stay disordered
    cfg = HMCConfig(temperature=t_min, dt=0.02, n_steps=n_steps, integrator=integrator, units="lj",
                    jitter_dt=0.2, n_warmup=warmup)
    if rungs == 1:
        raise UserError("--rungs must be ≥ 2 (or 0 for an automatic ladder)")
    if rungs >= 2:
        ladder = geometric_ladder(t_min, t_max, rungs)
    else:
        console.print(f"choosing the ladder for swap rate {target_swap} from pilot runs …")
        ladder = auto_ladder(make_forcefield, cfg, start, t_min, t_max, target=target_swap, n_pilot=100, seed=seed)
    console.print(f"replica exchange: LJ{n_atoms}, {len(ladder)} rungs T* = {ladder[0]:.3f} … {ladder[-1]:.3f}, "
                  f"{sweeps} sweeps …")
    t0 = time.perf_counter()
    result = ReplicaExchange(make_forcefield, cfg, ladder).run(start, sweeps, seed=seed, save_every=10)
    wall = time.perf_counter() - t0
    verdict = result.verdict(min_round_trips=1, min_swap_rate=0.1)
    trips = result.walker_round_trips
    u_min = float(np.min(result.potential_energy))
    ds = result.to_dataset("lj", species)
    ds["heat_capacity"] = (("rung",), result.heat_capacity(n_atoms=n_atoms))
    ds["heat_capacity"].attrs.update(units="k_B", long_name="C_V / k_B of the cluster from Var(U) (first 20 % "
                                     "of sweeps discarded) + 3N/2 kinetic; meaningful only if equilibrated")
    ds.attrs.update(
        command="pesflow temper", units="reduced Lennard-Jones: energy ε, length σ, temperature ε/k_B, time τ",
        n_atoms=n_atoms, seed=seed, ladder=np.asarray(ladder, float), ladder_units="ε/k_B",
        ladder_kind="geometric" if rungs >= 2 else f"automatic for swap rate {target_swap}",
        target_swap_rate=target_swap, sweeps=sweeps, n_steps=n_steps, integrator=integrator, dt=cfg.dt,
        dt_units="τ (initial; adapted during warm-up)", warmup_trajectories=warmup, radius=radius,
        radius_units="σ", confinement_stiffness=200.0, confinement_stiffness_units="ε/σ²",
        lowest_potential_energy=u_min, lowest_potential_energy_units="ε",
        equilibrated=int(verdict.equilibrated), verdict=verdict.text, verdict_criteria=verdict.criteria,
        total_round_trips=int(trips.sum()), wall_time_s=round(wall, 2))
    if n_atoms in GLOBAL_MINIMA:
        ds.attrs.update(global_minimum_energy=GLOBAL_MINIMA[n_atoms], global_minimum_source=GLOBAL_MINIMA_SOURCE)
    write_netcdf(ds, out)
    table = Table(title=f"replica exchange → {out}")
    for col in ("T* (ε/k_B)", "⟨U⟩ (ε)", "C_V (k_B)", "HMC acc.", "swap rate → next", "round trips of walker from T*"):
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
                 if n_atoms in GLOBAL_MINIMA else "")
    console.print(f"lowest sampled potential energy {u_min:.3f} ε (at T > 0, not quenched){reference}; "
                  f"force evaluations {result.force_evaluations}, wall time {wall:.1f} s")
    if verdict.equilibrated:
        console.print(f"[green]{verdict.text}[/]")
    else:
        console.print(f"[bold red]{verdict.text}[/]\n[red]the ⟨U⟩ and C_V columns are not equilibrium values: run "
                      "more --sweeps, or use more rungs (--rungs, --target-swap) or a narrower T range[/]")
