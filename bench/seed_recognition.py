"""Does the seeded-crystallisation run see its seeds? Largest cluster per seed structure and size, for
perfect seeds just inserted into a supercooled liquid and for thermalised ones (held while the liquid
relaxes around them, then released for a few NPT HMC sweeps), by both criteria:

* ``units``: clusters of ordered a-CNA units (an atom labelled fcc, hcp, bcc, icosahedral or five-fold with
  its 12/14 shell neighbours; :mod:`hmc_core.order`) — what :func:`hmc_core.seeding.run_seeded` follows;
* ``q6``: ten Wolde–Frenkel solid-like clusters (≥ 7 bonds with d6 > 0.7) — the former criterion.

Protocol as ``pesflow seed`` (LJ, r_c = 3σ shifted + tail, P* = 1): an 864-atom fcc crystal melted at
2 T_m for 150 sweeps and quenched to T for 400; the bulk fcc crystal at (T, P) (2048 atoms) gives the seeds'
density and the fcc seeds' thermal displacements; hcp/bcc/ico seeds are perfect at that density (ico: the
19 atoms nearest the centre of a 55-atom Mackay icosahedron, as the command inserts). Each seed is held
for ``--hold`` sweeps (fixed volume), then followed for ``--free`` sweeps, analysed every 2. The liquid's
own background (largest cluster of the seedless liquid over 20 sweeps) is reported beside.

    python bench/seed_recognition.py --json bench/out/seed_recognition.json            # ~4 min, T* = 0.6, 0.7
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchutil import write_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hmc_core.ladders import melt  # noqa: E402
from hmc_core.lj_reference import melting_temperature  # noqa: E402
from hmc_core.npt import NPTConfig, NPTSampler, run_npt_chain  # noqa: E402
from hmc_core.phase_analysis import OrderAnalysis  # noqa: E402
from hmc_core.phase_system import PhaseSystem, bulk_crystal  # noqa: E402
from hmc_core.seeding import run_seeded  # noqa: E402
from hmc_core.structures import SEED_STRUCTURES, lattice  # noqa: E402

PRESSURE = 1.0


def prepare(system: PhaseSystem, temperature: float, n_cells: int, seed: int):
    pos, cell = lattice("fcc", n_cells, 1.0)
    pos, cell = melt(system, pos, cell, 2 * melting_temperature(PRESSURE), PRESSURE, n_samples=150, seed=seed)
    liquid = melt(system, pos, cell, temperature, PRESSURE, n_samples=400, seed=seed + 1)
    _, c_pos, c_cell = bulk_crystal(system, temperature, PRESSURE, n_cells=8, seed=seed + 2)
    return liquid, (c_pos, c_cell)


def background(system: PhaseSystem, liquid, temperature: float, seed: int) -> dict:
    pos, cell = liquid
    sampler = NPTSampler(system.force_field(len(pos), cell), system.hmc_settings(temperature, 10, 10),
                         NPTConfig(pressure=PRESSURE))
    res = run_npt_chain(sampler, pos, 20, seed=seed, save_every=2,
                        analyse=OrderAnalysis(cutoff=None, clusters="units"))
    units, q6 = res.analysis["largest_cluster"], res.analysis["largest_cluster_q6"]
    return {"units_max": float(units.max()), "units_mean": float(units.mean()), "q6_max": float(q6.max()),
            "q6_mean": float(q6.mean())}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.6, 0.7])
    ap.add_argument("--sizes", type=int, nargs="+", default=[19, 55])
    ap.add_argument("--structures", nargs="+", default=list(SEED_STRUCTURES))
    ap.add_argument("--hold", type=int, default=20)
    ap.add_argument("--free", type=int, default=10)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--n-cells", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    system = PhaseSystem("LJ", 3.0)
    out = {"settings": vars(args) | {"json": str(args.json)}, "pressure": PRESSURE, "runs": [], "background": {}}
    for t in args.temperatures:
        t0 = time.perf_counter()
        liquid, crystal = prepare(system, t, args.n_cells, args.seed)
        out["background"][str(t)] = bg = background(system, liquid, t, args.seed + 5)
        print(f"T* = {t}: liquid prepared in {time.perf_counter() - t0:.0f} s; seedless liquid's largest cluster: "
              f"units max {bg['units_max']:.0f} (mean {bg['units_mean']:.1f}), q6 max {bg['q6_max']:.0f}", flush=True)
        for st in args.structures:
            for n in args.sizes:
                for r in range(args.replicas):
                    ds = run_seeded(system, *liquid, st, n, t, PRESSURE, n_samples=args.free, analyse_every=2,
                                    n_hold=args.hold, crystal=crystal, n_warmup=10, seed=args.seed + 100 * r + 7)
                    units, q6 = ds["largest_cluster"].values, ds["largest_cluster_q6"].values
                    row = {"temperature": t, "structure": st, "n_seed": n, "replica": r,
                           "inserted_units": ds.attrs["inserted_largest_cluster"],
                           "inserted_q6": ds.attrs["inserted_largest_cluster_q6"],
                           "inserted_seed_in_largest": ds.attrs["inserted_seed_in_largest"],
                           "held_units": float(units[0]), "held_q6": float(q6[0]),
                           "free_sweeps": ds["sweep"].values[1:].tolist(), "free_units": units[1:].tolist(),
                           "free_q6": q6[1:].tolist(),
                           "free_seed_in_largest": ds["seed_in_largest"].values[1:].tolist()}
                    out["runs"].append(row)
                    print(f"  {st} {n} r{r}: inserted units {row['inserted_units']:.0f} (q6 "
                          f"{row['inserted_q6']:.0f}); held {row['held_units']:.0f} ({row['held_q6']:.0f}); "
                          f"free sweeps {row['free_sweeps']}: units {units[1:].astype(int).tolist()} "
                          f"q6 {q6[1:].astype(int).tolist()}", flush=True)
    write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
