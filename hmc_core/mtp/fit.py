"""Fitting an MTP to energies, forces and stresses.

Loss (per configuration k with N_k atoms, volume V_k; weights from :class:`FitSettings`):

    L = Σ_k [ w_E (ΔE_k / N_k)²  +  w_F / (3 N_k) Σ_{j,a} ΔF_{k,j,a}²  +  w_S / 6 Σ_v (Δσ_{k,v} V_k / N_k)² ]
        + l2 |y|²,

energies in eV/atom, forces eV/Å, stresses as virial per atom (eV/atom); y are the linear coefficients
(species constants and moment coefficients) scaled by their design-matrix column norms. Missing labels
(NaN) simply drop their terms.

Optional per-label weights in the labels dataset (cluster cuts, :mod:`hmc_core.cluster_cut`):
``force_weight`` (config, atom) ω_kj ≥ 0 replaces the force term by w_F / (3 W_k) Σ_j ω_kj |ΔF_kj|², with
W_k = Σ_j ω_kj (so ω = 1 everywhere is the plain loss; atoms with ω = 0 are ignored, their forces need not even
be finite); ``energy_weight`` (config,) e_k ≥ 0 multiplies w_E (0: the energy of configuration k is not
fitted). NaN weights (e.g. after concatenating with labels that have none) count as 1. The error reports
(:func:`error_report`, :func:`prediction_errors`) then compare only forces with ω > 0 and energies with e > 0.

* :func:`fit_linear`: radial coefficients fixed; the energy is linear in (species_coeffs, moment_coeffs),
  so the weighted least-squares problem is solved exactly (design matrix from the Numba kernel
  :func:`~hmc_core.mtp.evaluate.mtp_basis_derivatives`; ridge solve: Cholesky with refinement, QR or SVD).
* :func:`fit_full`: radial coefficients optimised as well, by variable projection: for given radial
  coefficients the linear coefficients are the exact ridge solution, and L-BFGS-B minimises the
  remaining loss over the radial coefficients with the analytic gradient of
  :func:`~hmc_core.mtp.evaluate.mtp_loss_gradient` (envelope theorem). Starts from the given potential;
  deterministic (no random numbers once the starting point is fixed).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import minimize

from hmc_core.configurations import config_arrays, validate
from hmc_core.mtp.evaluate import mtp_basis_derivatives, mtp_loss_gradient
from hmc_core.mtp.potential import MTP
from hmc_core.neighbors import NeighborList
from hmc_core.potentials.base import PotentialError

EV_PER_A3_TO_GPA = 160.21766208
_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
SOLVERS = ("cholesky", "qr", "lstsq")


@dataclass(frozen=True)
class FitSettings:
    """Weights of the loss (see module docstring), ridge strength and optimiser limits."""

    energy_weight: float = 1.0
    force_weight: float = 0.01
    stress_weight: float = 0.0
    l2: float = 1e-12
    max_iter: int = 200
    tol: float = 1e-10
    n_threads: int = 1  # configurations evaluated concurrently (Numba kernels release the GIL); same result
    solver: str = "cholesky"  # linear solve, see solve_ridge

    def __post_init__(self):
        for name in ("energy_weight", "force_weight", "stress_weight", "l2"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"FitSettings.{name} must be a finite number ≥ 0, got {v}")
        if self.energy_weight + self.force_weight + self.stress_weight <= 0:
            raise ValueError("at least one of energy_weight, force_weight, stress_weight must be positive")
        if self.max_iter < 0:
            raise ValueError(f"FitSettings.max_iter must be ≥ 0, got {self.max_iter}")
        if self.solver not in SOLVERS:
            raise ValueError(f"FitSettings.solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.n_threads < 1:
            raise ValueError(f"FitSettings.n_threads must be ≥ 1, got {self.n_threads}")


def usable_configurations(ds: xr.Dataset) -> np.ndarray:
    """Indices of configurations that may enter a fit: finite energy, and ``status == "ok"`` when a
    ``status`` variable exists (failed labels never enter fits)."""
    validate(ds)
    ok = np.ones(ds.sizes["config"], dtype=bool)
    if "energy" not in ds:
        raise ValueError("the configurations have no 'energy' variable; label them before fitting")
    ok &= np.isfinite(ds["energy"].values)
    if "status" in ds:
        ok &= np.asarray(ds["status"].values).astype(str) == "ok"
    return np.nonzero(ok)[0]


def usable_labels(ds: xr.Dataset) -> xr.Dataset:
    """The configurations of ``ds`` that may enter a fit (:func:`usable_configurations`): the one home of the
    rule "labels usable for fitting"."""
    return ds.isel(config=usable_configurations(ds))


def label_weights(ds: xr.Dataset, k: int) -> tuple[np.ndarray | None, float]:
    """Per-atom force weights (n,) of configuration ``k`` (None when the dataset has none or all are 1) and its
    energy weight (1.0 when absent); NaN counts as 1. ValueError for negative or infinite weights."""
    n = int(ds["n_atoms"].values[k])
    force_w = None
    if "force_weight" in ds:
        w = np.asarray(ds["force_weight"].values[k, :n], dtype=np.float64)
        w = np.where(np.isnan(w), 1.0, w)
        if not np.all(np.isfinite(w) & (w >= 0)):
            raise ValueError(f"configuration {k}: force_weight must be finite and ≥ 0 on every atom (1 = fit, "
                             f"0 = ignore), got {w[~(np.isfinite(w) & (w >= 0))][:3].tolist()}")
        force_w = None if np.all(w == 1.0) else w
    energy_w = 1.0
    if "energy_weight" in ds:
        e = float(ds["energy_weight"].values[k])
        energy_w = 1.0 if np.isnan(e) else e
        if not (np.isfinite(energy_w) and energy_w >= 0):
            raise ValueError(f"configuration {k}: energy_weight must be finite and ≥ 0 (1 = fit, 0 = ignore), got {e}")
    return force_w, energy_w


class TrainingData:
    """Configurations prepared once for repeated fits: wrapped positions, types, neighbour lists, labels."""

    def __init__(self, mtp: MTP, ds: xr.Dataset, indices=None):
        validate(ds)
        idx = usable_configurations(ds) if indices is None else np.asarray(indices, dtype=int)
        if len(idx) == 0:
            raise ValueError("no configuration with finite labels (and status 'ok') to fit")
        self.indices = idx
        self.items = []
        for k in idx:
            x, z, cell, pbc = config_arrays(ds, int(k))
            types = mtp.prepare(z)
            nl = NeighborList(mtp.cutoff, 0.0, full=True)
            x = nl.build(x, cell, pbc)
            n = len(z)
            forces = ds["forces"].values[k, :n] if "forces" in ds else np.full((n, 3), np.nan)
            stress = ds["stress"].values[k] if "stress" in ds else np.full(6, np.nan)
            volume = abs(np.linalg.det(cell)) if pbc.all() else np.nan
            force_w, energy_w = label_weights(ds, int(k))
            self.items.append({"x": x, "types": types, "nlist": (nl.offsets, nl.neighbors, nl.codes, nl.shifts),
                               "n": n, "volume": volume, "energy": float(ds["energy"].values[k]),
                               "forces": np.asarray(forces, dtype=np.float64), "stress": np.asarray(stress),
                               "force_weight": force_w, "energy_weight": energy_w})
        self.groups = np.asarray(ds["group"].values)[idx].astype(str) if "group" in ds else None
        self.species = mtp.species

    def __len__(self) -> int:
        return len(self.items)

    @property
    def n_atoms(self) -> int:
        return sum(it["n"] for it in self.items)


def _kernel_args(mtp: MTP):
    return (mtp.min_dist, mtp.max_dist, mtp.scaling, mtp.radial_coeffs)


def _check_close(mtp: MTP, close, k):
    if np.isfinite(close[0]) and mtp.below_min_dist != "allow":
        raise PotentialError(f"training configuration {k}: atoms {int(close[1])} and {int(close[2])} are "
                             f"{close[0]:.3f} Å apart, below min_dist = {mtp.min_dist} Å; lower min_dist or drop it")


def design_matrix(mtp: MTP, data: TrainingData, settings: FitSettings):
    """Weighted design matrix A (rows, n_species + n_basis), targets b (rows,) and the row kinds
    (0 energy, 1 force, 2 stress) for the linear coefficients; rows of missing labels are left out."""
    b_ = mtp.basis
    s = mtp.n_species
    blocks, targets, kinds = [], [], []
    we, wf, ws = settings.energy_weight, settings.force_weight, settings.stress_weight

    def derivatives(it):
        return mtp_basis_derivatives(it["x"], it["types"], *it["nlist"], *_kernel_args(mtp), b_.alpha_index_basic,
                                     b_.alpha_index_times, b_.alpha_moment_mapping, b_.alpha_moments_count)

    for c, (it, out) in enumerate(zip(data.items, _map(derivatives, data.items, settings.n_threads), strict=True)):
        bsum, dbdx, dbde, close = out
        _check_close(mtp, close, int(data.indices[c]))
        n = it["n"]
        counts = np.bincount(it["types"], minlength=s).astype(np.float64)
        if we * it["energy_weight"] > 0 and np.isfinite(it["energy"]):
            w = np.sqrt(we * it["energy_weight"])
            blocks.append(w * np.concatenate([counts, bsum])[None, :] / n)
            targets.append([w * it["energy"] / n])
            kinds.append([0])
        f = it["forces"]
        omega = it["force_weight"]
        if omega is not None:  # per-atom weights: only atoms with ω > 0 give rows
            fit = np.flatnonzero(omega > 0)
            if wf > 0 and len(fit) and np.all(np.isfinite(f[fit])):
                w = np.repeat(np.sqrt(wf * omega[fit] / (3 * omega.sum())), 3)
                rows = np.zeros((3 * len(fit), s + b_.n_basis))
                rows[:, s:] = -w[:, None] * dbdx[fit].reshape(3 * len(fit), -1)
                blocks.append(rows)
                targets.append(w * f[fit].reshape(-1))
                kinds.append(np.ones(3 * len(fit), int))
        elif wf > 0 and np.all(np.isfinite(f)):
            w = np.sqrt(wf / (3 * n))
            rows = np.zeros((3 * n, s + b_.n_basis))
            rows[:, s:] = -w * dbdx.reshape(3 * n, -1)
            blocks.append(rows)
            targets.append(w * f.reshape(-1))
            kinds.append(np.ones(3 * n, int))
        st = it["stress"]
        if ws > 0 and np.isfinite(it["volume"]) and np.all(np.isfinite(st)):
            w = np.sqrt(ws / 6)
            sym = 0.5 * (dbde + dbde.transpose(1, 0, 2))
            rows = np.zeros((6, s + b_.n_basis))
            for v, (a, bb) in enumerate(_VOIGT):
                rows[v, s:] = w * sym[a, bb] / n
            blocks.append(rows)
            targets.append(w * st * it["volume"] / n)
            kinds.append(np.full(6, 2))
    if not blocks:
        raise ValueError("no labels with positive weight: check the weights and that energies/forces are finite")
    return np.concatenate(blocks), np.concatenate(targets), np.concatenate(kinds)


def solve_ridge(a: np.ndarray, b: np.ndarray, l2: float, scale: np.ndarray | None = None,
                solver: str = "cholesky"):
    """Minimise |A θ − b|² + l2 |θ · scale|² (scale = column norms unless given); returns (θ, scale).

    ``solver``: ``"cholesky"`` (scaled, regularised normal equations, as scikit-learn's Ridge, plus two
    steps of iterative refinement on the true residual; falls back to QR if not positive definite),
    ``"qr"`` (Householder QR of the system augmented with √l2·I: the condition number of A, not AᵀA),
    or ``"lstsq"`` (SVD, minimum norm; the only choice that tolerates l2 = 0 with a rank-deficient A).
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if scale is None:
        scale = np.linalg.norm(a, axis=0)
        scale[scale == 0] = 1.0
    a_s = a / scale
    n = a.shape[1]
    if l2 > 0 and solver == "cholesky":
        try:
            factor = cho_factor(a_s.T @ a_s + l2 * np.eye(n))
        except np.linalg.LinAlgError:
            solver = "qr"
        else:
            y = cho_solve(factor, a_s.T @ b)
            for _ in range(2):
                y += cho_solve(factor, a_s.T @ (b - a_s @ y) - l2 * y)
            return y / scale, scale
    if l2 > 0 and solver == "qr":
        q, r = np.linalg.qr(np.vstack([a_s, np.sqrt(l2) * np.eye(n)]), mode="reduced")
        y = solve_triangular(r, q.T @ np.concatenate([b, np.zeros(n)]))
    elif l2 > 0:
        y = np.linalg.lstsq(np.vstack([a_s, np.sqrt(l2) * np.eye(n)]), np.concatenate([b, np.zeros(n)]),
                            rcond=None)[0]
    else:
        y = np.linalg.lstsq(a_s, b, rcond=None)[0]
    return y / scale, scale


def fit_linear(mtp: MTP, data: TrainingData | xr.Dataset, settings: FitSettings = FitSettings()) -> MTP:
    """A copy of ``mtp`` with species and moment coefficients fitted (radial coefficients unchanged)."""
    if not isinstance(data, TrainingData):
        data = TrainingData(mtp, data)
    a, b, _ = design_matrix(mtp, data, settings)
    theta, _ = solve_ridge(a, b, settings.l2, solver=settings.solver)
    out = mtp.copy()
    out.linear_coefficients = theta
    return out


def _residual_weights(mtp: MTP, data: TrainingData, settings: FitSettings, c: int, e_pred, f_pred, x_pred):
    """Loss of configuration c and the (α, λ, R) of :func:`mtp_loss_gradient` for its gradient."""
    it = data.items[c]
    n = it["n"]
    loss = 0.0
    alpha = 0.0
    lam = np.zeros((n, 3))
    rmat = np.zeros((3, 3))
    we = settings.energy_weight * it["energy_weight"]
    if we > 0 and np.isfinite(it["energy"]):
        r = (e_pred - it["energy"]) / n
        loss += we * r * r
        alpha = 2 * we * r / n
    f = it["forces"]
    omega = it["force_weight"]
    if omega is not None:
        fit = omega > 0
        if settings.force_weight > 0 and fit.any() and np.all(np.isfinite(f[fit])):
            diff = np.where(fit[:, None], f_pred - np.where(fit[:, None], f, 0.0), 0.0)  # ω = 0: garbage ignored
            scale = settings.force_weight / (3 * omega.sum())
            loss += scale * float((omega[:, None] * diff * diff).sum())
            lam = -2 * scale * omega[:, None] * diff
    elif settings.force_weight > 0 and np.all(np.isfinite(f)):
        r = f_pred - f
        loss += settings.force_weight / (3 * n) * float((r * r).sum())
        lam = -(2 * settings.force_weight / (3 * n)) * r
    st = it["stress"]
    if settings.stress_weight > 0 and np.isfinite(it["volume"]) and np.all(np.isfinite(st)):
        sym = 0.5 * (x_pred + x_pred.T)
        for v, (a, b) in enumerate(_VOIGT):
            r = sym[a, b] / n - st[v] * it["volume"] / n
            loss += settings.stress_weight / 6 * r * r
            g = 2 * settings.stress_weight / 6 * r / n
            if a == b:
                rmat[a, a] += g
            else:
                rmat[a, b] += 0.5 * g
                rmat[b, a] += 0.5 * g
    return loss, alpha, lam, rmat


def loss_and_radial_gradient(mtp: MTP, data: TrainingData, settings: FitSettings, scale=None):
    """Variable-projection loss at ``mtp``'s radial coefficients (linear coefficients re-solved exactly,
    set on ``mtp``) and its gradient with respect to the radial coefficients (same shape)."""
    a, b, _ = design_matrix(mtp, data, settings)
    theta, scale = solve_ridge(a, b, settings.l2, scale, settings.solver)
    mtp.linear_coefficients = theta
    resid = a @ theta - b
    loss = float(resid @ resid) + settings.l2 * float(((theta * scale) ** 2).sum())
    bs = mtp.basis

    def config_gradient(c):
        it = data.items[c]
        e, f, w = mtp.compute_site_energies(it["x"], None, it["types"], _ListView(*it["nlist"]))
        _, alpha, lam, rmat = _residual_weights(mtp, data, settings, c, float(e.sum()), f, -w)
        return mtp_loss_gradient(it["x"], it["types"], *it["nlist"], *_kernel_args(mtp), mtp.moment_coeffs,
                                 bs.alpha_index_basic, bs.alpha_index_times, bs.alpha_moment_mapping,
                                 bs.alpha_moments_count, alpha, lam, rmat)

    grad = np.zeros_like(mtp.radial_coeffs)
    for g in _map(config_gradient, range(len(data)), settings.n_threads):
        grad += g  # summed in configuration order: the same result for any number of threads
    return loss, grad, scale


def _map(func, items, n_threads: int):
    """``map`` over items, on a thread pool when n_threads > 1 (results in input order)."""
    if n_threads <= 1:
        return [func(x) for x in items]
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        return list(pool.map(func, items))


class _ListView:
    """The fields of a full neighbour list, for evaluating stored training configurations."""

    full = True

    def __init__(self, offsets, neighbors, codes, shifts):
        self.offsets, self.neighbors, self.codes, self.shifts = offsets, neighbors, codes, shifts


def fit_full(mtp: MTP, data: TrainingData | xr.Dataset, settings: FitSettings = FitSettings(),
             callback=None, verbose: bool = False) -> tuple[MTP, dict]:
    """Optimise radial and linear coefficients (variable projection + L-BFGS-B, analytic gradients).

    ``callback(n_evaluations, loss)`` is called after each loss evaluation; ``verbose`` prints progress.

    Returns the fitted copy and an info dict (loss history, iterations, message, seconds).
    """
    if not isinstance(data, TrainingData):
        data = TrainingData(mtp, data)
    work = mtp.copy()
    t0 = time.perf_counter()
    a, _, _ = design_matrix(work, data, settings)
    scale = np.linalg.norm(a, axis=0)
    scale[scale == 0] = 1.0
    history = []
    shape = work.radial_coeffs.shape
    if callback is None and verbose:
        def callback(n, loss):
            if n % 10 == 1:
                print(f"  full fit: evaluation {n}, loss {loss:.6e}, {time.perf_counter() - t0:.0f} s", flush=True)

    def objective(c_flat):
        work.radial_coeffs = np.ascontiguousarray(c_flat.reshape(shape))
        loss, grad, _ = loss_and_radial_gradient(work, data, settings, scale)
        history.append(loss)
        if callback is not None:
            callback(len(history), loss)
        return loss, grad.reshape(-1)

    res = minimize(objective, work.radial_coeffs.reshape(-1).copy(), jac=True, method="L-BFGS-B",
                   options={"maxiter": settings.max_iter, "ftol": settings.tol, "gtol": 1e-12, "maxcor": 20})
    work.radial_coeffs = np.ascontiguousarray(res.x.reshape(shape))
    loss, _, _ = loss_and_radial_gradient(work, data, settings, scale)
    info = {"loss_initial": history[0], "loss_final": loss, "iterations": int(res.nit),
            "evaluations": len(history), "message": str(res.message), "seconds": time.perf_counter() - t0}
    return work, info


def predict(mtp: MTP, ds: xr.Dataset, indices=None) -> dict:
    """Energies (n,) eV, forces (n, atom, 3) eV/Å and stresses (n, 6) eV/Å³ of the configurations."""
    validate(ds)
    idx = np.arange(ds.sizes["config"]) if indices is None else np.asarray(indices, dtype=int)
    n_max = ds.sizes["atom"]
    energy = np.full(len(idx), np.nan)
    forces = np.full((len(idx), n_max, 3), np.nan)
    stress = np.full((len(idx), 6), np.nan)
    for c, k in enumerate(idx):
        x, z, cell, pbc = config_arrays(ds, int(k))
        res = mtp.evaluate(x, z, cell, pbc)
        energy[c] = res["energy"]
        forces[c, : len(z)] = res["forces"]
        stress[c] = res["stress"]
    return {"energy": energy, "forces": forces, "stress": stress}


def _errors(pred, ref) -> dict:
    d = (np.asarray(pred) - np.asarray(ref)).reshape(-1)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"mae": None, "rmse": None, "count": 0}
    return {"mae": float(np.abs(d).mean()), "rmse": float(np.sqrt((d * d).mean())), "count": int(d.size)}


ERROR_KEYS = ("energy_mae_meV_per_atom", "energy_rmse_meV_per_atom", "force_mae_eV_per_A", "force_rmse_eV_per_A")


def prediction_errors(mtp: MTP, ds: xr.Dataset) -> dict[str, float]:
    """Flat error summary of ``mtp`` on the usable labels of ``ds``: :data:`ERROR_KEYS` (energy MAE/RMSE per atom,
    meV/atom; force component MAE/RMSE, eV/Å; NaN when there is nothing to compare). Atoms closer than the
    MTP's ``min_dist`` are extrapolated (as MLIP does), not refused."""
    if getattr(mtp, "below_min_dist", "allow") != "allow":
        mtp = mtp.copy()
        mtp.below_min_dist = "allow"
    if len(usable_configurations(ds)) == 0:
        return dict.fromkeys(ERROR_KEYS, float("nan"))
    rep = error_report(mtp, ds)["all"]
    values = (rep["energy_mev_per_atom"]["mae"], rep["energy_mev_per_atom"]["rmse"],
              rep.get("forces_ev_per_A", {}).get("mae"), rep.get("forces_ev_per_A", {}).get("rmse"))
    return {k: float("nan") if v is None else float(v) for k, v in zip(ERROR_KEYS, values, strict=True)}


def error_report(mtp: MTP, ds: xr.Dataset, indices=None, groups=None) -> dict:
    """MAE/RMSE of energy (meV/atom), forces (eV/Å) and stress (GPa), overall and per group.

    ``groups``: one label per configuration (default: the dataset's ``group`` variable when present).
    """
    idx = usable_configurations(ds) if indices is None else np.asarray(indices, dtype=int)
    pred = predict(mtp, ds, idx)
    n = ds["n_atoms"].values[idx]
    if groups is None and "group" in ds:
        groups = np.asarray(ds["group"].values)[idx].astype(str)

    ref_energy = np.array(ds["energy"].values[idx], dtype=np.float64)
    if "energy_weight" in ds:  # energies that are not fitted (cluster cuts) are not compared either
        ref_energy[np.asarray(ds["energy_weight"].values[idx], dtype=np.float64) == 0] = np.nan
    if "forces" in ds:
        ref_forces = np.array(ds["forces"].values[idx], dtype=np.float64)
        if "force_weight" in ds:  # only forces the fit uses (ω > 0; NaN counts as 1)
            ref_forces[np.asarray(ds["force_weight"].values[idx], dtype=np.float64) == 0] = np.nan

    def block(sel):
        out = {"n_configs": int(sel.sum()),
               "energy_mev_per_atom": _errors(1e3 * pred["energy"][sel] / n[sel], 1e3 * ref_energy[sel] / n[sel])}
        if "forces" in ds:
            out["forces_ev_per_A"] = _errors(pred["forces"][sel], ref_forces[sel])
        if "stress" in ds:
            out["stress_gpa"] = _errors(EV_PER_A3_TO_GPA * pred["stress"][sel],
                                        EV_PER_A3_TO_GPA * ds["stress"].values[idx][sel])
        return out

    report = {"all": block(np.ones(len(idx), bool))}
    if groups is not None:
        groups = np.asarray(groups).astype(str)
        report["groups"] = {g: block(groups == g) for g in sorted(set(groups.tolist()))}
    return report
