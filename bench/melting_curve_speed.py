"""One melting-curve point by NPT HMC: wall time per sweep and per order-parameter evaluation, vs LAMMPS.

System: LJ fcc crystal, 4·n³ atoms (default n = 10: 4,000 atoms), ρ* = 1.0 start, cutoff 2.5σ truncated with
tail correction, P* = 1, a heating ladder through ``--temperatures`` points between T* = 0.7 and 1.2
(default 3; ``--temperatures 20`` for the full curve). One NPT sweep = one HMC trajectory of 10
velocity-Verlet steps + one log-volume move. Order parameters: q4, q6, q̄4, q̄6, ten Wolde–Frenkel bonds,
clusters and a-CNA on all atoms (:func:`hmc_core.order.compute_order`).

LAMMPS (Debian ``lmp``, serial, same system and cutoff with ``pair_modify tail yes``): ``fix npt`` MD
(Nosé–Hoover, T* = 0.7, P* = 1) — time per MD step (one force evaluation) compared with pesflow's time per
integrator step inside HMC; and ``compute orientorder/atom`` (q6, cutoff as pesflow) + ``compute cna/atom``
evaluated every step, minus the plain run, per evaluation. This LAMMPS (29 Sep 2021) has no ``fix hmc``
(added to LAMMPS in 2023), so HMC itself is not compared; ``null`` is written for it, and for everything
LAMMPS when ``lmp`` is missing.

    python bench/melting_curve_speed.py --json bench/out/melting_curve_speed.json
    python bench/melting_curve_speed.py --temperatures 20 --samples 200 --json bench/out/melting_curve_speed_20.json
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from benchutil import find_lammps, lj_fcc_setup, run_lammps, write_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hmc_core.ladders import run_ladder  # noqa: E402
from hmc_core.lj_reference import melting_temperature  # noqa: E402
from hmc_core.order import compute_order, shell_cutoff  # noqa: E402
from hmc_core.phase_system import PhaseSystem  # noqa: E402
from hmc_core.structures import lattice  # noqa: E402

RC = 2.5
PRESSURE = 1.0
DENSITY = 1.0


def bench_pesflow(n_cells: int, temperatures: list[float], samples: int, warmup: int, order_reps: int) -> dict:
    pos, cell = lattice("fcc", n_cells, DENSITY)
    system = PhaseSystem("LJ", RC)
    run_ladder(system, *lattice("fcc", 2, DENSITY), [0.7], PRESSURE, n_samples=2, n_warmup=1)  # JIT warm-up
    t0 = time.perf_counter()
    ds = run_ladder(system, pos, cell, temperatures, PRESSURE, n_samples=samples, n_warmup=warmup,
                    analyse_every=max(samples // 4, 1))
    wall = time.perf_counter() - t0
    sweeps = len(temperatures) * (samples + warmup)
    n_orders = len(temperatures) * len(range(0, samples, max(samples // 4, 1)))
    compute_order(pos, cell)  # JIT warm-up
    rng = np.random.default_rng(0)
    noisy = pos + rng.normal(0, 0.05, pos.shape)
    t0 = time.perf_counter()
    for _ in range(order_reps):
        compute_order(noisy, cell)
    order_s = (time.perf_counter() - t0) / order_reps
    t0 = time.perf_counter()
    for _ in range(order_reps):
        compute_order(noisy, cell, structures=False)
    steinhardt_s = (time.perf_counter() - t0) / order_reps
    sweep_s = (wall - n_orders * order_s) / sweeps
    return {
        "n_atoms": len(pos), "wall_s": wall, "sweeps": sweeps, "sweep_s": sweep_s,
        "integrator_step_s": sweep_s / 11.0,  # 10 Verlet steps + 1 volume move, each one force evaluation
        "order_eval_s": order_s, "order_per_atom_us": 1e6 * order_s / len(pos),
        "steinhardt_only_s": steinhardt_s, "cna_s": order_s - steinhardt_s,
        "curve": {k: ds[k].values.tolist() for k in ("density", "enthalpy", "solid_fraction_final",
                                                      "hmc_acceptance", "volume_acceptance")},
        "temperatures": temperatures,
    }


def _lammps_loop_time(lmp: str, script: str) -> float | None:
    """Seconds per step of the last ``run`` in ``script``."""
    loops, _ = run_lammps(lmp, script)
    if not loops:
        return None
    wall, steps, _ = loops[-1]
    return wall / max(steps, 1)


def bench_lammps(n_cells: int, steps: int, q6_cutoff: float) -> dict | None:
    lmp = find_lammps()
    if lmp is None:
        return None
    head = lj_fcc_setup(n_cells, DENSITY, 0.7, RC) + textwrap.dedent(f"""
        pair_modify tail yes
        neighbor 0.3 bin
        neigh_modify delay 0 every 1 check yes
        fix 1 all npt temp 0.7 0.7 0.5 iso {PRESSURE} {PRESSURE} 5.0
        timestep 0.005
        run 100
    """)
    md = _lammps_loop_time(lmp, head + f"run {steps}\n")
    order = textwrap.dedent(f"""
        compute q all orientorder/atom degrees 2 4 6 nnn NULL cutoff {q6_cutoff}
        compute c all cna/atom {q6_cutoff * 1.0}
        compute mq all reduce ave c_q[2]
        compute nc all reduce sum c_c
        thermo_style custom step temp press c_mq c_nc
        thermo 1
        run {steps}
    """)
    md_order = _lammps_loop_time(lmp, head + order)
    if md is None or md_order is None:
        return {"error": "LAMMPS run failed"}
    return {"md_step_s": md, "order_eval_s": max(md_order - md, 0.0), "executable": lmp,
            "fix_hmc": None}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-cells", type=int, default=10, help="fcc cells per edge (4·n³ atoms; 10 → 4,000)")
    ap.add_argument("--temperatures", type=int, default=3, help="temperatures between T* = 0.7 and 1.2")
    ap.add_argument("--samples", type=int, default=20, help="production sweeps per temperature")
    ap.add_argument("--warmup", type=int, default=10, help="warm-up sweeps per temperature")
    ap.add_argument("--order-reps", type=int, default=5)
    ap.add_argument("--lammps-steps", type=int, default=500)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    temps = [float(t) for t in np.linspace(0.7, 1.2, args.temperatures)]
    pes = bench_pesflow(args.n_cells, temps, args.samples, args.warmup, args.order_reps)
    lmp = bench_lammps(args.n_cells, args.lammps_steps, shell_cutoff(0.96))
    ok = lmp is not None and "error" not in lmp

    def ratio(a, b):
        return a / b if (a and b) else None

    result = {
        "benchmark": "melting_curve_speed", "system": f"LJ fcc, rc = {RC}σ + tail, P* = {PRESSURE}",
        "reference_T_m": melting_temperature(PRESSURE), "pesflow": pes, "lammps": lmp,
        "ratio_step_pesflow_over_lammps": ratio(pes["integrator_step_s"], lmp["md_step_s"]) if ok else None,
        "ratio_order_pesflow_over_lammps": ratio(pes["order_eval_s"], lmp["order_eval_s"]) if ok else None,
        "lammps_fix_hmc": None,
        "cpu": os.cpu_count(), "load_average": os.getloadavg(),
    }
    rows = [("NPT HMC sweep (10 steps + volume move)", pes["sweep_s"], None),
            ("force evaluation / integrator step", pes["integrator_step_s"], lmp["md_step_s"] if ok else None),
            ("order parameters (q_l, q̄_l, bonds, clusters, a-CNA)", pes["order_eval_s"],
             lmp["order_eval_s"] if ok else None)]
    print(f"{pes['n_atoms']} atoms, {len(temps)} temperatures, {pes['sweeps']} sweeps, load {os.getloadavg()[0]:.1f}")
    print(f"{'quantity':55s} {'pesflow (ms)':>13s} {'LAMMPS (ms)':>12s} {'ratio':>7s}")
    for name, a, b in rows:
        r = f"{a / b:7.2f}" if b else "   n/a"
        print(f"{name:55s} {1e3 * a:13.2f} {(1e3 * b if b else float('nan')):12.2f} {r}")
    print("T*       ρ*      H/N     solid")
    for t, rho, h, s in zip(temps, pes["curve"]["density"], pes["curve"]["enthalpy"],
                            pes["curve"]["solid_fraction_final"], strict=True):
        print(f"{t:5.3f} {rho:7.4f} {h:8.4f} {s:6.3f}")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
