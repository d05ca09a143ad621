"""MaxVol active set and extrapolation grade (D-optimality) for potentials linear in their coefficients.

Facts used (Goreinov & Tyrtyshnikov 2001; Podryabinkin & Shapeev, Comput. Mater. Sci. 140, 171 (2017)):

* The active set is an m × m matrix ``A`` whose rows are basis vectors b(x) ∈ ℝ^m (per atomic
  environment or per configuration) chosen so that |det A| is (locally) maximal.
* For a row b, the coefficients c = b A⁻¹ express b in the rows of A; replacing active row j by b
  multiplies |det A| by |c_j|. The extrapolation grade is γ(b) = max_j |c_j|: γ ≤ 1 means
  interpolation (b lies in the parallelotope spanned by the active rows), γ > 1 extrapolation.
* MaxVol: while some candidate row has |c_ij| > 1 + tol, swap it in. A swap is a rank-1 change of
  one row, so A⁻¹ (Sherman–Morrison) and the coefficient matrix C = B A⁻¹ of all candidate rows are
  updated in O(m²) and O(n m):  A'⁻¹ = A⁻¹ − A⁻¹[:, j] (c − e_j)ᵀ / c_j,  C' = C − C[:, j] (c − e_j)ᵀ / c_j.

An active set that has not yet seen m independent rows keeps *placeholder* rows ε·s_j·e_j (s_j a
column scale); directions the data never spanned then give very large grades, and the first real
rows with a component along them replace the placeholders. Grades are invariant to a change of
basis b → b M (any invertible M) once no placeholder is left.

Everything here works on plain arrays (no MTP knowledge); :mod:`hmc_core.uncertainty.grade` builds
the rows from a potential.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from numba import njit

MODES = ("atom", "config")
PLACEHOLDER = -1
_BLOCK = 512


# ----------------------------------------------------------------------------------------------- kernels


@njit(cache=True, nogil=True)
def row_grades(rows, inverse, grades):
    """γ_i = max_j |(rows A⁻¹)_ij| for every row; ``rows`` (n, m), ``inverse`` (m, m), ``grades`` (n,) out.

    Works in blocks of rows so memory stays O(block · m); the products use BLAS.
    """
    n = rows.shape[0]
    m = inverse.shape[0]
    for start in range(0, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        coef = np.dot(rows[start:stop], inverse)
        for i in range(stop - start):
            g = 0.0
            for j in range(m):
                a = abs(coef[i, j])
                if a > g:
                    g = a
            grades[start + i] = g


@njit(cache=True, nogil=True)
def _max_abs(coef, usable):
    """Row index, column index and value of the largest |coef| over rows with ``usable`` True."""
    best, bi, bj = -1.0, -1, -1
    for i in range(coef.shape[0]):
        if not usable[i]:
            continue
        for j in range(coef.shape[1]):
            a = abs(coef[i, j])
            if a > best:
                best, bi, bj = a, i, j
    return bi, bj, best


@njit(cache=True, nogil=True)
def _swap_in(basis, inverse, coef, rows, i, j):
    """Replace active row j by candidate row i; rank-1 update of ``inverse`` and ``coef`` in place."""
    m = basis.shape[0]
    c = coef[i].copy()
    cj = c[j]
    c[j] -= 1.0  # c − e_j
    col = inverse[:, j].copy()
    for a in range(m):
        f = col[a] / cj
        for b in range(m):
            inverse[a, b] -= f * c[b]
    ccol = coef[:, j].copy()
    for r in range(coef.shape[0]):
        f = ccol[r] / cj
        if f != 0.0:
            for b in range(m):
                coef[r, b] -= f * c[b]
    for b in range(m):
        basis[j, b] = rows[i, b]


@njit(cache=True, nogil=True)
def maxvol_swaps(basis, inverse, rows, swap_limit, max_swaps, swap_row, swap_slot):
    """MaxVol: swap rows of ``rows`` (n, m) into ``basis`` (m, m) while max |c| > ``swap_limit``
    (= 1 + tol: a swap must grow |det| by more than the factor 1 + tol; not a selection threshold on γ).

    Updates ``basis`` and ``inverse`` in place; the k-th swap moved row ``swap_row[k]`` into slot
    ``swap_slot[k]``. Returns the number of swaps (≤ ``max_swaps``) and the final largest |c|.
    """
    coef = np.dot(rows, inverse)
    usable = np.ones(rows.shape[0], dtype=np.bool_)
    n_swaps = 0
    best = 0.0
    while True:
        i, j, best = _max_abs(coef, usable)
        if i < 0 or best <= swap_limit or n_swaps >= max_swaps:
            break
        _swap_in(basis, inverse, coef, rows, i, j)
        swap_row[n_swaps] = i
        swap_slot[n_swaps] = j
        n_swaps += 1
    return n_swaps, best


@njit(cache=True, nogil=True)
def greedy_group_maxvol(basis, inverse, rows, row_group, n_groups, budget, swap_limit, max_swaps,
                        chosen, chosen_gain, swap_row, swap_slot):
    """Greedy MaxVol selection of whole groups (configurations) of rows under a budget.

    Each round: if a row of an already chosen group has |c| > ``swap_limit`` it is swapped in for
    free (its label is already paid for); otherwise the row with the largest |c| among unchosen
    groups is swapped in and its group is chosen (``chosen[k]`` group, ``chosen_gain[k]`` its |c|,
    the factor by which it grows |det A|). Stops at ``budget`` groups or when no row has
    |c| > ``swap_limit``. ``basis``/``inverse`` are updated in place (pass copies to keep yours).
    Returns (number of groups chosen, number of swaps).
    """
    coef = np.dot(rows, inverse)
    n = rows.shape[0]
    is_chosen = np.zeros(n_groups, dtype=np.bool_)
    free = np.zeros(n, dtype=np.bool_)
    new = np.ones(n, dtype=np.bool_)
    n_chosen = 0
    n_swaps = 0
    while n_swaps < max_swaps:
        i, j, best = _max_abs(coef, free)
        if i < 0 or best <= swap_limit:
            if n_chosen >= budget:
                break
            i, j, best = _max_abs(coef, new)
            if i < 0 or best <= swap_limit:
                break
            g = row_group[i]
            is_chosen[g] = True
            chosen[n_chosen] = g
            chosen_gain[n_chosen] = best
            n_chosen += 1
            for r in range(n):
                if row_group[r] == g:
                    free[r] = True
                    new[r] = False
        _swap_in(basis, inverse, coef, rows, i, j)
        swap_row[n_swaps] = i
        swap_slot[n_swaps] = j
        n_swaps += 1
    return n_chosen, n_swaps


@njit(cache=True, nogil=True)
def group_max(values, group, n_groups, out):
    """out[g] = max of ``values`` over entries with ``group`` == g (−inf for an empty group)."""
    for g in range(n_groups):
        out[g] = -np.inf
    for k in range(values.shape[0]):
        if values[k] > out[group[k]]:
            out[group[k]] = values[k]


# ----------------------------------------------------------------------------------------------- active set


def _as_rows(rows, n_basis: int | None = None, what: str = "rows") -> np.ndarray:
    r = np.ascontiguousarray(rows, dtype=np.float64)
    if r.ndim == 1:
        r = r[None, :]
    if r.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (n_rows, n_basis), got shape {np.shape(rows)}")
    if n_basis is not None and r.shape[1] != n_basis:
        raise ValueError(f"{what} have {r.shape[1]} basis functions but the active set has {n_basis}; "
                         "use the same potential (level, species) that built the active set")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"{what} contain NaN or inf (a configuration outside the potential's domain?)")
    return r


@dataclass
class Selection:
    """Result of :meth:`ActiveSet.select`: chosen group indices in the order chosen, and their gains."""

    chosen: np.ndarray  # (k,) int64 group (configuration) indices
    gain: np.ndarray  # (k,) float64: |c| of the row that brought the group in (volume growth factor)
    n_swaps: int
    active_set: ActiveSet  # after the swaps (a copy); its new rows' config_id are indices into the pool


@dataclass
class ActiveSet:
    """MaxVol active set of a linear model: ``basis`` (m, m) rows, its ``inverse``, and row provenance.

    mode: ``"atom"`` (rows are atomic-environment basis vectors; a configuration's grade is the max
    over its atoms) or ``"config"`` (one row per configuration: the sum of its atoms' vectors, i.e.
    the derivative of the energy with respect to the linear coefficients).
    config_id (m,) int64: caller's identifier of the configuration each row came from (e.g. its
    index in the campaign's label store), −1 for a placeholder row; atom_index (m,) int64: the atom
    within that configuration (−1 in config mode and for placeholders).
    """

    mode: str
    basis: np.ndarray
    inverse: np.ndarray
    config_id: np.ndarray
    atom_index: np.ndarray
    n_swaps: int = 0
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"active-set mode must be one of {MODES}, got {self.mode!r}")
        m = self.basis.shape[0]
        if self.basis.shape != (m, m) or self.inverse.shape != (m, m):
            raise ValueError(f"active-set basis and inverse must be square (m, m), got {self.basis.shape} "
                             f"and {self.inverse.shape}")
        if self.config_id.shape != (m,) or self.atom_index.shape != (m,):
            raise ValueError("config_id and atom_index must have one entry per active row")

    # -- construction ------------------------------------------------------------------------------------

    @classmethod
    def empty(cls, n_basis: int, mode: str = "atom", scale=None, eps: float = 1e-5) -> ActiveSet:
        """Active set of placeholder rows ``eps · scale_j · e_j`` (``scale`` (m,), default 1)."""
        if n_basis < 1:
            raise ValueError(f"n_basis must be ≥ 1, got {n_basis}")
        s = np.ones(n_basis) if scale is None else np.asarray(scale, dtype=np.float64).reshape(n_basis)
        s = np.where(np.isfinite(s) & (s > 0), s, 1.0) * eps
        return cls(mode, np.diag(s), np.diag(1.0 / s), np.full(n_basis, PLACEHOLDER, np.int64),
                   np.full(n_basis, PLACEHOLDER, np.int64), attrs={"placeholder_eps": eps})

    @classmethod
    def from_basis(cls, rows, config_id, atom_index=None, mode: str = "atom", tol: float = 1e-3,
                   eps: float = 1e-5, max_swaps: int | None = None) -> ActiveSet:
        """Build an active set from training rows (n, m) by MaxVol starting from placeholders.

        ``config_id`` (n,) identifies each row's configuration, ``atom_index`` (n,) its atom (atom mode).
        Placeholders are scaled by the largest |entry| of each column so the start is well scaled.
        """
        r = _as_rows(rows)
        scale = np.abs(r).max(axis=0) if len(r) else None
        active = cls.empty(r.shape[1], mode, scale, eps)
        active.update(r, config_id, atom_index, tol=tol, max_swaps=max_swaps)
        return active

    # -- queries ---------------------------------------------------------------------------------------

    @property
    def n_basis(self) -> int:
        return self.basis.shape[0]

    @property
    def n_placeholders(self) -> int:
        """Rows not yet replaced by data (directions the training data does not span)."""
        return int(np.count_nonzero(self.config_id == PLACEHOLDER))

    def grades(self, rows) -> np.ndarray:
        """Extrapolation grade γ = max |b A⁻¹| of each row of ``rows`` (n, m) → (n,)."""
        r = _as_rows(rows, self.n_basis)
        out = np.empty(len(r))
        row_grades(r, self.inverse, out)
        return out

    def config_grades(self, rows, row_config, n_configs: int) -> np.ndarray:
        """Per-configuration grade (n_configs,): the max over rows with ``row_config`` == k."""
        g = self.grades(rows)
        rc = _group_index(row_config, len(g), n_configs)
        out = np.empty(n_configs)
        group_max(g, rc, n_configs, out)
        return out

    def residual(self) -> float:
        """max |A A⁻¹ − I|: drift of the rank-1 updated inverse (round-off check)."""
        return float(np.abs(self.basis @ self.inverse - np.eye(self.n_basis)).max())

    # -- updates ---------------------------------------------------------------------------------------

    def update(self, rows, config_id, atom_index=None, tol: float = 1e-3, max_swaps: int | None = None) -> int:
        """Add new labelled rows by MaxVol swaps (rank-1 updates; no re-inversion). Returns the swap count.

        Rows whose |c| exceeds 1 + ``tol`` are swapped in, largest first, until none is left.
        """
        r = _as_rows(rows, self.n_basis)
        cid, aid = _ids(config_id, atom_index, len(r))
        limit = 10 * (self.n_basis + len(r)) if max_swaps is None else int(max_swaps)
        swap_row = np.empty(max(limit, 1), np.int64)
        swap_slot = np.empty(max(limit, 1), np.int64)
        n, _ = maxvol_swaps(self.basis, self.inverse, r, 1.0 + tol, limit, swap_row, swap_slot)
        for k in range(n):  # in order: a slot swapped twice keeps the last row
            self.config_id[swap_slot[k]] = cid[swap_row[k]]
            self.atom_index[swap_slot[k]] = aid[swap_row[k]]
        self.n_swaps += n
        return n

    def select(self, rows, row_config, n_configs: int, budget: int, tol: float = 1e-3,
               candidates=None) -> Selection:
        """Greedy MaxVol choice of at most ``budget`` configurations (see :func:`greedy_group_maxvol`).

        ``rows`` (n, m) with ``row_config`` (n,) in 0..n_configs−1; ``candidates`` (n_configs,) bool
        restricts which configurations may be chosen (default all). Does not modify ``self``: the
        returned :class:`Selection` carries the updated copy.
        """
        if budget < 0:
            raise ValueError(f"budget must be ≥ 0, got {budget}")
        r = _as_rows(rows, self.n_basis)
        rc = _group_index(row_config, len(r), n_configs)
        if candidates is not None:
            keep = np.asarray(candidates, dtype=bool).reshape(n_configs)[rc]
            r, rc = np.ascontiguousarray(r[keep]), np.ascontiguousarray(rc[keep])
        new = self.copy()
        limit = 10 * (self.n_basis + len(r)) + 1
        chosen = np.empty(max(budget, 1), np.int64)
        gain = np.empty(max(budget, 1))
        swap_row = np.empty(limit, np.int64)
        swap_slot = np.empty(limit, np.int64)
        k, n = greedy_group_maxvol(new.basis, new.inverse, r, rc, n_configs, budget, 1.0 + tol, limit,
                                   chosen, gain, swap_row, swap_slot)
        for s in range(n):
            new.config_id[swap_slot[s]] = rc[swap_row[s]]
            new.atom_index[swap_slot[s]] = PLACEHOLDER
        new.n_swaps += n
        return Selection(chosen[:k].copy(), gain[:k].copy(), n, new)

    def copy(self) -> ActiveSet:
        return ActiveSet(self.mode, self.basis.copy(), self.inverse.copy(), self.config_id.copy(),
                         self.atom_index.copy(), self.n_swaps, dict(self.attrs))

    # -- storage ---------------------------------------------------------------------------------------

    def to_dataset(self) -> xr.Dataset:
        """xarray Dataset (dims ``active_row``, ``basis_function``) for the campaign store (netCDF)."""
        ds = xr.Dataset(
            {
                "active_basis": (("active_row", "basis_function"), self.basis),
                "active_inverse": (("active_row", "basis_function"), self.inverse),
                "active_config_id": (("active_row",), self.config_id),
                "active_atom_index": (("active_row",), self.atom_index),
            },
            attrs={**self.attrs, "schema": "pesflow.active_set/1", "mode": self.mode, "n_swaps": int(self.n_swaps)},
        )
        ds["active_inverse"].attrs["description"] = "inverse of active_basis, transposed index order (m, m)"
        return ds

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> ActiveSet:
        """Inverse of :meth:`to_dataset` (bit for bit)."""
        if ds.attrs.get("schema") != "pesflow.active_set/1":
            raise ValueError(f"not an active-set dataset (schema {ds.attrs.get('schema')!r}, "
                             "expected 'pesflow.active_set/1')")
        attrs = {k: v for k, v in ds.attrs.items() if k not in ("schema", "mode", "n_swaps")}
        return cls(str(ds.attrs["mode"]), np.array(ds["active_basis"].values, np.float64),
                   np.array(ds["active_inverse"].values, np.float64),
                   np.array(ds["active_config_id"].values, np.int64),
                   np.array(ds["active_atom_index"].values, np.int64), int(ds.attrs["n_swaps"]), attrs)


def _ids(config_id, atom_index, n: int) -> tuple[np.ndarray, np.ndarray]:
    cid = np.asarray(config_id, dtype=np.int64).reshape(-1)
    if cid.size == 1 and n != 1:
        cid = np.full(n, cid[0], np.int64)
    if cid.shape != (n,):
        raise ValueError(f"config_id needs one entry per row ({n}), got {cid.shape}")
    aid = np.full(n, PLACEHOLDER, np.int64) if atom_index is None else np.asarray(atom_index, np.int64).reshape(-1)
    if aid.shape != (n,):
        raise ValueError(f"atom_index needs one entry per row ({n}), got {aid.shape}")
    return cid, aid


def _group_index(row_config, n_rows: int, n_configs: int) -> np.ndarray:
    rc = np.ascontiguousarray(row_config, dtype=np.int64).reshape(-1)
    if rc.shape != (n_rows,):
        raise ValueError(f"row_config needs one entry per row ({n_rows}), got {rc.shape}")
    if n_rows and (rc.min() < 0 or rc.max() >= n_configs):
        raise ValueError(f"row_config entries must lie in 0..{n_configs - 1}")
    return rc
