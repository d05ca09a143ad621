"""LJ₃₈ heat capacity across the fcc ↔ icosahedral (solid–solid) equilibrium, from funnel-resolved
replica exchange anchored by the harmonic superposition approximation.

Plain parallel tempering of LJ₃₈ does not equilibrate the two funnels within any budget pesflow can
spend (``bench/lj38.py``: from random starts the cold rungs stay icosahedral, from the fcc global
minimum they stay fcc), so its C_V shows only the melting peak. This benchmark follows the route of
Doye, Wales & Miller (1998) and Calvo, Doye & Wales (2001): the partition function of each funnel is
computed separately and the two are then combined.

1. Minima: the fcc global minimum (truncated octahedron, −173.928427 ε) and the lowest icosahedral
   minimum (−173.252378 ε), the latter found by PT basin hopping with HMC moves
   (:mod:`hmc_core.basin_hopping`) from random starts.
2. Anchor at T₀ (default 0.02 ε/k_B, where both are harmonic): for each minimum
   ln Z = −E/T + (3N−6)/2 ln(2πT) − ½ Σ ln λ_i + ½ ln det I − ln h, from the Hessian eigenvalues λ
   (central differences of the forces, six zero modes dropped), the inertia tensor I (m = 1) and the
   point-group order h (counted here: the orthogonal maps, proper and improper, that permute the atoms).
   Constants common to both (2N!, 8π², the wall volume) cancel in ratios.
3. One replica-exchange HMC run per funnel, every rung started in that funnel's minimum, on a ladder
   from T₀ up to ``--t-max-fcc`` (fcc) or ``--t-max`` (icosahedral, through melting). Multiple-histogram
   reweighting (:mod:`hmc_core.reweighting`) gives ln Z_a(T) − ln Z_a(T₀), ⟨U⟩_a and C_a. Every
   ``--quench-every`` sweeps each rung is quenched and its structure classified by the bond-order Q₄
   of the minimum (cubic fcc: large; icosahedral: small), to check that the run stayed in its funnel.
4. Combined: p_fcc = Z_f / (Z_f + Z_i), ⟨U⟩ = Σ_a p_a ⟨U⟩_a and
   C_V / k_B = Σ_a p_a C_a + p_f p_i (⟨U⟩_f − ⟨U⟩_i)² / T² + 3N/2; above the fcc run's top rung p_fcc
   is extrapolated with ln Z_f − ln Z_i linear in 1/T. A third replica-exchange run (``melt``, from
   ``--t-min-melt`` through melting) carries the icosahedral/liquid side: its ⟨U⟩ and Var U are blended
   linearly into the funnel run's between its lowest rung and the funnel runs' top rung, and ln Z is
   continued by d ln Z / dT = ⟨U⟩ / T².
5. Two estimates are printed. "replica_exchange": each funnel's Z from its run alone. Within the
   icosahedral funnel, however, HMC replica exchange below melting does not equilibrate the populations
   of its different minima (the share of quenches in the lowest one stays 0.86–1.0 and drifts; the
   harmonic weights say the other minima dominate at T* ≈ 0.1), so this estimate undercounts that funnel.
   "anharmonic_superposition": ln Z_a = ln Σ_{m ∈ a} Z_m^harm (a database of minima collected by PT basin
   hopping) + the funnel's anharmonic factor measured by its replica-exchange run (ln Z_PT − ln Z_harm of
   its lowest minimum), likewise for ⟨U⟩ and Var U: the harmonic superposition with the anharmonic
   correction taken from sampling (Doye & Wales; Calvo, Doye & Wales 2001).

Compared with the published curve: Neirotti, Calvo, Freeman & Doll (2000) find a region of fcc ↔
icosahedral equilibrium around T* ≈ 0.12 below the melting peak (T* ≈ 0.17), marked by a peak of
dC_V/dT; Doye, Wales & Miller (1998) give the solid–solid transition at T* ≈ 0.12.

    python bench/lj38_funnels.py --json bench/out/lj38_funnels.json      # ~25 min on 2 cores
    python bench/lj38_funnels.py --reanalyse bench/out/lj38_funnels.npz   # the analysis only
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.special import logsumexp, sph_harm_y  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from lj38 import (  # noqa: E402
    E_GLOBAL,
    E_ICOSAHEDRAL,
    N_ATOMS,
    PUBLISHED_PEAKS,
    Quencher,
    make_forcefield,
    random_start,
    truncated_octahedron,
)

from hmc_core.basin_hopping import BasinHoppingConfig, ParallelTemperingBasinHopping  # noqa: E402
from hmc_core.hmc import HMCConfig  # noqa: E402
from hmc_core.potentials.lj_cluster import cluster_energy_forces  # noqa: E402
from hmc_core.replica_exchange import ReplicaExchange, geometric_ladder  # noqa: E402
from hmc_core.reweighting import MultipleHistogram  # noqa: E402

C12 = C6 = 4.0  # ε = σ = 1


def basin_hopping_minima(n_seeds: int = 6, n_moves: int = 1500, below: float = -172.0) -> dict[float, np.ndarray]:
    """Distinct minima below ``below`` (energy rounded to 1e-5 → positions) accepted by PT basin hopping with
    HMC moves from random starts; always contains the lowest icosahedral minimum (more seeds are run if not)."""
    ladder = tuple(geometric_ladder(0.05, 1.0, 12))
    cfg = BasinHoppingConfig(temperatures=ladder, kick_temperature=1.0, dt=0.02, n_steps=40)
    found: dict[float, np.ndarray] = {}
    for seed in range(10 * n_seeds):
        rng = np.random.default_rng(1000 + seed)
        starts = np.array([random_start(rng, Quencher()) for _ in ladder])
        result = ParallelTemperingBasinHopping(make_forcefield, cfg).run(starts, n_moves, seed=seed,
                                                                         keep_minima_below=below)
        for e, x in result.minima:
            found.setdefault(round(e, 5), x)
        if seed + 1 >= n_seeds and round(E_ICOSAHEDRAL, 5) in found:
            return found
    raise RuntimeError(f"the icosahedral minimum was not found in {10 * n_seeds} basin-hopping runs")


def hessian(x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """(3N, 3N) Hessian of the pure LJ energy by central differences of the forces."""
    n = 3 * len(x)
    out = np.zeros((n, n))
    for i in range(n):
        xp, xm = x.copy().ravel(), x.copy().ravel()
        xp[i] += h
        xm[i] -= h
        fp = cluster_energy_forces(xp.reshape(-1, 3), C12, C6, 0.0, 0.0)[1].ravel()
        fm = cluster_energy_forces(xm.reshape(-1, 3), C12, C6, 0.0, 0.0)[1].ravel()
        out[i] = -(fp - fm) / (2 * h)
    return 0.5 * (out + out.T)


def point_group_order(x: np.ndarray, tol: float = 1e-3) -> int:
    """Number of orthogonal maps (rotations and improper rotations) about the centre that permute the atoms."""
    x = x - x.mean(axis=0)
    r = np.linalg.norm(x, axis=1)
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    a = int(np.argmax(r))
    # b, c: outer atoms making the reference triple (x_a, x_b, x_c) as far from coplanar with 0 as possible
    best, b, c = 0.0, -1, -1
    for j in range(len(x)):
        for k in range(j + 1, len(x)):
            vol = abs(np.linalg.det(np.stack([x[a], x[j], x[k]])))
            if vol > best:
                best, b, c = vol, j, k
    ref = np.stack([x[a], x[b], x[c]]).T
    ref_inv = np.linalg.inv(ref)
    count = 0
    for a2 in np.flatnonzero(np.abs(r - r[a]) < tol):
        for b2 in np.flatnonzero((np.abs(r - r[b]) < tol) & (np.abs(d[a2] - d[a, b]) < tol)):
            for c2 in np.flatnonzero((np.abs(r - r[c]) < tol) & (np.abs(d[a2] - d[a, c]) < tol)
                                     & (np.abs(d[b2] - d[b, c]) < tol)):
                q = np.stack([x[a2], x[b2], x[c2]]).T @ ref_inv
                if np.max(np.abs(q.T @ q - np.eye(3))) > 10 * tol:
                    continue
                mapped = x @ q.T
                dist = np.linalg.norm(mapped[:, None] - x[None], axis=-1).min(axis=1)
                count += int(np.all(dist < 10 * tol))
    return count


def harmonic_minimum(x: np.ndarray, energy: float) -> dict:
    """Harmonic data of a minimum: ½ Σ ln λ over the 3N−6 vibrational modes, ½ ln det I, point-group order."""
    lam = np.linalg.eigvalsh(hessian(x))
    if np.max(np.abs(lam[:6])) > 1e-3 or lam[6] < 1e-2:
        raise RuntimeError(f"unexpected Hessian spectrum at E = {energy}: lowest eigenvalues {lam[:8]}")
    xc = x - x.mean(axis=0)
    inertia = np.sum(xc**2) * np.eye(3) - xc.T @ xc
    return {"energy": float(energy), "half_sum_log_lambda": float(0.5 * np.sum(np.log(lam[6:]))),
            "half_log_det_inertia": float(0.5 * np.log(np.linalg.det(inertia))),
            "point_group_order": point_group_order(x), "lowest_frequencies": np.sqrt(lam[6:9]).tolist()}


def harmonic_log_z(m: dict, temperature: float) -> float:
    """ln Z of one minimum's permutation-inversion isomers in the harmonic approximation (common constants dropped)."""
    return (-m["energy"] / temperature + 0.5 * (3 * N_ATOMS - 6) * math.log(2 * math.pi * temperature)
            - m["half_sum_log_lambda"] + m["half_log_det_inertia"] - math.log(m["point_group_order"]))


def anharmonic_anchor(fit: MultipleHistogram, energy: float, t0: float) -> float:
    """ln Z(T₀) − ln Z_harmonic(T₀) = ∫₀^T₀ ΔU / T² dT for the excess ΔU = ⟨U⟩ − E − (3N−6)T/2 = aT² + bT³,
    fitted on the rungs up to 3 T₀ (the leading anharmonic terms): a T₀ + b T₀² / 2."""
    t = fit.temperatures[fit.temperatures <= 3 * t0 + 1e-12]
    excess = fit.moments(t)[0] - energy - 0.5 * (3 * N_ATOMS - 6) * t
    (a, b), *_ = np.linalg.lstsq(np.stack([t**2, t**3], axis=1), excess, rcond=None)
    return float(a * t0 + 0.5 * b * t0**2)


def bond_order_q4(x: np.ndarray, cutoff: float = 1.35) -> float:
    """Global Steinhardt Q₄ over bonds shorter than ``cutoff`` (fcc truncated octahedron ≈ 0.19, icosahedral ≈ 0)."""
    i, j = np.triu_indices(len(x), 1)
    v = x[j] - x[i]
    r = np.linalg.norm(v, axis=1)
    v = v[r < cutoff] / r[r < cutoff, None]
    theta = np.arccos(np.clip(v[:, 2], -1, 1))
    phi = np.arctan2(v[:, 1], v[:, 0])
    q = np.array([np.mean(sph_harm_y(4, m, theta, phi)) for m in range(-4, 5)])
    return float(np.sqrt(4 * np.pi / 9 * np.sum(np.abs(q) ** 2)))


def run_funnel(name: str, start: np.ndarray, ladder: np.ndarray, n_sweeps: int, n_steps: int, quench_every: int,
               seed: int) -> dict:
    """Replica-exchange HMC with every rung started at ``start``; energies per rung and quench classification."""
    cfg = HMCConfig(temperature=float(ladder[0]), dt=0.02, n_steps=n_steps, units="lj", jitter_dt=0.2,
                    n_warmup=300, target_accept=0.7)
    rex = ReplicaExchange(make_forcefield, cfg, ladder)
    quench = Quencher()
    checks = []

    def callback(sweep, state):
        if sweep % quench_every == quench_every - 1:
            for k, s in enumerate(state.states):
                e, xq = quench(s.positions)
                checks.append((k, e, bond_order_q4(xq)))
        return False

    t0 = time.perf_counter()
    result = rex.run(start, n_sweeps, seed=seed, callback=callback, save_every=n_sweeps)
    print(f"{name}: {n_sweeps} sweeps × {len(ladder)} rungs in {time.perf_counter() - t0:.0f} s, "
          f"{result.force_evaluations:.3g} force evaluations; swap rates {np.round(result.swap_rates, 2).tolist()}",
          flush=True)
    return {"name": name, "ladder": ladder, "energies": result.potential_energy, "checks": np.array(checks),
            "swap_rates": result.swap_rates.tolist(), "round_trips": len(result.round_trip_times),
            "force_evaluations": int(result.force_evaluations)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--t0", type=float, default=0.02, help="anchor temperature (harmonic) and lowest rung")
    ap.add_argument("--t-max-solid", type=float, default=0.15, help="top rung of the two funnel runs")
    ap.add_argument("--rungs-solid", type=int, default=24, help="rungs of each funnel run")
    ap.add_argument("--t-min-melt", type=float, default=0.12, help="lowest rung of the melting run")
    ap.add_argument("--t-max", type=float, default=0.25, help="top rung of the melting run")
    ap.add_argument("--rungs-melt", type=int, default=14)
    ap.add_argument("--sweeps", type=int, default=400000, help="sweeps of each funnel run")
    ap.add_argument("--sweeps-melt", type=int, default=200000)
    ap.add_argument("--n-steps", type=int, default=5)
    ap.add_argument("--quench-every", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--reanalyse", type=Path, metavar="NPZ", help="only analyse the samples of a finished run")
    ap.add_argument("--rebuild-database", action="store_true",
                    help="with --reanalyse: build the basin-hopping database anew and store it in NPZ")
    ap.add_argument("--database-seeds", type=int, default=12, help="basin-hopping runs for the minima database")
    ap.add_argument("--database-moves", type=int, default=1500, help="moves per rung of each of those runs")
    ap.add_argument("--database-below", type=float, default=-171.5, help="keep minima below this energy (ε)")
    args = ap.parse_args(argv)
    if not (args.t0 < args.t_min_melt < args.t_max_solid < args.t_max):
        ap.error("need t0 < t-min-melt < t-max-solid < t-max")
    if args.reanalyse:
        return reanalyse(args)

    database = basin_hopping_minima(args.database_seeds, args.database_moves, args.database_below)
    x_fcc = Quencher()(truncated_octahedron())[1]
    x_ico = database[round(E_ICOSAHEDRAL, 5)]
    runs_spec = {"fcc": (x_fcc, geometric_ladder(args.t0, args.t_max_solid, args.rungs_solid), args.sweeps),
                 "ico": (x_ico, geometric_ladder(args.t0, args.t_max_solid, args.rungs_solid), args.sweeps),
                 "melt": (x_ico, geometric_ladder(args.t_min_melt, args.t_max, args.rungs_melt), args.sweeps_melt)}
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = {k: pool.submit(run_funnel, k, x, ladder, sweeps, args.n_steps, args.quench_every, args.seed + i)
                   for i, (k, (x, ladder, sweeps)) in enumerate(runs_spec.items())}
        runs = {k: f.result() for k, f in futures.items()}
    db_energies = np.array(sorted(database))
    db_positions = np.array([database[e] for e in db_energies])
    if args.json:  # the samples first, so that an interrupted analysis loses nothing (see --reanalyse)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.json.with_suffix(".npz"), **{f"{k}_energies": r["energies"] for k, r in runs.items()},
                 **{f"{k}_ladder": r["ladder"] for k, r in runs.items()},
                 **{f"{k}_checks": r["checks"] for k, r in runs.items()}, x_fcc=x_fcc, x_ico=x_ico,
                 database_energies=db_energies, database_positions=db_positions)
    report = analyse(runs, x_fcc, x_ico, db_energies, db_positions, args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return report


def reanalyse(args) -> dict:
    """Analysis of a finished run's samples (its .npz), e.g. after changing the analysis."""
    data = np.load(args.reanalyse)
    runs = {k: {"name": k, "ladder": data[f"{k}_ladder"], "energies": data[f"{k}_energies"],
                "checks": data[f"{k}_checks"]} for k in ("fcc", "ico", "melt")}
    args.t0 = float(runs["fcc"]["ladder"][0])
    db_energies, db_positions = data["database_energies"], data["database_positions"]
    if args.rebuild_database:
        database = basin_hopping_minima(args.database_seeds, args.database_moves, args.database_below)
        db_energies = np.array(sorted(database))
        db_positions = np.array([database[e] for e in db_energies])
        stored = {k: data[k] for k in data.files}
        np.savez(args.reanalyse, **{**stored, "database_energies": db_energies, "database_positions": db_positions})
    report = analyse(runs, data["x_fcc"], data["x_ico"], db_energies, db_positions, args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return report


def superposition(db_energies: np.ndarray, db_positions: np.ndarray, q4_threshold: float, grid: np.ndarray) -> dict:
    """Harmonic superposition over the basin-hopping database, per funnel (fcc-like: Q₄ above the threshold).

    Per funnel a and temperature: ln Z_a = ln Σ_m Z_m, ⟨U⟩_a = Σ w_m E_m + (3N−6)T/2 and
    Var U_a = Σ w_m (E_m − Ē)² + (3N−6)T²/2 with w_m = Z_m / Z_a (harmonic basins)."""
    minima = []
    for e, x in zip(db_energies, db_positions, strict=True):
        try:
            m = harmonic_minimum(x, float(e))
        except RuntimeError:  # a saddle or a flat mode: not a minimum to count
            continue
        m["fcc_like"] = bond_order_q4(x) > q4_threshold
        minima.append(m)
    energies = np.array([m["energy"] for m in minima])
    log_z = np.array([[harmonic_log_z(m, t) for t in grid] for m in minima])
    fcc = np.array([m["fcc_like"] for m in minima])
    dof = 3 * N_ATOMS - 6
    out = {"n_fcc_like": int(fcc.sum()), "n_icosahedral_like": int((~fcc).sum()),
           "minima": [{"energy": m["energy"], "point_group_order": m["point_group_order"],
                       "fcc_like": bool(m["fcc_like"])} for m in minima]}
    for name, mask in (("fcc", fcc), ("ico", ~fcc)):
        lz = logsumexp(log_z[mask], axis=0)
        w = np.exp(log_z[mask] - lz)
        e_mean = w.T @ energies[mask]
        out[name] = {"log_z": lz, "mean": e_mean + 0.5 * dof * grid,
                     "var": (w * (energies[mask][:, None] - e_mean) ** 2).sum(axis=0) + 0.5 * dof * grid**2}
    out["t_solid_solid"] = crossing(grid, out["fcc"]["log_z"] - out["ico"]["log_z"], 0.0)
    return out


def combine(grid: np.ndarray, log_z: dict, mean: dict, var: dict, t_solid: float) -> dict:
    """p_fcc, ⟨U⟩ and C_V/k_B (kinetic 3N/2 included) of the two-funnel mixture; the largest dC_V/dT is
    looked for below ``t_solid`` (the solid–solid region, below the stitch to the melting run)."""
    p = 1 / (1 + np.exp(log_z["ico"] - log_z["fcc"]))
    u = p * mean["fcc"] + (1 - p) * mean["ico"]
    cv = (p * var["fcc"] + (1 - p) * var["ico"] + p * (1 - p) * (mean["fcc"] - mean["ico"]) ** 2) / grid**2 \
        + 1.5 * N_ATOMS
    i_melt = int(np.argmax(cv))
    below = grid < t_solid
    slope = np.gradient(cv, grid)
    return {"p_fcc": p, "mean_energy": u, "cv": cv, "t_solid_solid": crossing(grid, p, 0.5),
            "cv_local_maxima": [float(grid[i]) for i in range(1, len(grid) - 1) if cv[i] > cv[i - 1]
                                and cv[i] >= cv[i + 1]],
            "melting_peak_T": float(grid[i_melt]), "melting_peak_cv": float(cv[i_melt]),
            "max_dcv_dT_solid_T": float(grid[below][np.argmax(slope[below])]) if below.any() else np.nan,
            "dcv_dT_local_maxima_solid": [float(grid[i]) for i in range(1, len(grid) - 1) if below[i]
                                          and slope[i] > slope[i - 1] and slope[i] >= slope[i + 1]]}


def crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """First x where y crosses ``level`` (linear interpolation), NaN if it never does."""
    idx = np.flatnonzero(np.diff(np.sign(y - level)))
    if not len(idx):
        return float("nan")
    i = idx[0]
    return float(x[i] + (level - y[i]) * (x[i + 1] - x[i]) / (y[i + 1] - y[i]))


def analyse(runs: dict, x_fcc, x_ico, db_energies, db_positions, args) -> dict:
    t0 = args.t0
    minima = {"fcc": harmonic_minimum(x_fcc, E_GLOBAL), "ico": harmonic_minimum(x_ico, E_ICOSAHEDRAL)}
    for k, x in (("fcc", x_fcc), ("ico", x_ico)):
        minima[k]["q4"] = bond_order_q4(x)
        m = minima[k]
        print(f"{k}: E = {m['energy']}, point-group order {m['point_group_order']}, Q4 = {m['q4']:.3f}, "
              f"½Σlnλ = {m['half_sum_log_lambda']:.3f}, ½ln det I = {m['half_log_det_inertia']:.3f}")
    q4_threshold = 0.5 * (minima["fcc"]["q4"] + minima["ico"]["q4"])
    fits, in_funnel, lowest_share = {}, {}, {}
    for k, r in runs.items():
        e = r["energies"]
        e = e[len(e) // 5:]  # 20 % discarded as equilibration
        stride = max(1, len(e) // 4000)
        fits[k] = MultipleHistogram([e[::stride, j] for j in range(e.shape[1])], r["ladder"])
        checks = r["checks"]
        fcc_like = checks[:, 2] > q4_threshold
        own = fcc_like if k == "fcc" else ~fcc_like
        in_funnel[k] = [float(own[checks[:, 0] == j].mean()) for j in range(len(r["ladder"]))]
        e_low = E_GLOBAL if k == "fcc" else E_ICOSAHEDRAL
        halves = []
        for j in range(len(r["ladder"])):
            q = checks[checks[:, 0] == j, 1]
            halves.append([float(np.mean(np.abs(h - e_low) < 1e-3)) for h in np.array_split(q, 2)])
        lowest_share[k] = halves  # share of quenches in the funnel's lowest minimum, first / second half
    t_top = runs["fcc"]["ladder"][-1]
    grid = np.round(np.arange(t0, runs["melt"]["ladder"][-1] + 1e-9, 0.0025), 6)
    solid = grid <= t_top + 1e-12
    # icosahedral side: funnel run below the melting run's lowest rung, melting run above the funnel runs'
    # top rung, linear blend of ⟨U⟩ and Var U in between; ln Z follows from d ln Z / dT = ⟨U⟩ / T²
    t_lo = runs["melt"]["ladder"][0]
    blend = np.clip((grid - t_lo) / (t_top - t_lo), 0.0, 1.0)
    i_lo = int(np.searchsorted(grid, t_lo))
    # (1) replica exchange per funnel, each anchored at T0 by its lowest minimum (harmonic + anharmonic term)
    pt_log_z = {k: harmonic_log_z(minima[k], t0) + anharmonic_anchor(fits[k], minima[k]["energy"], t0)
                + fits[k].log_partition(grid) for k in ("fcc", "ico")}
    pt_mean, pt_var = {}, {}
    for k in ("fcc", "ico"):
        pt_mean[k], pt_var[k] = fits[k].moments(grid)
    melt_mean, melt_var = fits["melt"].moments(grid)
    # (2) anharmonic superposition: harmonic sums over the database times each funnel's anharmonic factor
    #     from its replica-exchange run (ln Z_PT − ln Z_harm of the funnel's lowest minimum; the same
    #     factor for every minimum of the funnel), likewise for ⟨U⟩ and Var U.
    hsa = superposition(db_energies, db_positions, q4_threshold, grid)
    dof = 3 * N_ATOMS - 6
    estimates = {}
    for name in ("replica_exchange", "anharmonic_superposition"):
        log_z, mean, var = {}, {}, {}
        for k in ("fcc", "ico"):
            if name == "replica_exchange":
                log_z[k], mean[k], var[k] = pt_log_z[k], pt_mean[k], pt_var[k]
            else:
                harm = np.array([harmonic_log_z(minima[k], t) for t in grid])
                log_z[k] = hsa[k]["log_z"] + (pt_log_z[k] - harm)
                mean[k] = hsa[k]["mean"] + (pt_mean[k] - minima[k]["energy"] - 0.5 * dof * grid)
                var[k] = hsa[k]["var"] + (pt_var[k] - 0.5 * dof * grid**2)
        mean["ico"] = (1 - blend) * mean["ico"] + blend * melt_mean
        var["ico"] = (1 - blend) * var["ico"] + blend * melt_var
        integrand = mean["ico"] / grid**2
        steps = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(grid))])
        log_z["ico"] = np.where(grid < t_lo, log_z["ico"], log_z["ico"][i_lo] + steps - steps[i_lo])
        # above the fcc run's top rung: ln Z_f − ln Z_i extrapolated linearly in 1/T from its last 0.02
        delta = log_z["fcc"] - log_z["ico"]
        pts = solid & (grid >= t_top - 0.02)
        slope, intercept = np.polyfit(1 / grid[pts], delta[pts], 1)
        log_z["fcc"] = np.where(solid, log_z["fcc"], log_z["ico"] + intercept + slope / grid)
        mean["fcc"] = np.where(solid, mean["fcc"], mean["ico"])
        var["fcc"] = np.where(solid, var["fcc"], var["ico"])
        estimates[name] = combine(grid, log_z, mean, var, t_top)
    two_minimum = crossing(grid, np.array([harmonic_log_z(minima["fcc"], t) - harmonic_log_z(minima["ico"], t)
                                           for t in grid]), 0.0)
    anharmonic = {k: {"excess_U_at_t0": float(fits[k].moments([t0])[0][0] - minima[k]["energy"]
                                                - 0.5 * dof * t0),
                      "ln_z_correction": anharmonic_anchor(fits[k], minima[k]["energy"], t0)} for k in ("fcc", "ico")}
    rex, anh = estimates["replica_exchange"], estimates["anharmonic_superposition"]

    print(f"\n{'T*':>7} {'p_fcc RE':>9} {'C_V/k RE':>9} {'p_fcc AS':>9} {'C_V/k AS':>9}   (RE: replica exchange per "
          "funnel; AS: anharmonic superposition)")
    for i in range(0, len(grid), 4):
        print(f"{grid[i]:7.4f} {rex['p_fcc'][i]:9.3f} {rex['cv'][i]:9.1f} {anh['p_fcc'][i]:9.3f} {anh['cv'][i]:9.1f}")
    for k in runs:
        print(f"{k}: in-funnel share of quenches per rung {np.round(in_funnel[k], 2).tolist()}")
    for k in ("fcc", "ico"):
        print(f"{k}: share in the lowest minimum, 1st/2nd half, per rung "
              f"{[tuple(round(v, 2) for v in h) for h in lowest_share[k]]}")
    print(f"anharmonic terms at T0 = {t0}: {anharmonic}")
    print(f"database: {hsa['n_fcc_like']} fcc-like + {hsa['n_icosahedral_like']} icosahedral minima; harmonic "
          f"superposition alone: solid–solid at T* = {hsa['t_solid_solid']:.4f}; two minima alone: {two_minimum:.4f}")
    for name, est in estimates.items():
        print(f"{name}: solid–solid (p_fcc = 1/2) T* = {est['t_solid_solid']:.4f}; C_V maxima at "
              f"{est['cv_local_maxima']}; melting peak T* = {est['melting_peak_T']:.4f} (C_V/k = "
              f"{est['melting_peak_cv']:.0f}); dC_V/dT maxima below {t_top:.3f} at T* = "
              f"{est['dcv_dT_local_maxima_solid']}")
    print(f"published: solid–solid ≈ {PUBLISHED_PEAKS['solid_solid']}, melting ≈ {PUBLISHED_PEAKS['melting']}")

    def plain(d):
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}

    return {"minima": minima, "q4_threshold": q4_threshold, "t_grid": grid.tolist(),
            "estimates": {k: plain(v) for k, v in estimates.items()},
            "superposition": {"n_fcc_like": hsa["n_fcc_like"], "n_icosahedral_like": hsa["n_icosahedral_like"],
                              "t_solid_solid": hsa["t_solid_solid"], "minima": hsa["minima"]},
            "t_solid_solid_two_minima": two_minimum, "in_funnel_fraction": in_funnel,
            "lowest_minimum_share_halves": lowest_share, "anharmonic_at_t0": anharmonic,
            "runs": {k: {key: (v.tolist() if isinstance(v, np.ndarray) else v) for key, v in r.items()
                         if key not in ("energies", "checks")} for k, r in runs.items()},
            "published_peaks": PUBLISHED_PEAKS, "sweeps": args.sweeps, "n_steps": args.n_steps}


if __name__ == "__main__":
    main()
