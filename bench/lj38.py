"""LJ₃₈ with parallel-tempering HMC: (a) finding the global minimum from random starts, (b) C_V(T).

LJ₃₈ (reduced units, m = 1, untruncated LJ: cutoff 10σ exceeds the cluster) is the classic double
funnel: global minimum fcc truncated octahedron E = −173.928427 ε, lowest icosahedral minimum
E = −173.252378 ε (Cambridge Cluster Database, Wales & Doye 1997). Atoms are kept within 2.25σ of
the centre of mass by a stiff soft wall (k = 200 ε/σ²), as the hard constraint sphere of Neirotti,
Calvo, Freeman & Doll (2000), J. Chem. Phys. 112, 10340.

(a) Each seed starts every rung from its own random structure (uniform in a sphere, relaxed by a
    few L-BFGS steps to remove overlaps), runs replica-exchange HMC on a geometric ladder and
    quenches (L-BFGS on the pure LJ energy) the configurations of the coldest rungs every
    ``--quench-every`` sweeps. Reported: force evaluations of the sampler (all rungs, warm-up included) until the first
    quench reaching the global minimum (within 1e-4 ε), per seed; quench evaluations separately.
(b) C_V(T)/k_B = Var(U)/(k_B T)² + 3N/2 at each rung, and a smooth curve by the multiple-histogram
    (binless WHAM, Ferrenberg & Swendsen 1989) reweighting of all rungs; peak positions are compared
    with the published curve (solid–solid peak T* ≈ 0.12, melting peak T* ≈ 0.17–0.18).

    python bench/lj38.py --seeds 10 --sweeps 3000 --json bench/out/lj38.json

(a') ``--method bhpt``: parallel-tempering basin hopping with HMC moves
    (:mod:`hmc_core.basin_hopping`): every rung holds a local minimum; a move is one unadjusted HMC
    trajectory at ``--kick-temperature`` followed by a quench, accepted on the quenched energies at the
    rung's temperature; neighbouring rungs swap minima. Reported as in (a): force evaluations (kicks and
    quenches, all rungs, from the random starts) until the first quench reaches the global minimum.

    python bench/lj38.py --method bhpt --seeds 20 --json bench/out/lj38_bhpt.json

    The competitor, ``--method scipy-bh``: ``scipy.optimize.basinhopping`` (one walker, random
    displacements, Wales & Doye 1997 settings T* = 0.8, step 0.36σ) with the same quench and wall:

    python bench/lj38.py --method scipy-bh --seeds 20 --moves 20000 --json bench/out/lj38_scipy_bh.json
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # multithreaded BLAS makes scipy's L-BFGS ~10× slower on a loaded 2-core machine
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hmc_core.basin_hopping import BasinHoppingConfig, ParallelTemperingBasinHopping  # noqa: E402
from hmc_core.hmc import HMCConfig  # noqa: E402
from hmc_core.minimize import local_minimum  # noqa: E402
from hmc_core.potentials import ForceField, LennardJones  # noqa: E402
from hmc_core.potentials.combined import SumPotential  # noqa: E402
from hmc_core.potentials.confinement import ConfiningSphere  # noqa: E402
from hmc_core.potentials.lj_cluster import LennardJonesCluster, minimize_cluster  # noqa: E402
from hmc_core.replica_exchange import ReplicaExchange, geometric_ladder  # noqa: E402
from hmc_core.reweighting import MultipleHistogram  # noqa: E402

N_ATOMS = 38
E_GLOBAL = -173.928427  # fcc truncated octahedron (Cambridge Cluster Database)
E_ICOSAHEDRAL = -173.252378  # lowest icosahedral minimum (Cambridge Cluster Database)
CONFINING_RADIUS = 2.25
PUBLISHED_PEAKS = {"solid_solid": 0.12, "melting": 0.17}  # Neirotti et al. 2000; Calvo et al. 2000 (T*, ≈)


def lj() -> LennardJones:
    return LennardJones(cutoff_sigma=10.0)  # beyond the cluster's diameter: untruncated


def confined_lj() -> SumPotential:
    return SumPotential([lj(), ConfiningSphere(CONFINING_RADIUS, 200.0)])


def make_forcefield() -> ForceField:
    """Confined LJ₃₈ for the samplers: all pairs, whole velocity-Verlet trajectories in one Numba call
    (equal to ``confined_lj()`` to rounding, ~10× faster for 38 atoms)."""
    return ForceField(LennardJonesCluster(radius=CONFINING_RADIUS, stiffness=200.0), np.ones(N_ATOMS, int))


class Quencher:
    """Local minimisation (Numba L-BFGS, ``minimize_cluster``) on the pure LJ energy; counts force
    evaluations. ~3 ms per quench of LJ₃₈ (scipy's L-BFGS-B took 25–250 ms for the same quench here)."""

    def __init__(self):
        self.potential = LennardJonesCluster()
        self.n_evaluations = 0

    def __call__(self, x, max_iter: int = 5000, gtol: float = 1e-6) -> tuple[float, np.ndarray]:
        e, x_min, n_eval = minimize_cluster(self.potential, np.asarray(x, float).reshape(N_ATOMS, 3), max_iter, gtol)
        self.n_evaluations += n_eval
        return e, x_min


def truncated_octahedron() -> np.ndarray:
    """The LJ₃₈ global minimum's geometry before relaxation: the 38 fcc sites nearest an octahedral hole
    (shells of 6 + 8 + 24), nearest-neighbour distance 2^(1/6) σ; L-BFGS takes it to −173.928427 ε."""
    a = 2 ** (1 / 6) * np.sqrt(2)
    g = np.arange(-4, 5)
    sites = np.array([[i, j, k] for i in g for j in g for k in g if (i + j + k) % 2 == 0], float) * a / 2
    center = np.array([a / 2, 0.0, 0.0])
    return sites[np.argsort(np.linalg.norm(sites - center, axis=1), kind="stable")[:N_ATOMS]] - center


def random_start(rng: np.random.Generator, quench: Quencher) -> np.ndarray:
    """Uniform in a sphere of radius 1.9σ, then 30 L-BFGS steps (removes overlaps, stays disordered)."""
    r = 1.9 * rng.uniform(0, 1, N_ATOMS) ** (1 / 3)
    v = rng.standard_normal((N_ATOMS, 3))
    x = v / np.linalg.norm(v, axis=1, keepdims=True) * r[:, None]
    return quench(x, max_iter=30)[1]


def run_seed(seed: int, ladder: np.ndarray, n_sweeps: int, quench_every: int, n_quench_rungs: int,
             n_steps: int, n_warmup: int, start: str = "random", stop_when_found: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    quench = Quencher()
    if start == "fcc":
        starts = np.repeat(quench(truncated_octahedron())[1][None], len(ladder), axis=0)
    else:
        starts = np.array([random_start(rng, quench) for _ in ladder])
    quench.n_evaluations = 0
    cfg = HMCConfig(temperature=float(ladder[0]), dt=0.02, n_steps=n_steps, units="lj", jitter_dt=0.2,
                    n_warmup=n_warmup, target_accept=0.7)
    rex = ReplicaExchange(make_forcefield, cfg, ladder)
    found = {"sweep": None, "force_evaluations": None, "quench_evaluations": None}
    best = [np.inf]

    def callback(sweep, state):
        if found["sweep"] is None and sweep % quench_every == 0:
            for k in range(n_quench_rungs):
                e, _ = quench(state.states[k].positions)
                best[0] = min(best[0], e)
                if e < E_GLOBAL + 1e-4:
                    found.update(sweep=sweep, force_evaluations=rex.force_evaluations,
                                 quench_evaluations=quench.n_evaluations)
                    break
        return stop_when_found and found["sweep"] is not None

    t0 = time.perf_counter()
    result = rex.run(starts, n_sweeps, seed=seed, callback=callback, save_every=n_sweeps)  # keep no frames
    wall = time.perf_counter() - t0
    return {
        "seed": seed, "found_global_minimum": found["sweep"] is not None, **found,
        "best_quenched_energy": best[0], "sampler_force_evaluations": result.force_evaluations,
        "swap_rates": result.swap_rates.tolist(), "acceptance_rates": result.acceptance_rates.tolist(),
        "round_trips": len(result.round_trip_times),
        "mean_round_trip_sweeps": float(result.round_trip_times.mean()) if len(result.round_trip_times) else None,
        "final_dt": [s.dt for s in result.state.states], "wall_s": wall,
        "energies": result.potential_energy,
    }


def run_seed_bhpt(seed: int, ladder: np.ndarray, n_moves: int, kick_temperature: float, n_steps: int,
                  dt: float) -> dict:
    """One global-minimum search by PT basin hopping with HMC moves, from random starts."""
    rng = np.random.default_rng(seed)
    starts = np.array([random_start(rng, Quencher()) for _ in ladder])
    cfg = BasinHoppingConfig(temperatures=tuple(ladder), kick_temperature=kick_temperature, dt=dt, n_steps=n_steps)
    t0 = time.perf_counter()
    r = ParallelTemperingBasinHopping(make_forcefield, cfg).run(starts, n_moves, seed=seed,
                                                                 stop_below=E_GLOBAL + 1e-4)
    found = r.best_energy < E_GLOBAL + 1e-4
    return {"seed": seed, "found_global_minimum": bool(found),
            "force_evaluations": r.best_force_evaluations if found else None,
            "moves": int(r.best_move) + 1 if found else len(r.energies),
            "quench_evaluations": r.quench_evaluations, "sampler_force_evaluations": r.force_evaluations,
            "best_quenched_energy": r.best_energy, "swap_rates": r.swap_rates.tolist(),
            "acceptance_rates": r.acceptance_rates.tolist(), "wall_s": time.perf_counter() - t0}


def run_seed_scipy_bh(seed: int, n_iter: int, temperature: float, stepsize: float) -> dict:
    """The standard competitor: scipy's ``basinhopping`` (Wales & Doye 1997: random displacements of every
    coordinate by up to ``stepsize``, adapted towards 50 % acceptance, Metropolis on quenched energies at
    ``temperature``), with the same Numba quench and confining wall, from the same kind of random start."""
    from scipy.optimize import OptimizeResult, basinhopping

    rng = np.random.default_rng(seed)
    x0 = random_start(rng, Quencher())
    ff = make_forcefield()  # counts every evaluation: the quenches and scipy's own energy calls
    found = {"evaluations": None}

    def quench(fun, x, args=(), **_):
        e, xm = local_minimum(ff, np.asarray(x).reshape(N_ATOMS, 3))
        return OptimizeResult(x=xm.ravel(), fun=e, success=True)

    def energy(x):
        return ff.energy_forces(x.reshape(N_ATOMS, 3).copy())[0]

    def callback(x, f, accepted):
        if f < E_GLOBAL + 1e-4 and found["evaluations"] is None:
            found["evaluations"] = ff.n_evaluations
            return True
        return None

    t0 = time.perf_counter()
    result = basinhopping(energy, x0.ravel(), niter=n_iter, T=temperature, stepsize=stepsize,
                          minimizer_kwargs={"method": quench}, callback=callback, rng=seed)
    return {"seed": seed, "found_global_minimum": found["evaluations"] is not None,
            "force_evaluations": found["evaluations"], "sampler_force_evaluations": ff.n_evaluations,
            "quench_evaluations": ff.n_evaluations,
            "moves": int(result.nit), "best_quenched_energy": float(result.fun), "wall_s": time.perf_counter() - t0}


def median_with_misses(costs: list[float | None]) -> float:
    """Median over seeds, a miss (None) counting as more than any budget (∞)."""
    values = sorted(np.inf if c is None else float(c) for c in costs)
    n = len(values)
    return values[(n - 1) // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


def main_bhpt(args) -> dict:
    ladder = geometric_ladder(args.t_min, args.t_max, args.rungs)
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        if args.method == "scipy-bh":
            r = run_seed_scipy_bh(seed, args.moves, args.bh_temperature, args.bh_stepsize)
        else:
            r = run_seed_bhpt(seed, ladder, args.moves, args.kick_temperature, args.n_steps, args.dt)
        runs.append(r)
        print(f"seed {seed}: found={r['found_global_minimum']} after {r['moves']} moves, "
              f"{r['force_evaluations']} force evaluations (best {r['best_quenched_energy']:.6f}); "
              f"{r['wall_s']:.1f} s", flush=True)
    costs = [r["force_evaluations"] for r in runs]
    found = [c for c in costs if c is not None]
    median = median_with_misses(costs)
    ranked = sorted(np.inf if c is None else float(c) for c in costs)
    quartiles = [ranked[round(q * (len(ranked) - 1))] for q in (0.25, 0.75)]
    quench_share = sum(r["quench_evaluations"] for r in runs) / max(1, sum(r["sampler_force_evaluations"]
                                                                           for r in runs))
    if args.method == "scipy-bh":
        print(f"\nLJ38 scipy basinhopping: {len(runs)} seeds, T* = {args.bh_temperature}, initial step "
              f"{args.bh_stepsize} σ, {args.moves} steps at most")
    else:
        print(f"\nLJ38 PT basin hopping with HMC moves: {len(runs)} seeds, ladder {ladder[0]:.3f}–{ladder[-1]:.3f} "
              f"({len(ladder)} rungs), kicks {args.n_steps} × dt {args.dt} at T* = {args.kick_temperature}")
    print(f"global minimum found by {len(found)}/{len(runs)} seeds; force evaluations to find it: median "
          f"{median:.3g}, quartiles {quartiles[0]:.3g}–{quartiles[1]:.3g}, "
          f"min {min(found, default=np.nan):.3g}, max {max(found, default=np.nan):.3g}; quenches are "
          f"{100 * quench_share:.0f} % of the evaluations; median wall {np.median([r['wall_s'] for r in runs]):.1f} s")
    method = ("scipy.optimize.basinhopping (random displacements)" if args.method == "scipy-bh"
              else "parallel-tempering basin hopping, HMC moves")
    report = {"method": method, "runs": runs, "n_seeds": len(runs),
              "n_found": len(found), "median_force_evaluations_to_global_minimum": median,
              "quartile_force_evaluations": quartiles, "ladder": ladder.tolist(),
              "kick_temperature": args.kick_temperature, "n_steps": args.n_steps,
              "dt": args.dt, "max_moves": args.moves, "quench_share": quench_share}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return report


def heat_capacity_fluctuation(energies: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    """C_V/k_B per rung: Var(U)/T² + 3N/2 (energies (S, K) pooled over seeds)."""
    return energies.var(axis=0, ddof=1) / temperatures**2 + 1.5 * N_ATOMS


def heat_capacity_wham(energies_per_rung: list[np.ndarray], temperatures: np.ndarray, t_grid: np.ndarray) -> np.ndarray:
    """C_V(T)/k_B on ``t_grid`` by binless multiple-histogram reweighting of all rungs' energies."""
    return MultipleHistogram(energies_per_rung, temperatures).heat_capacity(t_grid) + 1.5 * N_ATOMS


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", choices=["pt", "bhpt", "scipy-bh"], default="pt",
                    help="pt: parallel-tempering HMC (search + C_V); bhpt: PT basin hopping with HMC moves (search); "
                         "scipy-bh: scipy's basinhopping, the competitor (search)")
    ap.add_argument("--moves", type=int, default=5000, help="bhpt: moves per rung; scipy-bh: steps (budget)")
    ap.add_argument("--bh-temperature", type=float, default=0.8, help="scipy-bh: Metropolis T* (Wales & Doye: 0.8)")
    ap.add_argument("--bh-stepsize", type=float, default=0.36, help="scipy-bh: initial displacement (σ)")
    ap.add_argument("--kick-temperature", type=float, default=1.0, help="bhpt: T* of the HMC kick")
    ap.add_argument("--dt", type=float, default=0.02, help="bhpt: time step of the HMC kick")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--sweeps", type=int, default=3000)
    ap.add_argument("--t-min", type=float, help="lowest rung (pt: 0.09, bhpt: 0.05)")
    ap.add_argument("--t-max", type=float, help="highest rung (pt: 0.25, bhpt: 1.0)")
    ap.add_argument("--rungs", type=int, help="rungs (pt: 14, bhpt: 12)")
    ap.add_argument("--n-steps", type=int, help="steps per trajectory (pt: 10, bhpt kick: 40)")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--quench-every", type=int, default=10)
    ap.add_argument("--quench-rungs", type=int, default=4)
    ap.add_argument("--start", choices=["random", "fcc"], default="random",
                    help="random starts (global-minimum search) or every rung at the fcc global minimum (for C_V)")
    ap.add_argument("--stop-when-found", action="store_true",
                    help="end a seed at its first hit of the global minimum (search only; C_V then uses partial runs)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--energies", type=Path, help="write per-seed energies (npz) for the C_V analysis")
    ap.add_argument("--reanalyse", type=Path, nargs=2, metavar=("JSON", "NPZ"),
                    help="only recompute the summary of a finished run (its --json and --energies files)")
    args = ap.parse_args(argv)
    if args.reanalyse:
        return reanalyse(*args.reanalyse, args.json)
    defaults = {"pt": (0.09, 0.25, 14, 10), "bhpt": (0.05, 1.0, 12, 40), "scipy-bh": (0.05, 1.0, 12, 40)}[args.method]
    for name, value in zip(("t_min", "t_max", "rungs", "n_steps"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.method in ("bhpt", "scipy-bh"):
        return main_bhpt(args)
    ladder = geometric_ladder(args.t_min, args.t_max, args.rungs)
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        r = run_seed(seed, ladder, args.sweeps, args.quench_every, args.quench_rungs, args.n_steps, args.warmup,
                     args.start, args.stop_when_found)
        runs.append(r)
        print(f"seed {seed}: found={r['found_global_minimum']} at {r['force_evaluations']} force evaluations "
              f"(best quench {r['best_quenched_energy']:.6f}); round trips {r['round_trips']}; "
              f"{r['wall_s']:.0f} s", flush=True)
    energies = [r.pop("energies") for r in runs]
    if args.energies:
        args.energies.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.energies, temperatures=ladder, **{f"seed{r['seed']}": e for r, e in zip(runs, energies,
                                                                                               strict=True)})
    if args.json:  # the runs first, so that an interrupted analysis loses nothing (see --reanalyse)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runs": runs, "sweeps": args.sweeps, "n_steps": args.n_steps}, default=float))
    report = summarize(runs, energies, ladder, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return report


def analyse_heat_capacity(energies: list[np.ndarray], ladder: np.ndarray, n_grid: int = 81) -> dict:
    """C_V(T) per seed (second half of each run; seeds are not pooled because a seed's cold rungs may sit
    in a basin the others never visit), then the mean and standard error over seeds. Peaks: the maximum
    of the mean WHAM curve (melting) and, below it, the maximum of dC_V/dT (the fcc ↔ icosahedral
    equilibrium region shows up there, Neirotti et al. 2000)."""
    t_grid = np.linspace(ladder[0], ladder[-1], n_grid)
    cv_rung = np.array([heat_capacity_fluctuation(e[len(e) // 2:], ladder) for e in energies])
    # WHAM on ≤ 4000 evenly spaced samples per rung (successive sweeps are correlated; this keeps it fast)
    cv_wham = np.array([heat_capacity_wham([e[len(e) // 2::max(2, len(e) // 8000), k] for k in range(len(ladder))],
                                           ladder, t_grid) for e in energies])
    mean = cv_wham.mean(axis=0)
    sem = cv_wham.std(axis=0, ddof=1) / np.sqrt(len(energies)) if len(energies) > 1 else np.zeros_like(mean)
    i_peak = int(np.argmax(mean))
    slope = np.gradient(mean, t_grid)
    i_shoulder = int(np.argmax(slope[: max(i_peak, 1)]))
    return {"t_grid": t_grid.tolist(), "cv_wham_mean": mean.tolist(), "cv_wham_sem": sem.tolist(),
            "cv_rung_mean": cv_rung.mean(axis=0).tolist(), "cv_rung_per_seed": cv_rung.tolist(),
            "melting_peak_T": float(t_grid[i_peak]), "max_dcv_dT_below_peak_T": float(t_grid[i_shoulder])}


def summarize(runs, energies, ladder, args) -> dict:
    hits = [r["force_evaluations"] for r in runs if r["found_global_minimum"]]
    budget = [r["sampler_force_evaluations"] for r in runs]
    n = len(runs)
    median = median_with_misses([r["force_evaluations"] if r["found_global_minimum"] else None for r in runs])
    cv = analyse_heat_capacity(energies, ladder)
    print(f"\nLJ38 parallel-tempering HMC, {n} seeds × {args.sweeps} sweeps, ladder {ladder[0]:.3f}–{ladder[-1]:.3f} "
          f"({len(ladder)} rungs)")
    print(f"global minimum found by {len(hits)}/{n} seeds; median force evaluations to find it: {median:.3g} "
          f"(budget per seed {np.median(budget):.3g}); best quenched energies "
          f"{sorted(round(r['best_quenched_energy'], 4) for r in runs)}")
    print(f"{'T*':>7} {'C_V/k (fluct.)':>15}   swap rate to next")
    swaps = np.mean([r["swap_rates"] for r in runs], axis=0)
    for k, t in enumerate(ladder):
        print(f"{t:7.4f} {cv['cv_rung_mean'][k]:15.1f}   {swaps[k] if k < len(swaps) else float('nan'):.2f}")
    print(f"WHAM C_V maximum at T* = {cv['melting_peak_T']:.3f}, max dC_V/dT below it at "
          f"T* = {cv['max_dcv_dT_below_peak_T']:.3f} (published: melting ≈ {PUBLISHED_PEAKS['melting']}, "
          f"solid–solid ≈ {PUBLISHED_PEAKS['solid_solid']})")
    return {"runs": runs, "n_seeds": n, "n_found": len(hits), "median_force_evaluations_to_global_minimum": median,
            "ladder": ladder.tolist(), "heat_capacity": cv, "published_peaks": PUBLISHED_PEAKS,
            "sweeps": args.sweeps, "n_steps": args.n_steps}


def reanalyse(json_path: Path, npz_path: Path, out: Path | None) -> dict:
    """Recompute the summary from a finished run's JSON and energies (npz)."""
    old = json.loads(json_path.read_text())
    data = np.load(npz_path)
    ladder = data["temperatures"]
    runs = old["runs"]
    energies = [data[f"seed{r['seed']}"] for r in runs]
    args = argparse.Namespace(sweeps=old["sweeps"], n_steps=old["n_steps"])
    report = summarize(runs, energies, ladder, args)
    if out:
        out.write_text(json.dumps(report, indent=1, default=float))
    return report


if __name__ == "__main__":
    main()
