"""Labels saved by uncertainty-based selection: offline active learning on a fixed labelled pool.

Pool: ``DATA/training.json`` (mlearn format, Zuo et al. 2020 DFT energies and forces), test set:
``DATA/test.json``. Model: an MTP of ``--level`` with radial coefficients fixed at their seeded MLIP
initialisation, so each refit is the exact weighted ridge fit of the linear coefficients
(:func:`hmc_core.mtp.fit.design_matrix`, :func:`~hmc_core.mtp.fit.solve_ridge`; the pool's design
matrix is assembled once and each refit uses the rows of the labelled configurations).

Loop, for every strategy and every seed: label ``--n0`` random configurations; then repeat
{refit, record the test force RMSE, choose ``--k`` more} until ``--max-labels``. Strategies:

* ``grade``: MaxVol active set (atom mode) of the labelled configurations; greedy MaxVol choice of k
  unlabelled configurations (:meth:`hmc_core.uncertainty.ActiveSet.select`), padded with the highest
  grades if fewer than k would grow the volume; the active set is then updated by MaxVol swaps;
* ``bayes``: Bayesian linear regression on the same weighted design rows; greedy choice of the largest
  epistemic std of the energy per atom, conditioning on each pick (:class:`BayesianLinearModel`);
* ``random``: uniform without replacement.

The target is ``--target-factor`` × the test force RMSE of the fit on the whole pool; ``labels_to_target``
is the number of labels at which a run first reaches it (median over seeds; null if never within
``--max-labels``). Outputs: ``--json`` (summary), ``--out`` netCDF (all curves), ``--png`` (learning curves).

    python bench/selection_efficiency.py --data ../shared/data/mlearn/Mo --json bench/out/selection_efficiency.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mlearn_data import read_mlearn  # noqa: E402

from hmc_core.configurations import write_netcdf  # noqa: E402
from hmc_core.mtp import MTP  # noqa: E402
from hmc_core.mtp.fit import FitSettings, TrainingData, design_matrix, error_report, solve_ridge  # noqa: E402
from hmc_core.mtp.levels import generate_basis  # noqa: E402
from hmc_core.uncertainty import ActiveSet, BayesianLinearModel, configuration_rows  # noqa: E402
from tasks.fit import smallest_distance  # noqa: E402

STRATEGIES = ("grade", "bayes", "random")


class Problem:
    """Design matrices of pool and test, built once; ``fit(labelled)`` and ``test_rmse(theta)``."""

    def __init__(self, mtp: MTP, pool: xr.Dataset, test: xr.Dataset, settings: FitSettings, mode: str):
        self.mtp, self.settings = mtp, settings
        n_atoms = pool["n_atoms"].values.astype(int)
        self.n_pool = len(n_atoms)
        a, b, kinds = design_matrix(mtp, TrainingData(mtp, pool, np.arange(self.n_pool)), settings)
        counts = 1 + 3 * n_atoms  # one energy row and 3N force rows per configuration, in order
        if counts.sum() != len(a) or kinds[0] != 0:
            raise ValueError("every pool configuration needs a finite energy and forces for this benchmark")
        self.a, self.b = a, b
        self.start = np.concatenate([[0], np.cumsum(counts)])
        self.energy_rows = a[self.start[:-1]]  # √w_E · [counts, Σ_i B(i)] / N: per-atom energy rows
        ta, tb, tk = design_matrix(mtp, TrainingData(mtp, test, np.arange(test.sizes["config"])), settings)
        # undo the per-configuration force weights √(w_F / 3N) so residuals are in eV/Å
        tn = test["n_atoms"].values.astype(int)
        w = np.concatenate([np.r_[np.sqrt(settings.energy_weight),
                                  np.full(3 * n, np.sqrt(settings.force_weight / (3 * n)))] for n in tn])
        f = tk == 1
        self.test_f, self.test_fb = ta[f] / w[f, None], tb[f] / w[f]
        e = tk == 0
        self.test_e, self.test_eb = ta[e] / w[e, None], tb[e] / w[e]
        self.rows, self.row_config, self.row_atom = configuration_rows(mtp, pool, mode)
        self.mode = mode

    def design_rows(self, labelled) -> np.ndarray:
        return np.concatenate([np.arange(self.start[k], self.start[k + 1]) for k in labelled])

    def fit(self, labelled) -> np.ndarray:
        r = self.design_rows(labelled)
        return solve_ridge(self.a[r], self.b[r], self.settings.l2)[0]

    def test_rmse(self, theta) -> tuple[float, float]:
        """Test force RMSE (eV/Å) and energy RMSE (meV/atom)."""
        df = self.test_f @ theta - self.test_fb
        de = self.test_e @ theta - self.test_eb
        return float(np.sqrt(np.mean(df * df))), float(1e3 * np.sqrt(np.mean(de * de)))

    def atom_rows(self, labelled):
        m = np.isin(self.row_config, labelled)
        return self.rows[m], self.row_config[m], self.row_atom[m]


def choose_grade(p: Problem, state: dict, labelled: list, k: int):
    if "active" not in state:
        rows, rc, ra = p.atom_rows(labelled)
        state["active"] = ActiveSet.from_basis(rows, rc, ra if p.mode == "atom" else None, mode=p.mode)
    active: ActiveSet = state["active"]
    unlabelled = np.ones(p.n_pool, bool)
    unlabelled[labelled] = False
    sel = active.select(p.rows, p.row_config, p.n_pool, k, candidates=unlabelled)
    new = [int(c) for c in sel.chosen]
    if len(new) < k:  # nothing left that grows the volume: take the highest grades
        g = active.config_grades(p.rows, p.row_config, p.n_pool)
        g[~unlabelled] = -np.inf
        g[new] = -np.inf
        new += [int(c) for c in np.argsort(-g, kind="stable")[: k - len(new)] if np.isfinite(g[c])]
    rows, rc, ra = p.atom_rows(new)
    active.update(rows, rc, ra if p.mode == "atom" else None)
    return new


def choose_bayes(p: Problem, state: dict, labelled: list, k: int):
    r = p.design_rows(labelled)
    model = BayesianLinearModel.fit(p.a[r], p.b[r])
    unlabelled = np.ones(p.n_pool, bool)
    unlabelled[labelled] = False
    chosen, _ = model.greedy_select(p.energy_rows, k, candidates=unlabelled)
    return [int(c) for c in chosen]


def choose_random(p: Problem, state: dict, labelled: list, k: int):
    rest = np.setdiff1d(np.arange(p.n_pool), labelled)
    return [int(c) for c in state["rng"].choice(rest, min(k, len(rest)), replace=False)]


CHOOSERS = {"grade": choose_grade, "bayes": choose_bayes, "random": choose_random}


def run(p: Problem, strategy: str, seed: int, n0: int, k: int, max_labels: int):
    rng = np.random.default_rng(seed)
    labelled = [int(c) for c in rng.choice(p.n_pool, n0, replace=False)]
    state = {"rng": rng}
    curve = []
    while True:
        force, energy = p.test_rmse(p.fit(labelled))
        curve.append((len(labelled), force, energy))
        if len(labelled) >= min(max_labels, p.n_pool):
            break
        new = CHOOSERS[strategy](p, state, labelled, min(k, max_labels - len(labelled)))
        assert len(set(new)) == len(new) and not set(new) & set(labelled)
        labelled += new
    return np.array(curve), labelled


def labels_to(curve: np.ndarray, target: float):
    """Labels at which a curve (rows: n_labels, force RMSE) first reaches ``target``; None if never."""
    hit = np.nonzero(curve[:, 1] <= target)[0]
    return int(curve[hit[0], 0]) if len(hit) else None


def median_or_none(values: list):
    """Median of per-seed label counts; None (never reached) counts as infinite, so the result is None
    when at least half of the runs never reached the target."""
    v = np.array([np.inf if x is None else x for x in values], float)
    m = float(np.median(v))
    return m if np.isfinite(m) else None


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "mlearn" / "Mo")
    parser.add_argument("--json", type=Path, help="summary JSON")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "selection_efficiency.nc")
    parser.add_argument("--png", type=Path, default=ROOT / "bench" / "out" / "selection_efficiency.png")
    parser.add_argument("--level", type=int, default=20)
    parser.add_argument("--cutoff", type=float, default=5.0, help="max_dist (Å)")
    parser.add_argument("--mode", choices=("atom", "config"), default="atom", help="active-set mode")
    parser.add_argument("--n0", type=int, default=5, help="random configurations labelled at the start")
    parser.add_argument("--k", type=int, default=5, help="configurations chosen per round")
    parser.add_argument("--max-labels", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--target-factor", type=float, default=1.1)
    parser.add_argument("--energy-weight", type=float, default=1.0)
    parser.add_argument("--force-weight", type=float, default=0.01)
    parser.add_argument("--model-seed", type=int, default=0, help="seed of the radial coefficients")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads (1 avoids oversubscription slow-downs on a shared machine)")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.blas_threads):
        return _main(args)


def _main(args) -> dict:

    t0 = time.perf_counter()
    pool = read_mlearn(args.data / "training.json")
    test = read_mlearn(args.data / "test.json")
    species = sorted({int(z) for z in np.unique(pool["species"].values) if z > 0})
    min_dist = round(0.95 * smallest_distance(pool, range(pool.sizes["config"]), args.cutoff), 3)
    mtp = MTP.untrained(generate_basis(args.level), species, min_dist=min_dist, max_dist=args.cutoff,
                        seed=args.model_seed, below_min_dist="allow")
    settings = FitSettings(energy_weight=args.energy_weight, force_weight=args.force_weight)
    p = Problem(mtp, pool, test, settings, args.mode)
    prep_seconds = time.perf_counter() - t0

    theta_all = p.fit(np.arange(p.n_pool))
    full_force, full_energy = p.test_rmse(theta_all)
    check = mtp.copy()
    check.linear_coefficients = theta_all
    ref = error_report(check, test)["all"]["forces_ev_per_A"]["rmse"]
    if abs(ref - full_force) > 1e-6 * max(1.0, ref):
        raise RuntimeError(f"test RMSE from the design matrix ({full_force}) differs from error_report ({ref})")
    target = args.target_factor * full_force

    n_rounds = (min(args.max_labels, p.n_pool) - args.n0 + args.k - 1) // args.k + 1
    rmse = np.full((len(STRATEGIES), args.seeds, n_rounds), np.nan)
    erms = np.full_like(rmse, np.nan)
    nlab = np.zeros((len(STRATEGIES), args.seeds, n_rounds), np.int32)
    reached = np.full((len(STRATEGIES), args.seeds), -1, np.int32)
    seconds = {}
    for s, strategy in enumerate(STRATEGIES):
        t = time.perf_counter()
        for seed in range(args.seeds):
            curve, _ = run(p, strategy, seed, args.n0, args.k, args.max_labels)
            m = len(curve)
            nlab[s, seed, :m], rmse[s, seed, :m], erms[s, seed, :m] = curve[:, 0], curve[:, 1], curve[:, 2]
            hit = labels_to(curve, target)
            reached[s, seed] = -1 if hit is None else hit
        seconds[strategy] = time.perf_counter() - t

    labels_to_target = {st: median_or_none([None if v < 0 else int(v) for v in reached[s]])
                        for s, st in enumerate(STRATEGIES)}
    by_factor = {}  # the same count for other targets, so the choice of the target hides nothing
    for factor in (1.05, 1.1, 1.2, 1.3, 1.5):
        by_factor[f"{factor:g}"] = {
            st: median_or_none([labels_to(np.stack([nlab[s, seed], rmse[s, seed]], axis=1), factor * full_force)
                                for seed in range(args.seeds)]) for s, st in enumerate(STRATEGIES)}
    ratio = {st: (labels_to_target["random"] / labels_to_target[st]
                  if labels_to_target[st] and labels_to_target["random"] else None) for st in ("grade", "bayes")}
    ds = xr.Dataset(
        {
            "n_labels": (("strategy", "seed", "round"), nlab),
            "force_rmse": (("strategy", "seed", "round"), rmse),
            "energy_rmse": (("strategy", "seed", "round"), erms),
            "labels_to_target": (("strategy", "seed"), reached),
        },
        coords={"strategy": list(STRATEGIES), "seed": np.arange(args.seeds)},
        attrs={"target_force_rmse": target, "full_pool_force_rmse": full_force,
               "full_pool_energy_rmse_mev_per_atom": full_energy, "target_factor": args.target_factor,
               "data": str(args.data), "level": args.level, "n_basis": mtp.n_basis, "mode": args.mode,
               "n0": args.n0, "k": args.k, "max_labels": args.max_labels, "n_pool": p.n_pool,
               "n_test": int(test.sizes["config"]), "min_dist": min_dist, "cutoff": args.cutoff},
    )
    ds["force_rmse"].attrs["units"] = "eV/Å"
    ds["energy_rmse"].attrs["units"] = "meV/atom"
    ds["labels_to_target"].attrs["description"] = "labels at which the run first reached the target (-1: never)"
    write_netcdf(ds, args.out)
    plot(ds, args.png)

    result = {
        "data": str(args.data), "level": args.level, "n_basis": mtp.n_basis, "mode": args.mode,
        "n_pool": p.n_pool, "n_test": int(test.sizes["config"]), "n0": args.n0, "k": args.k,
        "seeds": args.seeds, "max_labels": args.max_labels,
        "full_pool_force_rmse_ev_per_A": full_force, "target_factor": args.target_factor,
        "target_force_rmse_ev_per_A": target, "labels_to_target": labels_to_target,
        "labels_to_target_per_seed": {st: [None if v < 0 else int(v) for v in reached[s]]
                                      for s, st in enumerate(STRATEGIES)},
        "random_over_strategy": ratio, "labels_to_target_by_target_factor": by_factor,
        "prepare_seconds": prep_seconds, "strategy_seconds": seconds,
        "netcdf": str(args.out), "png": str(args.png),
    }
    print(f"{args.data.name}: pool {p.n_pool}, test {result['n_test']}, level {args.level} ({mtp.n_basis} basis), "
          f"full-pool test force RMSE {full_force:.4f} eV/Å, target {target:.4f} eV/Å")
    print(f"{'strategy':>8} {'labels to target (median)':>26} {'per seed':>28} {'random / strategy':>18} {'s':>6}")
    for st in STRATEGIES:
        r = ratio.get(st)
        print(f"{st:>8} {str(labels_to_target[st]):>26} {str(result['labels_to_target_per_seed'][st]):>28} "
              f"{'' if r is None else f'{r:.2f}':>18} {seconds[st]:6.1f}")
    print("labels to reach other targets (median over seeds; None = not within --max-labels):")
    for factor, row in by_factor.items():
        print(f"  {factor:>5} × full-pool RMSE: " + ", ".join(f"{st} {v}" for st, v in row.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


def plot(ds: xr.Dataset, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for st, color in zip(STRATEGIES, ("C0", "C1", "C2"), strict=True):
        n = ds["n_labels"].sel(strategy=st).values[0]
        y = ds["force_rmse"].sel(strategy=st).values
        ax.plot(n, np.nanmedian(y, axis=0), color=color, label=st)
        ax.fill_between(n, np.nanmin(y, axis=0), np.nanmax(y, axis=0), color=color, alpha=0.2)
    ax.axhline(ds.attrs["target_force_rmse"], color="k", ls="--", lw=1, label="target")
    ax.set_xlabel("labelled configurations")
    ax.set_ylabel("test force RMSE (eV/Å)")
    ax.set_yscale("log")
    ax.set_title(f"{Path(ds.attrs['data']).name}: MTP level {ds.attrs['level']}, median and range over seeds")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
