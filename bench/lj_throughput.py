"""Lennard-Jones throughput: pesflow vs LAMMPS vs ASE on the LAMMPS ``in.lj`` set-up.

FCC at ρ* = 0.8442, rc = 2.5σ, T* = 1.44, velocity Verlet with dt = 0.005τ, one thread.
Reports atom-steps per second for each code and the ratios, pesflow's HMC throughput, Numba compile
time (cold cache and second process start) and peak RSS at two sizes.

    python bench/lj_throughput.py [--atoms 32000] [--steps 1000] [--json PATH]

LAMMPS is the Debian ``lammps`` package's ``lmp`` (neighbor 0.3 bin, every 20 check no, as in
``in.lj``); a missing competitor is reported as null.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from benchutil import find_lammps, lj_fcc_setup, run_lammps, write_json

DENSITY, RC, TEMPERATURE, DT = 0.8442, 2.5, 1.44, 0.005
HMC_DT = 0.0015
ROOT = Path(__file__).resolve().parents[1]


def n_cells_for(atoms: int) -> int:
    return max(2, round((atoms / 4) ** (1 / 3)))


def fcc(n_cells: int):
    a = (4.0 / DENSITY) ** (1.0 / 3.0)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.stack(np.meshgrid(*[np.arange(n_cells)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return ((grid[:, None, :] + basis[None]).reshape(-1, 3) * a), np.eye(3) * a * n_cells


def initial_momenta(n: int, seed: int = 87287) -> np.ndarray:
    p = np.random.default_rng(seed).standard_normal((n, 3)) * np.sqrt(TEMPERATURE)
    p -= p.mean(0)
    return p


def bench_pesflow(n_cells: int, steps: int) -> dict:
    from hmc_core.integrators import kinetic_energy, velocity_verlet
    from hmc_core.potentials import ForceField, LennardJones

    x, cell = fcc(n_cells)
    n = len(x)
    ff = ForceField(LennardJones(cutoff_sigma=RC), np.ones(n, np.int32), cell, (True, True, True), skin=0.3)
    p = initial_momenta(n)
    inv_m = np.ones((n, 3))
    e, f = ff(x)
    velocity_verlet(x, p, inv_m, ff, DT, 2, e, f)  # warm the kernels
    builds0 = ff.nlist.n_builds
    h0 = e + kinetic_energy(p, inv_m)
    t0 = time.perf_counter()
    e, f = velocity_verlet(x, p, inv_m, ff, DT, steps, *ff(x))
    wall = time.perf_counter() - t0
    drift = abs(e + kinetic_energy(p, inv_m) - h0) / n
    return {"atom_steps_per_s": n * steps / wall, "seconds": wall, "neighbor_builds": ff.nlist.n_builds - builds0,
            "energy_drift_per_atom": drift}


def bench_pesflow_hmc(n_cells: int, trajectories: int) -> dict:
    from hmc_core.hmc import HMCConfig, HMCSampler
    from hmc_core.potentials import ForceField, LennardJones

    x, cell = fcc(n_cells)
    n = len(x)
    ff = ForceField(LennardJones(cutoff_sigma=RC), np.ones(n, np.int32), cell, (True, True, True), skin=0.3)
    # ΔH grows with N: at 32k atoms dt = 0.005τ is rejected almost always, so HMC uses a smaller step
    sampler = HMCSampler(ff, HMCConfig(temperature=TEMPERATURE, dt=HMC_DT, n_steps=10, units="lj"))
    state = sampler.init(x, seed=1)
    sampler.step(state)
    steps = 0
    t0 = time.perf_counter()
    for _ in range(trajectories):
        steps += sampler.step(state).n_steps
    wall = time.perf_counter() - t0
    return {"atom_steps_per_s": n * steps / wall, "trajectories_per_s": trajectories / wall,
            "acceptance": state.n_accepted / state.n_trajectories}


def bench_lammps(n_cells: int, steps: int) -> dict | None:
    lmp = find_lammps()
    if lmp is None:
        return None
    script = lj_fcc_setup(n_cells, DENSITY, TEMPERATURE, RC) + textwrap.dedent(f"""
        neighbor 0.3 bin
        neigh_modify delay 0 every 20 check no
        fix 1 all nve
        thermo {steps}
        run {steps}
    """)
    loops, log = run_lammps(lmp, script)
    if not loops:
        return {"error": log[-500:]}
    wall, nsteps, natoms = loops[-1]
    return {"atom_steps_per_s": natoms * nsteps / wall, "seconds": wall}


def bench_ase(n_cells: int, steps: int) -> dict | None:
    try:
        from ase import Atoms
        from ase.calculators.lj import LennardJones as AseLJ
        from ase.md.verlet import VelocityVerlet
    except ImportError:
        return None
    x, cell = fcc(n_cells)
    atoms = Atoms(f"Ar{len(x)}", positions=x, cell=cell, pbc=True)
    atoms.set_masses(np.ones(len(x)))
    atoms.calc = AseLJ(sigma=1.0, epsilon=1.0, rc=RC, smooth=False)
    atoms.set_momenta(initial_momenta(len(x)))
    # reduced units: ASE's time unit is Å·sqrt(amu/eV); with σ = 1 Å, ε = 1 eV, m = 1 amu, τ = 1 ASE unit
    dyn = VelocityVerlet(atoms, timestep=DT)
    dyn.run(1)
    t0 = time.perf_counter()
    dyn.run(steps)
    wall = time.perf_counter() - t0
    return {"atom_steps_per_s": len(x) * steps / wall, "seconds": wall, "steps": steps}


_PROBE = textwrap.dedent("""
    import resource, sys, time
    t0 = time.perf_counter()
    import numpy as np
    from hmc_core.integrators import velocity_verlet
    from hmc_core.potentials import ForceField, LennardJones
    sys.path.insert(0, {bench!r})
    from lj_throughput import fcc, initial_momenta
    x, cell = fcc({n_cells})
    ff = ForceField(LennardJones(cutoff_sigma=2.5), np.ones(len(x), np.int32), cell, (True,) * 3)
    p = initial_momenta(len(x))
    velocity_verlet(x, p, np.ones((len(x), 3)), ff, 0.005, {steps}, *ff(x))
    print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
""")


def probe(n_cells: int, steps: int, cache_dir: str) -> tuple[float, float]:
    """Seconds to import + first steps, and peak RSS (MiB), in a fresh process."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=str(ROOT))
    code = _PROBE.format(bench=str(Path(__file__).parent), n_cells=n_cells, steps=steps)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    seconds, rss = out.stdout.split()
    return float(seconds), float(rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atoms", type=int, default=32000, help="about this many atoms (4 n³ FCC)")
    ap.add_argument("--steps", type=int, default=1000, help="velocity-Verlet steps for pesflow and LAMMPS")
    ap.add_argument("--ase-steps", type=int, default=5, help="steps for ASE (slow)")
    ap.add_argument("--hmc-trajectories", type=int, default=20)
    ap.add_argument("--rss-atoms", type=int, nargs="*", default=[32000, 256000])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    n_cells = n_cells_for(args.atoms)
    n_atoms = 4 * n_cells**3
    print(f"LJ in.lj set-up: {n_atoms} atoms, {args.steps} steps, rc = {RC}σ, T* = {TEMPERATURE}, one thread")
    with tempfile.TemporaryDirectory() as cache:
        compile_cold, _ = probe(2, 2, cache)
        compile_warm, _ = probe(2, 2, cache)
    rss = {}
    with tempfile.TemporaryDirectory() as cache:
        for n in args.rss_atoms:
            rss[str(4 * n_cells_for(n) ** 3)] = probe(n_cells_for(n), 5, cache)[1]
    pes = bench_pesflow(n_cells, args.steps)
    hmc = bench_pesflow_hmc(n_cells, args.hmc_trajectories)
    lmp = bench_lammps(n_cells, args.steps)
    ase_r = bench_ase(n_cells, args.ase_steps)

    def rate(r):
        return r["atom_steps_per_s"] if r and "atom_steps_per_s" in r else None

    rows = [("pesflow (velocity Verlet MD)", rate(pes)), (f"pesflow HMC (L = 10, dt = {HMC_DT})", rate(hmc)),
            ("LAMMPS lmp (fix nve)", rate(lmp)), ("ASE LennardJones + VelocityVerlet", rate(ase_r))]
    print(f"\n{'code':38s} {'atom-steps/s':>14s} {'pesflow / code':>15s}")
    for name, r in rows:
        ratio = f"{rate(pes) / r:15.2f}" if r else f"{'n/a':>15s}"
        print(f"{name:38s} {(f'{r:14.3e}' if r else 'not installed'):>14s} {ratio}")
    print(f"\npesflow neighbour builds: {pes['neighbor_builds']} in {args.steps} steps; "
          f"energy drift {pes['energy_drift_per_atom']:.2e} ε/atom")
    print(f"Numba: first use (cold cache) {compile_cold:.1f} s, second process start {compile_warm:.1f} s "
          "(import + compile/load + 2 steps on 32 atoms)")
    print("peak RSS: " + ", ".join(f"{k} atoms {v:.0f} MiB" for k, v in rss.items()))
    figures = {
        "atoms": n_atoms, "steps": args.steps,
        "pesflow_atom_steps_per_s": rate(pes),
        "pesflow_hmc_atom_steps_per_s": rate(hmc),
        "lammps_atom_steps_per_s": rate(lmp),
        "ase_atom_steps_per_s": rate(ase_r),
        "lammps_hmc_atom_steps_per_s": None,  # Debian's LAMMPS has no fix hmc
        "ratio_pesflow_over_lammps": rate(pes) / rate(lmp) if rate(lmp) else None,
        "ratio_pesflow_over_ase": rate(pes) / rate(ase_r) if rate(ase_r) else None,
        "numba_first_use_seconds": compile_cold,
        "numba_second_start_seconds": compile_warm,
        "peak_rss_mib": rss,
        "pesflow_neighbor_builds": pes["neighbor_builds"],
        "hmc_acceptance": hmc["acceptance"],
    }
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
