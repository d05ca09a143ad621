"""``pesflow temper``: replica-exchange (parallel-tempering) HMC on a Lennard-Jones cluster."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from flows.app import UserError, app, console


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
    ds = result.to_dataset("lj", species)
    ds["heat_capacity"] = (("rung",), result.heat_capacity(n_atoms=n_atoms))
    write_netcdf(ds, out)
    table = Table(title=f"replica exchange → {out}")
    for col in ("T*", "⟨U⟩", "C_V/k", "HMC acc.", "swap → next"):
        table.add_column(col)
    cv = ds["heat_capacity"].values
    for k, t in enumerate(ladder):
        swap = f"{result.swap_rates[k]:.2f}" if k < len(ladder) - 1 else ""
        table.add_row(f"{t:.4f}", f"{np.mean(result.potential_energy[:, k]):.3f}", f"{cv[k]:.1f}",
                      f"{result.acceptance_rates[k]:.2f}", swap)
    Console().print(table)
    console.print(f"round trips {len(result.round_trip_times)}, force evaluations {result.force_evaluations}, "
                  f"wall time {wall:.1f} s")
