"""HMC vs Langevin MD at equal cost on LJ₃₈: basin transitions and ESS of U per 1,000 force evaluations.

System: LJ₃₈ in reduced units with the 2.25σ confining wall of ``bench/lj38.py`` at T* (default 0.14,
below the melting peak, where the cluster hops between many minima of the icosahedral funnel). All
methods start from the same structure (a random start relaxed by L-BFGS, then 2,000 Langevin steps at
T*), get the same budget of force evaluations (warm-up included) and are compared on:

* ``ess_per_kforce``: effective sample size of the potential energy U (``hmc_core.diagnostics``,
  Geyer initial-monotone τ, after dropping the first 20 % of the run) per 1,000 force evaluations;
* ``transitions_per_kforce``: every ``--quench-interval`` force evaluations the current configuration
  is quenched (scipy L-BFGS, pure LJ; not counted in the budget) and labelled by its minimum energy
  (rounded to 1e-3 ε); a transition is a change of label between consecutive quenches.

Methods: velocity-Verlet HMC, force-gradient HMC (Hessian-free), multiple-time-step HMC (LJ split at
1.4σ; inner = short-range LJ + wall, 4 inner steps; cost counts inner AND outer evaluations as full
ones, and the outer-only count is reported separately), replica-exchange HMC (6 rungs T*…0.25,
measured on the T* rung, cost = all rungs), Langevin MD with ASE's ``Langevin`` (γ = 1/τ, dt = 0.01τ)
and pesflow's BAOAB Langevin (same γ, dt). LAMMPS ``fix langevin`` is not run: it integrates the same
Langevin dynamics, so per force evaluation it would match ASE's figures (it would only be faster in wall
time). Ratios are to ASE Langevin MD.

    python bench/hmc_vs_md.py --budget 100000 --seeds 3 --json bench/out/hmc_vs_md.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from lj38 import CONFINING_RADIUS, N_ATOMS, Quencher, lj, make_forcefield, random_start  # noqa: E402

from hmc_core.diagnostics import effective_sample_size  # noqa: E402
from hmc_core.hmc import HMCConfig, HMCSampler  # noqa: E402
from hmc_core.mts import split_forcefield, split_lennard_jones  # noqa: E402
from hmc_core.potentials.combined import SumPotential  # noqa: E402
from hmc_core.potentials.confinement import ConfiningSphere  # noqa: E402
from hmc_core.replica_exchange import ReplicaExchange, geometric_ladder  # noqa: E402
from hmc_core.unadjusted import LangevinConfig, run_langevin  # noqa: E402

MD_DT, FRICTION = 0.01, 1.0


class Tracker:
    """Collects U samples with their cumulative cost and quenches every ``interval`` force evaluations."""

    def __init__(self, interval: int, quench: Quencher):
        self.interval, self.quench = interval, quench
        self.cost, self.next_quench = 0, 0
        self.u, self.u_cost, self.labels = [], [], []

    def record(self, cost: int, energy: float, positions: np.ndarray):
        self.cost = cost
        self.u.append(energy)
        self.u_cost.append(cost)
        while self.cost >= self.next_quench:
            e, _ = self.quench(positions)
            self.labels.append(round(e, 3))
            self.next_quench += self.interval

    def summary(self, budget: int) -> dict:
        if len(self.u) < 10:
            raise SystemExit(f"error: a budget of {budget} force evaluations is (nearly) all spent on warm-up; "
                             "raise --budget (≥ 20000 recommended)")
        u, c = np.array(self.u), np.array(self.u_cost)
        keep = c >= 0.2 * c[-1]
        ess = effective_sample_size(u[keep])
        spent = c[-1] - c[keep][0]
        labels = np.array(self.labels)
        transitions = int(np.sum(labels[1:] != labels[:-1]))
        return {"force_evaluations": int(c[-1]), "n_samples": int(keep.sum()), "ess_U": float(ess),
                "ess_per_kforce": 1000.0 * ess / spent, "n_quenches": len(labels), "transitions": transitions,
                "transitions_per_kforce": 1000.0 * transitions / c[-1], "distinct_minima": len(set(labels.tolist())),
                "mean_U": float(u[keep].mean()), "lowest_minimum": float(labels.min())}


def run_hmc(name, ff, start, temperature, budget, tracker, integrator, n_steps, dt, seed, cost_fn=None,
            units="lj", masses=None, target_accept=0.75, n_warmup=50):
    """HMC until ``cost_fn()`` (default: ff.n_evaluations; warm-up included) reaches ``budget``.

    ``tracker.record(cost, U, positions)`` after every trajectory; returns ``tracker.summary(budget)``
    plus acceptance, dt (internal time units) and n_steps. ``masses``: None = species masses.
    """
    cfg = HMCConfig(temperature=temperature, dt=dt, n_steps=n_steps, integrator=integrator, units=units,
                    jitter_dt=0.2, n_warmup=n_warmup, target_accept=target_accept)
    sampler = HMCSampler(ff, cfg, masses)
    state = sampler.init(start, seed)
    cost_fn = cost_fn or (lambda: ff.n_evaluations)
    sampler.warmup(state)
    accepted = 0
    n = 0
    while cost_fn() < budget:
        info = sampler.step(state)
        accepted += info.accepted
        n += 1
        tracker.record(cost_fn(), state.energy, state.positions)
    out = tracker.summary(budget)
    out.update(acceptance=accepted / max(n, 1), dt=state.dt, n_steps=n_steps)
    return out


def run_rehmc(start, temperature, budget, tracker, seed, n_rungs=6, t_high=0.25, make_ff=None, units="lj",
              dt=0.02, n_steps=10, target_accept=0.75, n_warmup=50, masses=None):
    """Replica-exchange HMC on a geometric ladder T…t_high; cost = all rungs, recorded on the lowest rung."""
    ladder = geometric_ladder(temperature, t_high, n_rungs)
    cfg = HMCConfig(temperature=temperature, dt=dt, n_steps=n_steps, units=units, jitter_dt=0.2,
                    n_warmup=n_warmup, target_accept=target_accept)
    rex = ReplicaExchange(make_ff or make_forcefield, cfg, ladder, masses)
    state = rex.init(start, seed)
    rex.warmup(state)
    while rex.force_evaluations < budget:
        rex.sweep(state)
        tracker.record(rex.force_evaluations, state.states[0].energy, state.states[0].positions)
    out = tracker.summary(budget)
    out.update(swap_rates=(state.accepts / np.maximum(state.attempts, 1)).tolist(), ladder=ladder.tolist(),
               round_trips=len(state.round_trip_times))
    return out


def run_ase_langevin(start, temperature, budget, tracker, seed, make_ff=None, numbers=None, dt=MD_DT,
                     friction=FRICTION, record_every=10, units="lj"):
    """ASE ``Langevin`` on the same force field (counted the same way) until ``budget`` force evaluations.

    ``units="lj"``: atoms of mass 1, T* → K via ASE's k_B, dt and friction in ASE time units (reduced);
    ``units="metal"``: ``numbers`` with their physical masses, T in K, dt in fs, friction in 1/fs.
    """
    try:
        from ase import Atoms
        from ase import units as ase_units
        from ase.md.langevin import Langevin
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    except ImportError:
        return None
    from hmc_core.potentials.ase_adapter import ForceFieldCalculator

    ff = (make_ff or make_forcefield)()
    if units == "lj":  # reduced units: σ=Å, ε=eV, m=amu
        atoms = Atoms(f"H{len(start)}", positions=start, masses=np.ones(len(start)))
        t_kelvin, time_unit = temperature / ase_units.kB, 1.0
    else:
        atoms = Atoms(numbers=numbers, positions=start)
        t_kelvin, time_unit = temperature, ase_units.fs
    atoms.calc = ForceFieldCalculator(ff)
    MaxwellBoltzmannDistribution(atoms, temperature_K=t_kelvin, rng=np.random.default_rng(seed))
    dyn = Langevin(atoms, timestep=dt * time_unit, temperature_K=t_kelvin, friction=friction / time_unit,
                   fixcm=False, rng=np.random.default_rng(seed + 1))
    while ff.n_evaluations < budget:
        dyn.run(record_every)
        tracker.record(ff.n_evaluations, atoms.get_potential_energy(), atoms.positions.copy())
    out = tracker.summary(budget)
    out.update(dt=dt, friction=friction)
    return out


def run_baoab(start, temperature, budget, tracker, seed):
    ff = make_forcefield()
    cfg = LangevinConfig(temperature=temperature, dt=MD_DT, friction=FRICTION, units="lj", record_every=10)
    x, p = np.array(start), None
    chunk = 1000
    while ff.n_evaluations < budget:
        res = run_langevin(ff, x, cfg, chunk, seed=seed + ff.n_evaluations, momenta=p, masses=np.ones(N_ATOMS))
        base = ff.n_evaluations - res.force_evaluations
        for k, (u, fr) in enumerate(zip(res.potential_energy, res.frames, strict=True)):
            tracker.record(base + (k + 1) * cfg.record_every, float(u), fr)
        x, p = res.positions, res.momenta
    out = tracker.summary(budget)
    out.update(dt=MD_DT, friction=FRICTION)
    return out


def common_start(seed: int, temperature: float) -> np.ndarray:
    quench = Quencher()
    x = quench(random_start(np.random.default_rng(seed), quench))[1]
    res = run_langevin(make_forcefield(), x, LangevinConfig(temperature, MD_DT, FRICTION, "lj", 100), 2000,
                       seed=seed, masses=np.ones(N_ATOMS), save_frames=False)
    return res.positions


def run_seed(seed: int, t: float, budget: int, quench_interval: int) -> dict:
    """All methods from one common start (seed); returns {method: summary or None}."""
    start = common_start(seed, t)
    results = {}

    def tracker():
        return Tracker(quench_interval, Quencher())

    inner_lj, outer_lj = split_lennard_jones(lj(), 1.4, 0.3)
    mts_ff = split_forcefield(SumPotential([inner_lj, ConfiningSphere(CONFINING_RADIUS, 200.0)]), outer_lj,
                              np.ones(N_ATOMS, int), skin=1.0, n_inner=4)
    methods = {
        "VV-HMC": lambda tr: run_hmc("VV", make_forcefield(), start, t, budget, tr, "verlet", 10, 0.02, seed),
        "FG-HMC": lambda tr: run_hmc("FG", make_forcefield(), start, t, budget, tr, "force_gradient_hf", 4, 0.05,
                                     seed),
        "MTS-HMC": lambda tr: run_hmc("MTS", mts_ff, start, t, budget, tr, "mts", 5, 0.04, seed,
                                      cost_fn=lambda: mts_ff.n_evaluations + mts_ff.n_inner_evaluations),
        "RE-HMC": lambda tr: run_rehmc(start, t, budget, tr, seed),
        "Langevin MD (ASE)": lambda tr: run_ase_langevin(start, t, budget, tr, seed),
        "Langevin BAOAB (pesflow)": lambda tr: run_baoab(start, t, budget, tr, seed),
    }
    for name, fn in methods.items():
        t0 = time.perf_counter()
        results[name] = fn(tracker())
        if results[name] is not None:
            results[name]["wall_s"] = time.perf_counter() - t0
            if name == "MTS-HMC":
                results[name]["outer_force_evaluations"] = mts_ff.n_evaluations
                results[name]["inner_force_evaluations"] = mts_ff.n_inner_evaluations
        print(f"seed {seed} {name}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    return results


def aggregate(per_seed: list[dict], keys=("ess_per_kforce", "transitions_per_kforce", "distinct_minima", "mean_U",
                                          "wall_s")) -> dict:
    """Mean and standard error over seeds of each method's figures (``keys``), and ratios of the means to ASE MD."""
    names = list(per_seed[0])
    out = {}
    for name in names:
        runs = [r[name] for r in per_seed if r.get(name) is not None]
        if not runs:
            out[name] = None
            continue
        row = {}
        for key in keys:
            v = np.array([r[key] for r in runs], float)
            row[key] = float(v.mean())
            row[key + "_sem"] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None
        row["acceptance"] = float(np.mean([r.get("acceptance", np.nan) for r in runs]))
        row["n_seeds"] = len(runs)
        out[name] = row
    md = out.get("Langevin MD (ASE)")
    for row in out.values():
        if row is None:
            continue
        row["ess_ratio_to_md"] = row["ess_per_kforce"] / md["ess_per_kforce"] if md else None
        row["transitions_ratio_to_md"] = (row["transitions_per_kforce"] / md["transitions_per_kforce"]
                                          if md and md["transitions_per_kforce"] > 0 else None)
    return out


def print_table(agg: dict, t: float, budget: int, interval: int, n_seeds: int) -> None:
    print(f"\nLJ38 at T* = {t}: {budget} force evaluations per method and seed, {n_seeds} seed(s), quench every "
          f"{interval}; mean ± standard error over seeds; ratios of the means to ASE Langevin MD")
    print(f"{'method':<26}{'ESS(U)/kF':>16}{'ratio':>7}{'trans/kF':>16}{'ratio':>7}{'minima':>8}{'⟨U⟩':>10}"
          f"{'acc':>6}{'wall s':>8}")

    def pm(row, key):
        sem = row.get(key + "_sem")
        return f"{row[key]:.3f}" + (f" ± {sem:.3f}" if sem is not None else "")

    for name, r in agg.items():
        if r is None:
            print(f"{name:<26}{'null (competitor missing)':>40}")
            continue
        ratio_e = r["ess_ratio_to_md"] if r["ess_ratio_to_md"] is not None else float("nan")
        ratio_t = r["transitions_ratio_to_md"] if r["transitions_ratio_to_md"] is not None else float("nan")
        print(f"{name:<26}{pm(r, 'ess_per_kforce'):>16}{ratio_e:7.2f}{pm(r, 'transitions_per_kforce'):>16}"
              f"{ratio_t:7.2f}{r['distinct_minima']:8.1f}{r['mean_U']:10.2f}{r['acceptance']:6.2f}{r['wall_s']:8.0f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--temperature", type=float, default=0.14)
    ap.add_argument("--budget", type=int, default=100_000)
    ap.add_argument("--quench-interval", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--seeds", type=int, default=1, help="independent repetitions (different common starts)")
    ap.add_argument("--combine", type=Path, nargs="+", help="only merge the --json files of earlier runs")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.combine:
        docs = [json.loads(p.read_text()) for p in args.combine]
        per_seed = [run for d in docs for run in d["per_seed"]]
        t, budget, interval = docs[0]["temperature"], docs[0]["budget"], docs[0]["quench_interval"]
    else:
        t, budget, interval = args.temperature, args.budget, args.quench_interval
        per_seed = [run_seed(s, t, budget, interval) for s in range(args.seed, args.seed + args.seeds)]
    agg = aggregate(per_seed)
    print_table(agg, t, budget, interval, len(per_seed))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"temperature": t, "budget": budget, "quench_interval": interval,
                                         "methods": agg, "per_seed": per_seed}, indent=1, default=float))
    return agg


if __name__ == "__main__":
    main()
