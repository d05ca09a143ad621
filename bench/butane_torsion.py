"""HMC vs Langevin MD at equal cost on n-butane (GFN2-xTB): torsional transitions and ESS per 1,000 force calls.

System: n-butane (``ase.build.molecule("trans-butane")``, relaxed with GFN2-xTB) in vacuum, GFN2-xTB through
tblite's ASE calculator (1 thread) wrapped as a pesflow potential (:class:`AseCalculatorPotential`).
Observable: the C1–C2–C3–C4 dihedral φ. Basins: trans |φ| > 120°, gauche+ 0 < φ < 120°, gauche− −120 < φ < 0.
A transition is counted with hysteresis: only when φ enters the core (±``--core``° around 180°, +60°, −60°)
of a basin other than the last one whose core it visited. φ is measured on every sample: after each HMC
trajectory (replica exchange: after each sweep, on the target rung), and for MD every ``--traj-evals`` steps,
so all methods sample at the same interval in force evaluations (one trajectory costs ``--traj-evals``).

Every method starts from the same relaxed trans structure and gets the same budget of xTB force calls,
warm-up (dual-averaging step-size tuning to acceptance ``--target-accept``) included. Figures per method:

* ``transitions_per_kforce``: transitions per 1,000 xTB calls over the whole budget;
* ``ess_per_kforce``: ESS of the potential energy U per 1,000 xTB calls (Geyer τ, after dropping the
  first 20 % of the samples, cost of that window); ``ess_cos_phi_per_kforce`` the same for cos φ.
  ESS of cos φ is only meaningful for runs with several transitions: a chain stuck in trans reports the
  ESS of the fluctuations inside that basin.

Methods (HMC: ``--traj-evals`` xTB calls per trajectory, dt jitter ±20 %):
velocity-Verlet HMC (physical masses); force-gradient HMC (Hessian-free, Yin & Mawhinney 2011; 3 calls
per step); MTS HMC (inner = harmonic bonds + angles fitted to xTB at the minimum,
:mod:`hmc_core.potentials.bonded`, on ``--n-inner`` inner steps; outer = xTB − inner through SumPotential
weights [1, −1]; cost = outer xTB calls + the 6N = 84 calls of the Hessian for the fit); preconditioned
HMC (hydrogen mass ``--pc-h-mass`` amu, carbon 12: C–H stretches and bends slow down so dt can grow, while
the torsion's moment of inertia grows less; the Boltzmann distribution of configurations does not depend
on the masses, so HMC may choose them, MD for dynamics may not. For butane a rough estimate — progress
along φ per force call ∝ 1/(ω_max √I_φ) — peaks near m_H ≈ 4–6 amu at only ~1.3× the physical masses,
and m_H = 12 gives ~1.2×);
replica-exchange HMC (``--rungs`` rungs geometric from T to ``--t-high``, cost = all rungs, measured on
the T rung); Langevin MD with ASE's ``Langevin`` (physical masses, dt ``--md-dt`` fs, friction
``--friction`` 1/fs). Ratios are to ASE Langevin MD.

Default T = 600 K: at 600 K Langevin MD made 4–7 transitions per 20k force calls (3 seeds). With a
trans→gauche barrier of ≈ 14 kJ/mol (literature value for butane, not computed here for GFN2-xTB) the
Arrhenius factor predicts ~15× fewer at 300 K (≈ 0.3 per 20k calls: nothing to compare; not run).
``--traj-evals 60`` (longer trajectories) is the ablation that tests whether HMC's momentum refresh
every 20 calls is what holds back its barrier crossings.

    OMP_NUM_THREADS=1 python bench/butane_torsion.py --budget 20000 --seeds 3 --json bench/out/butane_torsion.json

(or one process per seed, ``--seed S --seeds 1 --json …_sS.json``, merged with ``--combine``).
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

from ase.data import atomic_masses  # noqa: E402
from ase_overhead import direct  # noqa: E402
from hmc_vs_md import aggregate, run_ase_langevin, run_hmc, run_rehmc  # noqa: E402

from hmc_core.diagnostics import effective_sample_size  # noqa: E402
from hmc_core.mts import split_forcefield  # noqa: E402
from hmc_core.potentials.ase_adapter import AseCalculatorPotential  # noqa: E402
from hmc_core.potentials.base import ForceField, Potential  # noqa: E402
from hmc_core.potentials.bonded import bonded_topology, fit_harmonic_bonded  # noqa: E402
from hmc_core.potentials.combined import SumPotential  # noqa: E402
from hmc_core.units import FS_IN_ASE_TIME  # noqa: E402

DIHEDRAL = (0, 1, 2, 3)  # the four carbons of ase's trans-butane
BASIN_NAMES = ("trans", "gauche+", "gauche-")
BASIN_CENTRES = (180.0, 60.0, -60.0)
MD_NAME = "Langevin MD (ASE)"
KEYS = ("ess_per_kforce", "ess_cos_phi_per_kforce", "transitions_per_kforce", "trans_fraction", "mean_U",
        "acceptance", "wall_s")


def dihedral(x: np.ndarray, idx=DIHEDRAL) -> float:
    """Dihedral angle i–j–k–l in degrees, (−180, 180] (IUPAC sign; 180 = trans/anti)."""
    p0, p1, p2, p3 = (np.asarray(x[i], float) for i in idx)
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1 = b1 / np.linalg.norm(b1)
    v = b0 - np.dot(b0, b1) * b1
    w = b2 - np.dot(b2, b1) * b1
    return float(np.degrees(np.arctan2(np.dot(np.cross(b1, v), w), np.dot(v, w))))


def basin(phi: float) -> int:
    """0 trans (|φ| > 120°), 1 gauche+ (0 < φ ≤ 120°), 2 gauche− (−120 ≤ φ ≤ 0)."""
    if abs(phi) > 120.0:
        return 0
    return 1 if phi > 0 else 2


def core_basin(phi: float, half_width: float = 30.0) -> int:
    """Basin index if φ lies within ±half_width of its centre (180°, +60°, −60°), else −1."""
    for k, c in enumerate(BASIN_CENTRES):
        if abs((phi - c + 180.0) % 360.0 - 180.0) <= half_width:
            return k
    return -1


def count_transitions(phis, half_width: float = 30.0, start: int | None = None) -> int:
    """Core-to-core basin changes along a series of dihedrals (degrees), with hysteresis."""
    state, n = start, 0
    for phi in phis:
        k = core_basin(phi, half_width)
        if k < 0:
            continue
        if state is not None and k != state:
            n += 1
        state = k
    return n


class TorsionTracker:
    """Collects U, φ and cumulative cost per sample (same interface as ``hmc_vs_md.Tracker``)."""

    def __init__(self, half_width: float):
        self.half_width = half_width
        self.u, self.phi, self.cost = [], [], []

    def record(self, cost: int, energy: float, positions: np.ndarray):
        self.cost.append(cost)
        self.u.append(energy)
        self.phi.append(dihedral(positions))

    def summary(self, budget: int) -> dict:
        if len(self.u) < 20:
            raise SystemExit(f"error: a budget of {budget} force evaluations leaves fewer than 20 samples after "
                             "warm-up; raise --budget (≥ 10000 recommended)")
        u, phi, c = np.array(self.u), np.array(self.phi), np.array(self.cost)
        keep = c >= 0.2 * c[-1]
        spent = c[-1] - c[keep][0]
        cos_phi = np.cos(np.radians(phi))
        ess_u, ess_c = effective_sample_size(u[keep]), effective_sample_size(cos_phi[keep])
        transitions = count_transitions(phi, self.half_width, start=0)
        basins = np.array([basin(p) for p in phi[keep]])
        return {"force_evaluations": int(c[-1]), "n_samples": int(keep.sum()), "ess_U": float(ess_u),
                "ess_per_kforce": 1000.0 * ess_u / spent, "ess_cos_phi": float(ess_c),
                "ess_cos_phi_per_kforce": 1000.0 * ess_c / spent, "transitions": transitions,
                "transitions_per_kforce": 1000.0 * transitions / c[-1],
                "trans_fraction": float(np.mean(basins == 0)),
                "basin_fractions": {n: float(np.mean(basins == k)) for k, n in enumerate(BASIN_NAMES)},
                "mean_U": float(u[keep].mean())}


def xtb_calculator():
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", verbosity=0)


def butane():
    from ase.build import molecule

    return molecule("trans-butane")


class BondGuard(Potential):
    """``potential`` unless a bond is stretched beyond ``max_ratio`` × its reference length or two atoms come
    closer than ``min_distance`` Å; then energy NaN (an HMC rejection) without calling the potential.

    Early warm-up trajectories (dual averaging first tries ~17× the initial step) can tear the molecule
    apart, and GFN2-xTB then spends up to 250 SCF cycles (~2 s) per call. The excluded region (a C–H bond
    at 1.75 × 1.09 Å costs ≳ 3 eV, e^−58 at 600 K) carries no Boltzmann weight, so the target is unchanged.
    A guarded call still counts as a force evaluation.
    """

    full_neighbor_list = False

    def __init__(self, potential: Potential, bonds: np.ndarray, r0: np.ndarray, max_ratio: float = 1.75,
                 min_distance: float = 0.5):
        self.potential, self.bonds, self.r_max = potential, np.asarray(bonds), max_ratio * np.asarray(r0)
        self.min_distance, self.units, self.cutoff = min_distance, potential.units, potential.cutoff
        self.n_guarded = 0

    def prepare(self, species):
        return self.potential.prepare(species)

    def compute(self, positions, cell, types, nlist):
        r = np.linalg.norm(positions[self.bonds[:, 0]] - positions[self.bonds[:, 1]], axis=1)
        d = np.linalg.norm(positions[:, None] - positions[None], axis=2)
        np.fill_diagonal(d, np.inf)
        if np.any(r > self.r_max) or d.min() < self.min_distance or not np.all(np.isfinite(positions)):
            self.n_guarded += 1
            return float("nan"), np.zeros_like(positions), np.zeros((3, 3))
        return self.potential.compute(positions, cell, types, nlist)


def xtb_potential(numbers) -> Potential:
    """GFN2-xTB (tblite) as a pesflow potential, guarded against torn-apart geometries (:class:`BondGuard`)."""
    ref = butane()
    bonds, _ = bonded_topology(numbers, ref.positions)
    r0 = np.linalg.norm(ref.positions[bonds[:, 0]] - ref.positions[bonds[:, 1]], axis=1)
    return BondGuard(AseCalculatorPotential(xtb_calculator()), bonds, r0)


def xtb_forcefield(numbers) -> ForceField:
    return ForceField(xtb_potential(numbers), numbers)


def relaxed_start(fmax: float = 1e-3) -> tuple[np.ndarray, np.ndarray, float]:
    """(numbers, positions, energy) of trans-butane relaxed with GFN2-xTB (not charged to any method)."""
    from ase.optimize import BFGS

    atoms = butane()
    atoms.calc = xtb_calculator()
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=500)
    return atoms.numbers.copy(), atoms.positions.copy(), float(atoms.get_potential_energy())


def adapter_overhead(repeats: int) -> dict:
    """ms per energy+forces call on butane: tblite through AseCalculatorPotential vs its calculator directly.

    The two paths are timed alternately on the same displaced geometries (medians, and the median of the
    per-pair ratios), so a load change on a shared machine affects both alike.
    """
    atoms = butane()
    ff = ForceField(AseCalculatorPotential(xtb_calculator()), atoms.numbers)
    atoms.calc = xtb_calculator()
    raw = direct(atoms)
    x0 = atoms.positions.copy()
    rng = np.random.default_rng(0)
    ff(x0.copy())
    raw(x0.copy())
    t_via, t_raw = [], []
    for _ in range(repeats):
        y = x0 + rng.normal(scale=1e-3, size=x0.shape)
        for fn, times in ((ff, t_via), (raw, t_raw)):
            t0 = time.perf_counter()
            fn(y.copy())
            times.append(time.perf_counter() - t0)
    via, dr = float(np.median(t_via)), float(np.median(t_raw))
    pair_ratio = float(np.median(np.array(t_via) / np.array(t_raw)))
    return {"adapter_ms": 1e3 * via, "direct_ms": 1e3 * dr, "ratio": via / dr, "median_pair_ratio": pair_ratio,
            "repeats": repeats}


def run_seed(seed: int, args, numbers, start, inner, fit_calls: int, methods: list[str]) -> dict:
    """All chosen methods from the common relaxed start with seed ``seed``; {method: summary}."""
    t, budget, n = args.temperature, args.budget, args.traj_evals
    common = dict(units="metal", target_accept=args.target_accept, n_warmup=args.n_warmup)

    def tracker():
        return TorsionTracker(args.core)

    def mts(tr):
        outer = SumPotential([xtb_potential(numbers), inner], weights=[1.0, -1.0])
        ff = split_forcefield(inner, outer, numbers, n_inner=args.n_inner)
        out = run_hmc("MTS", ff, start, t, budget, tr, "mts", n, 2.0, seed,
                      cost_fn=lambda: fit_calls + ff.n_evaluations, **common)
        out.update(outer_xtb_calls=ff.n_evaluations, fit_xtb_calls=fit_calls, inner_evaluations=ff.n_inner_evaluations,
                   n_inner=args.n_inner)
        return out

    runners = {
        "VV-HMC": lambda tr: run_hmc("VV", xtb_forcefield(numbers), start, t, budget, tr, "verlet", n, 1.0, seed,
                                     **common),
        "FG-HMC": lambda tr: run_hmc("FG", xtb_forcefield(numbers), start, t, budget, tr, "force_gradient_hf",
                                     max(1, round(n / 3)), 2.0, seed, **common),
        "MTS-HMC": mts,
        "PC-HMC": lambda tr: run_hmc("PC", xtb_forcefield(numbers), start, t, budget, tr, "verlet", n, 2.0, seed,
                                     masses=np.where(numbers == 1, args.pc_h_mass, atomic_masses[numbers]), **common),
        "RE-HMC": lambda tr: run_rehmc(start, t, budget, tr, seed, n_rungs=args.rungs, t_high=args.t_high,
                                       make_ff=lambda: xtb_forcefield(numbers), dt=1.0, n_steps=n, **common),
        MD_NAME: lambda tr: run_ase_langevin(start, t, budget, tr, seed, make_ff=lambda: xtb_forcefield(numbers),
                                             numbers=numbers, dt=args.md_dt, friction=args.friction,
                                             record_every=n, units="metal"),
    }
    results = {}
    for name in methods:
        t0 = time.perf_counter()
        out = runners[name](tracker())
        if out is not None:
            out["wall_s"] = time.perf_counter() - t0
            out.setdefault("acceptance", float("nan"))
            if "dt" in out and name != MD_NAME:
                out["dt_fs"] = out.pop("dt") / FS_IN_ASE_TIME  # internal time → fs
        results[name] = out
        print(f"seed {seed} {name}: {out['transitions']} transitions, ESS(U) {out['ess_U']:.0f}, "
              f"ESS(cos φ) {out['ess_cos_phi']:.0f}, acc {out['acceptance']:.2f}, dt {out.get('dt_fs', out.get('dt'))}"
              f" fs, {time.perf_counter() - t0:.0f} s", flush=True)
    return results


def print_table(agg: dict, args, n_seeds: int, overhead: dict | None) -> None:
    print(f"\nn-butane GFN2-xTB at T = {args.temperature} K: {args.budget} xTB force calls per method and seed "
          f"(warm-up included), {n_seeds} seed(s), {args.traj_evals} calls per sample; mean ± standard error over "
          f"seeds; ratios of the means to {MD_NAME}")
    print(f"{'method':<20}{'ESS(U)/kF':>15}{'ratio':>7}{'ESS(cosφ)/kF':>15}{'ratio':>7}{'trans/kF':>15}"
          f"{'ratio':>7}{'p(trans)':>9}{'acc':>6}{'wall s':>8}")
    md = agg.get(MD_NAME)

    def pm(row, key):
        sem = row.get(key + "_sem")
        return f"{row[key]:.2f}" + (f" ± {sem:.2f}" if sem is not None else "")

    def ratio(row, key):
        if md is None or md[key] <= 0:
            return float("nan")
        return row[key] / md[key]

    for name, r in agg.items():
        if r is None:
            print(f"{name:<20}{'null (competitor missing)':>40}")
            continue
        print(f"{name:<20}{pm(r, 'ess_per_kforce'):>15}{ratio(r, 'ess_per_kforce'):7.2f}"
              f"{pm(r, 'ess_cos_phi_per_kforce'):>15}{ratio(r, 'ess_cos_phi_per_kforce'):7.2f}"
              f"{pm(r, 'transitions_per_kforce'):>15}{ratio(r, 'transitions_per_kforce'):7.2f}"
              f"{r['trans_fraction']:9.2f}{r['acceptance']:6.2f}{r['wall_s']:8.0f}")
    if overhead:
        print(f"AseCalculatorPotential on butane: {overhead['adapter_ms']:.3f} ms/call vs tblite directly "
              f"{overhead['direct_ms']:.3f} ms/call (ratio of medians {overhead['ratio']:.3f}, median per-pair ratio "
              f"{overhead.get('median_pair_ratio', float('nan')):.3f}, {overhead.get('repeats')} pairs)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--temperature", type=float, default=600.0, help="K (default 600; see above)")
    ap.add_argument("--budget", type=int, default=25_000, help="xTB force calls per method and seed")
    ap.add_argument("--traj-evals", type=int, default=20, help="force calls per HMC trajectory / MD sample")
    ap.add_argument("--target-accept", type=float, default=0.7)
    ap.add_argument("--n-warmup", type=int, default=50, help="step-size warm-up trajectories (charged)")
    ap.add_argument("--core", type=float, default=30.0, help="half-width (deg) of the basin cores")
    ap.add_argument("--n-inner", type=int, default=4, help="MTS inner steps per outer step")
    ap.add_argument("--pc-h-mass", type=float, default=4.0, help="hydrogen mass (amu) in PC-HMC")
    ap.add_argument("--rungs", type=int, default=4)
    ap.add_argument("--t-high", type=float, default=None, help="top rung in K (default 2 T)")
    ap.add_argument("--md-dt", type=float, default=0.5, help="Langevin MD time step (fs)")
    ap.add_argument("--friction", type=float, default=0.01, help="Langevin friction (1/fs)")
    ap.add_argument("--methods", nargs="+", default=None, help="subset of methods (default all)")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--overhead-repeats", type=int, default=200, help="0 skips the adapter-overhead timing")
    ap.add_argument("--combine", type=Path, nargs="+", help="only merge the --json files of earlier runs")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    all_methods = ["VV-HMC", "FG-HMC", "MTS-HMC", "PC-HMC", "RE-HMC", MD_NAME]
    methods = args.methods or all_methods
    bad = [m for m in methods if m not in all_methods]
    if bad:
        raise SystemExit(f"error: unknown method(s) {bad}; choose from {all_methods}")
    if args.budget < 1000 or args.traj_evals < 1 or args.temperature <= 0:
        raise SystemExit("error: need --budget ≥ 1000, --traj-evals ≥ 1 and --temperature > 0")
    if args.t_high is None:
        args.t_high = 2.0 * args.temperature
    try:
        import tblite.ase  # noqa: F401
    except ImportError:
        raise SystemExit("error: tblite is not installed (pip install 'pesflow[xtb]')") from None
    overhead = None
    if args.combine:
        docs = [json.loads(p.read_text()) for p in args.combine]
        per_seed = [run for d in docs for run in d["per_seed"]]
        overhead = docs[0].get("adapter_overhead")
        for k, v in docs[0]["settings"].items():
            setattr(args, k, v)
        if args.overhead_repeats > 0:  # timings are cheap; re-measure (the runs' own were taken under other load)
            overhead = adapter_overhead(args.overhead_repeats)
    else:
        if args.overhead_repeats > 0:
            overhead = adapter_overhead(args.overhead_repeats)
            print(f"adapter {overhead['adapter_ms']:.3f} ms/call, direct {overhead['direct_ms']:.3f} ms/call",
                  flush=True)
        numbers, start, e0 = relaxed_start()
        inner, fit_calls = (None, 0)
        if "MTS-HMC" in methods:
            inner, fit_calls = fit_harmonic_bonded(xtb_forcefield(numbers), start, numbers,
                                                   masses=atomic_masses[numbers])
        print(f"relaxed trans-butane: E = {e0:.6f} eV, φ = {dihedral(start):.1f}°; MTS fit: {fit_calls} xTB calls",
              flush=True)
        per_seed = [run_seed(s, args, numbers, start, inner, fit_calls, methods)
                    for s in range(args.seed, args.seed + args.seeds)]
    agg = aggregate(per_seed, KEYS)
    md = agg.get(MD_NAME)
    for row in agg.values():
        if row is not None:
            row["ess_cos_phi_ratio_to_md"] = (row["ess_cos_phi_per_kforce"] / md["ess_cos_phi_per_kforce"]
                                              if md else None)
    print_table(agg, args, len(per_seed), overhead)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: getattr(args, k) for k in ("temperature", "budget", "traj_evals", "target_accept", "n_warmup",
                                                   "core", "n_inner", "pc_h_mass", "rungs", "t_high", "md_dt",
                                                   "friction")}
        args.json.write_text(json.dumps({"system": "n-butane GFN2-xTB", "settings": settings, "temperature":
                                         args.temperature, "budget": args.budget, "methods": agg,
                                         "adapter_overhead": overhead, "per_seed": per_seed}, indent=1,
                                        default=float))
    return agg


if __name__ == "__main__":
    main()
