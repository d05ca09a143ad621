"""Statistics of two-phase coexistence runs: interface velocity with its standard error, the melting temperature as
the zero crossing of velocity(T) with a confidence interval, the next temperatures to run, and the finite-size check.

A crystal | liquid run at T < T_m grows, at T > T_m it melts; near T_m the interface velocity is linear in
T − T_m (Wilson–Frenkel kinetics, v ∝ Δμ ∝ ΔT to first order) and the solid fraction φ(t) of the box performs a
random walk with that drift (capillary fluctuations and attachment/detachment noise) plus the fast frame-to-frame
noise of the order parameter. The estimators here treat both noise kinds:

* :func:`interface_velocity` — batch means of the least-squares slopes of φ against sweep in contiguous blocks of
  the free part of a run, with the batch-means standard error.
* :func:`zero_crossing` — a weighted least-squares line v = a + b (T − T̄) through the runs near T_m and its root
  T_m = T̄ − a/b with Fieller's confidence interval (Fieller, J. R. Stat. Soc. B 16, 175 (1954)): the set of T
  at which the line is compatible with zero, exact for a linear model with normal errors. The covariance is scaled
  by the reduced χ² when the line does not fit within the errors (Birge ratio), with Student's t then.
* :func:`propose_temperatures` — where to run next: outside the range while no sign change is seen, bisection of
  the tightest significant bracket while no bounded interval exists, then points at T_m ± the interval's half-width.
* :func:`finite_size_check` — the box's lateral side against a stated multiple of the interaction cutoff and of the
  measured interface width (:func:`interface_width`).

Units: velocities in solid fraction per sweep (multiply by N for atoms per sweep), temperatures in the system's
unit (T* or K), lengths in σ or Å. Numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: the stated minimum lateral box side, in interaction cutoffs: a 4 × 4 × 8-cell argon box (2.1 r_c) inverted the
#: growth/melting order at 1 bar, 6 × 6 × 12 cells (3.1 r_c) did not (issue 22)
MIN_LATERAL_CUTOFFS = 3.0
#: … and in interface widths (10–90 % of the solid profile): capillary waves need room to be sampled
MIN_LATERAL_WIDTHS = 3.0


@dataclass(frozen=True)
class InterfaceVelocity:
    """Drift of the solid fraction of one run. ``velocity`` and ``standard_error`` in solid fraction per sweep;
    ``dof`` the degrees of freedom of the error (blocks − 1); ``first_sweep``/``last_sweep`` the fitted
    span; ``saturated`` True when the crystal melted away or filled the box before the run ended (the fit stops
    there: the sign is decisive, the value is not in the linear range)."""

    velocity: float
    standard_error: float
    dof: int
    n_frames: int
    first_sweep: float
    last_sweep: float
    saturated: bool

    @property
    def z(self) -> float:
        """velocity / standard error (NaN without an error)."""
        return self.velocity / self.standard_error if self.standard_error > 0 else float("nan")

    def outcome(self, level: float = 0.95) -> str:
        """"grew" / "melted" when a two-sided Student t test at ``level`` rejects v = 0, else "undecided"; a
        saturated run counts by its sign."""
        if self.saturated and self.velocity != 0:
            return "grew" if self.velocity > 0 else "melted"
        if not math.isfinite(self.z):
            return "undecided"
        q = float(stats.t.ppf(0.5 + level / 2, max(self.dof, 1)))
        return "grew" if self.z > q else ("melted" if self.z < -q else "undecided")

    @classmethod
    def from_dict(cls, d) -> InterfaceVelocity:
        """Back from :meth:`as_dict` (or a run's netCDF attributes, which carry the same keys)."""
        return cls(float(d["velocity"]), float(d["velocity_standard_error"]), int(d["velocity_dof"]),
                   int(d["velocity_frames"]), float(d["velocity_first_sweep"]), float(d["velocity_last_sweep"]),
                   bool(d["saturated"]))

    def as_dict(self, level: float = 0.95) -> dict:
        return {"velocity": self.velocity, "velocity_standard_error": self.standard_error, "velocity_dof": self.dof,
                "velocity_z": self.z, "velocity_frames": self.n_frames, "velocity_first_sweep": self.first_sweep,
                "velocity_last_sweep": self.last_sweep, "saturated": self.saturated,
                "velocity_outcome": self.outcome(level)}


def _slope(t: np.ndarray, y: np.ndarray) -> float:
    tc = t - t.mean()
    return float(tc @ (y - y.mean()) / (tc @ tc))


def interface_velocity(sweeps, solid_fraction, skip: float = 0.1, n_blocks: int = 8,
                       bounds: tuple[float, float] = (0.08, 0.85)) -> InterfaceVelocity:
    """Interface velocity of one coexistence run: dφ/dt in solid fraction per sweep with its standard error.

    sweeps, solid_fraction: (n_frames,) the sweep of each analysed frame (0 = release of the crystal) and the box's
        solid-like fraction there (:mod:`hmc_core.phase_analysis`).
    skip: fraction of the run's sweeps left out at the start (the interface's first relaxation after the release).
    n_blocks: contiguous blocks of frames, one slope each (≥ 3; fewer when the run is short: ≥ 3 frames a block).
    bounds: the fit stops at the first frame whose φ leaves (lo, hi): the crystal has melted away (lo) or filled
        the box (hi); the run is then ``saturated``.

    Estimate: batch means of slopes (Flegal & Jones, Ann. Stat. 38, 1034 (2010), for the batch-means idea): the
    kept frames are cut into B contiguous blocks, each extended by the next block's first frame so that every
    increment of φ is used; each block's ordinary least-squares slope of φ against sweep is one batch, v = their
    mean, s = their standard deviation / √B, ``dof`` = B − 1. Blocks use disjoint increments of the random walk, so
    the batches are independent for it; the shared frames correlate neighbouring batches negatively through the
    white noise, which only makes s conservative. On synthetic runs (61 frames, tests/test_melting_statistics.py)
    the 95 % t interval covers the true drift in 0.95–0.96 of random-walk runs and up to 0.99 where white noise
    dominates; its spread is within 5 % of the global least-squares slope's for a random walk. A jackknife of the
    global slope was tried first and covered the drift in only 53 % of random-walk runs; disjoint blocks were
    exact but 14 % noisier.
    Raises ValueError for mismatched or too short series (fewer than 6 frames after ``skip``) or bad parameters.
    """
    t = np.asarray(sweeps, float)
    y = np.asarray(solid_fraction, float)
    if t.shape != y.shape or t.ndim != 1:
        raise ValueError(f"sweeps {t.shape} and solid_fraction {y.shape} must be equal-length 1-d series")
    if not 0 <= skip < 1:
        raise ValueError(f"skip = {skip} must be in [0, 1)")
    if n_blocks < 3:
        raise ValueError(f"n_blocks = {n_blocks}: the batch-means error needs ≥ 3 blocks")
    lo, hi = bounds
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"bounds = {bounds} must satisfy 0 ≤ lo < hi ≤ 1")
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    outside = np.flatnonzero((y <= lo) | (y >= hi))
    saturated = bool(len(outside))
    if saturated:  # keep the frame that crossed: it carries the sign
        t, y = t[:outside[0] + 1], y[:outside[0] + 1]
    if len(t) < 2:
        raise ValueError(f"{len(t)} frame(s) before the solid fraction left the bounds {bounds}; analyse the run's "
                         "solid fraction more often")
    keep = t >= t.min() + skip * (t.max() - t.min())
    if keep.sum() >= 6 or not saturated:  # a run that saturated early keeps its first frames: they carry the sign
        t, y = t[keep], y[keep]
    if len(t) < 6:
        if not saturated:
            raise ValueError(f"only {len(t)} frames after skip = {skip}: need ≥ 6 for a velocity with an error")
        return InterfaceVelocity(_slope(t, y), float("nan"), 0, len(t), float(t[0]), float(t[-1]), saturated)
    b = int(min(n_blocks, len(t) // 3 if len(t) >= 9 else 3))
    blocks = [np.arange(p[0], min(p[-1] + 2, len(t))) for p in np.array_split(np.arange(len(t)), b)]
    slopes = np.array([_slope(t[p], y[p]) for p in blocks])
    v, se = float(slopes.mean()), float(slopes.std(ddof=1) / math.sqrt(b))
    return InterfaceVelocity(v, se, b - 1, len(t), float(t[0]), float(t[-1]), saturated)


@dataclass(frozen=True)
class MeltingPoint:
    """T_m as the zero crossing of the interface velocity. ``temperature`` the point estimate, (``ci_low``,
    ``ci_high``) the Fieller interval at ``level`` (±inf where the data do not bound it; NaN without a fit);
    ``slope`` dv/dT (solid fraction per sweep per temperature unit, < 0 for a normal melting transition) and its
    ``slope_standard_error``; ``chi2``/``dof`` of the line; ``scaled`` True when the covariance was inflated by
    χ²/dof; ``temperatures_used`` the runs in the fit."""

    temperature: float
    ci_low: float
    ci_high: float
    level: float
    slope: float
    slope_standard_error: float
    chi2: float
    dof: int
    scaled: bool
    temperatures_used: tuple[float, ...]

    @property
    def width(self) -> float:
        return self.ci_high - self.ci_low

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)

    def as_dict(self) -> dict:
        def clean(x):
            return float(x) if math.isfinite(x) else None
        return {"T_m": clean(self.temperature), "ci": [clean(self.ci_low), clean(self.ci_high)],
                "ci_width": clean(self.width), "level": self.level, "bounded": self.bounded,
                "slope": clean(self.slope), "slope_standard_error": clean(self.slope_standard_error),
                "chi2": clean(self.chi2), "dof": self.dof, "covariance_scaled": self.scaled,
                "temperatures_used": list(self.temperatures_used),
                "method": "weighted line v(T), Fieller interval (Fieller 1954)"}


def _nan_point(level: float, temps) -> MeltingPoint:
    nan = float("nan")
    return MeltingPoint(nan, nan, nan, level, nan, nan, nan, 0, False, tuple(float(t) for t in temps))


def zero_crossing(temperatures, velocities, standard_errors, level: float = 0.95,
                  window: float | None = None) -> MeltingPoint:
    """T_m where the weighted straight line through (T, v ± s) crosses zero, with Fieller's interval.

    temperatures, velocities, standard_errors: (n,) one entry per run (a temperature may repeat: replicas);
        errors must be finite and > 0 (leave saturated runs out: they are not in the linear range).
    level: confidence level of the interval, in (0, 1).
    window: use only runs within ``window`` of a first estimate from all runs (the linear range), when that
        keeps ≥ 2 distinct temperatures.

    Fit: weights 1/s², v = a + b (T − T̄) with T̄ the weighted mean (a, b uncorrelated), T_m = T̄ − a/b.
    Interval: all T with (a + b x)² ≤ q² (s_a² + x² s_b²), x = T − T̄ (Fieller 1954), q the normal quantile; when
    χ²/dof > 1 (dof = n − 2 ≥ 1) the covariance is multiplied by χ²/dof and q is Student's t with dof degrees
    of freedom. If b² ≤ q² s_b² the slope is not significant and the interval is unbounded (±inf).
    Returns a NaN :class:`MeltingPoint` with fewer than two distinct temperatures; raises ValueError for
    mismatched inputs, non-positive errors or a level outside (0, 1).
    """
    t = np.asarray(temperatures, float)
    v = np.asarray(velocities, float)
    s = np.asarray(standard_errors, float)
    if not (t.shape == v.shape == s.shape) or t.ndim != 1:
        raise ValueError("temperatures, velocities and standard_errors must be equal-length 1-d arrays")
    if not 0 < level < 1:
        raise ValueError(f"level = {level} must be in (0, 1)")
    if np.any(~np.isfinite(s) | (s <= 0)) or np.any(~np.isfinite(t) | ~np.isfinite(v)):
        raise ValueError("every run needs a finite velocity and a finite standard error > 0")
    if len(np.unique(t)) < 2:
        return _nan_point(level, t)
    point = _fieller(t, v, s, level)
    if window is not None and math.isfinite(point.temperature):
        near = np.abs(t - point.temperature) <= window
        if len(np.unique(t[near])) >= 2 and near.sum() < len(t):
            point = _fieller(t[near], v[near], s[near], level)
    return point


def _fieller(t: np.ndarray, v: np.ndarray, s: np.ndarray, level: float) -> MeltingPoint:
    w = 1.0 / s**2
    t_bar = float(np.sum(w * t) / np.sum(w))
    x = t - t_bar
    a = float(np.sum(w * v) / np.sum(w))
    b = float(np.sum(w * x * v) / np.sum(w * x * x))
    var_a, var_b = 1.0 / float(np.sum(w)), 1.0 / float(np.sum(w * x * x))
    chi2 = float(np.sum(w * (v - a - b * x) ** 2))
    dof = len(t) - 2
    scaled = dof >= 1 and chi2 / dof > 1
    if scaled:
        var_a, var_b = var_a * chi2 / dof, var_b * chi2 / dof
        q = float(stats.t.ppf(0.5 + level / 2, dof))
    else:
        q = float(stats.norm.ppf(0.5 + level / 2))
    temps = tuple(float(u) for u in t)
    if b == 0:
        nan = float("nan")
        return MeltingPoint(nan, -math.inf, math.inf, level, b, math.sqrt(var_b), chi2, dof, scaled, temps)
    tm = t_bar - a / b
    qa, qb = b * b - q * q * var_b, a * a - q * q * var_a  # A x² + 2 a b x + C ≤ 0
    disc = (a * b) ** 2 - qa * qb
    if qa <= 0 or disc < 0:
        lo, hi = -math.inf, math.inf
    else:
        r = math.sqrt(disc)
        lo, hi = sorted(((-a * b - r) / qa + t_bar, (-a * b + r) / qa + t_bar))
    return MeltingPoint(tm, lo, hi, level, b, math.sqrt(var_b), chi2, dof, scaled, temps)


def propose_temperatures(temperatures, outcomes: Sequence[str], n_new: int, crossing: MeltingPoint | None = None,
                         min_spacing: float = 0.0) -> list[float]:
    """The next ``n_new`` temperatures of an adaptive coexistence study.

    temperatures, outcomes: the runs so far and their significance-tested outcomes ("grew", "melted",
        "undecided"; :meth:`InterfaceVelocity.outcome`).
    crossing: the current :func:`zero_crossing` (None: not yet fitted).
    min_spacing: proposals closer than this to each other are spread apart (replicas at one temperature are
        allowed, but spreading helps the line).

    Rules, in order: (1) no run melted → extend above the highest temperature by the scan's spacing; no run grew
    → below the lowest; (2) a bounded interval inside the bracket → ``n_new`` points evenly over T_m ± the
    interval's half-width, clipped to the bracket (the interval shrinks like 1/√runs while the slope stays
    resolved); (3) otherwise
    bisection: ``n_new`` points evenly inside the bracket (highest grown T below the lowest melted T, lowest
    melted T), the section search for the sign change.
    """
    t = np.asarray(temperatures, float)
    if n_new < 1:
        raise ValueError(f"n_new = {n_new} must be ≥ 1")
    if len(t) == 0 or len(t) != len(outcomes):
        raise ValueError("give one outcome per temperature, and at least one run")
    grew = t[[o == "grew" for o in outcomes]]
    melted = t[[o == "melted" for o in outcomes]]
    u = np.unique(t)
    step = float(np.min(np.diff(u))) if len(u) > 1 else max(0.05 * float(u[0]), min_spacing)
    step = max(step, min_spacing)
    if len(melted) == 0:
        return [float(t.max() + step * (k + 1)) for k in range(n_new)]
    if len(grew) == 0:
        return [float(max(t.min() - step * (k + 1), 0.5 * t.min())) for k in range(n_new)]
    hi = float(melted.min())
    below = grew[grew < hi]
    lo = float(below.max()) if len(below) else float(grew.min())
    if lo >= hi:  # a grown run above a melted one: sample the overlap
        lo, hi = hi, lo
    if crossing is not None and crossing.bounded and lo - step <= crossing.temperature <= hi + step:
        half = max(0.5 * crossing.width, min_spacing * max(n_new - 1, 1) / 2)
        if n_new == 1:
            return [float(crossing.temperature)]
        points = np.linspace(crossing.temperature - half, crossing.temperature + half, n_new)
        return [float(x) for x in np.clip(points, lo, hi)]  # a wide interval: stay inside the bracket
    return [float(x) for x in np.linspace(lo, hi, n_new + 2)[1:-1]]


def interface_width(profile, slab_thickness: float, lo: float = 0.1, hi: float = 0.9) -> float:
    """Mean width of the two interfaces of a crystal | liquid box from its solid profile: per frame, the length over
    which the slab solid fraction, normalised between its liquid (min) and crystal (max) plateaus, lies in (lo, hi),
    halved (a periodic box has two interfaces); the median over frames (per frame, so a drift of the crystal along
    z does not widen it).

    profile: (n_frames, n_slabs) or (n_slabs,) solid fraction per slab along z; slab_thickness in length units.
    Returns a length (σ or Å); NaN when no frame has contrast (> 0.3 between plateaus: one phase only)."""
    p = np.atleast_2d(np.asarray(profile, float))
    widths = []
    for row in p:
        row = row[np.isfinite(row)]
        span = row.max() - row.min() if len(row) else 0.0
        if span > 0.3:
            norm = (row - row.min()) / span
            widths.append(max(int(np.sum((norm > lo) & (norm < hi))), 1) * slab_thickness / 2)
    return float(np.median(widths)) if widths else float("nan")


def finite_size_check(lateral_side: float, cutoff: float, width: float = float("nan"),
                      multiple_cutoff: float = MIN_LATERAL_CUTOFFS,
                      multiple_width: float = MIN_LATERAL_WIDTHS) -> dict:
    """Is the box's cross-section large enough for its interface? The lateral side (the thinner of the two lateral
    box heights, length units) must exceed ``multiple_cutoff`` × the interaction cutoff (an atom must not interact
    with its own capillary wave through the periodic image; :data:`MIN_LATERAL_CUTOFFS`) and ``multiple_width`` ×
    the measured interface width (:func:`interface_width`, when given). Returns a dict with the ratios, the
    stated multiples, ``ok`` and a ``warning`` sentence (empty when ok)."""
    if not (cutoff > 0 and lateral_side > 0):
        raise ValueError(f"lateral_side = {lateral_side} and cutoff = {cutoff} must be > 0")
    by_cutoff = lateral_side / cutoff
    by_width = lateral_side / width if width > 0 else float("nan")
    problems = []
    if by_cutoff < multiple_cutoff:
        problems.append(f"the lateral side is {by_cutoff:.2f} cutoffs, below the stated minimum {multiple_cutoff:g}")
    if math.isfinite(by_width) and by_width < multiple_width:
        problems.append(f"it is {by_width:.2f} interface widths, below the stated minimum {multiple_width:g}")
    warning = ("; ".join(problems) + ": the interface feels its periodic images and T_m may be biased (a 512-atom "
               "argon box inverted growth and melting); use more lateral cells") if problems else ""
    return {"lateral_side": float(lateral_side), "cutoff": float(cutoff), "lateral_over_cutoff": by_cutoff,
            "min_lateral_over_cutoff": multiple_cutoff, "interface_width": float(width) if width > 0 else None,
            "lateral_over_interface_width": by_width if math.isfinite(by_width) else None,
            "min_lateral_over_interface_width": multiple_width, "ok": not problems, "warning": warning}


def pooled_errors(velocities: Sequence[InterfaceVelocity]) -> np.ndarray:
    """Standard errors for the line fit: one pooled error for the runs that did not saturate (they have the same
    length and, near T_m, the same noise: s² = Σ dofₖ sₖ² / Σ dofₖ), each saturated run its own (NaN where it had
    too few frames). Weighting by the runs' own batch-means errors (7 degrees of freedom each) gave a run whose
    error happened to come out small too much weight: the Fieller interval then covered a planted T_m in only
    0.87 of synthetic adaptive studies; pooled, 0.9–0.97 (tests/test_melting_statistics.py)."""
    se = np.array([r.standard_error for r in velocities], float)
    free = np.array([not r.saturated and math.isfinite(r.standard_error) and r.dof > 0 for r in velocities])
    if free.any():
        dof = np.array([r.dof for r in velocities], float)[free]
        se[free] = math.sqrt(float(np.sum(dof * se[free] ** 2) / np.sum(dof)))
    return se


def fit_runs(temperatures, velocities: Sequence[InterfaceVelocity], level: float = 0.95,
             window: float | None = None) -> MeltingPoint:
    """:func:`zero_crossing` through the runs with a finite error, weighted by :func:`pooled_errors` (runs that
    saturated within a few frames carry only their sign and are left out)."""
    se = pooled_errors(velocities)
    use = np.flatnonzero(np.isfinite(se) & (se > 0))
    t = np.asarray(temperatures, float)
    if len(use) < 2:
        return _nan_point(level, t[use])
    return zero_crossing(t[use], [velocities[k].velocity for k in use], se[use], level=level, window=window)


@dataclass(frozen=True)
class AdaptiveResult:
    """An adaptive study: ``melting_point`` (the last fit), ``temperatures`` and ``velocities`` of every run in the
    order run, ``rounds`` (batches run), ``converged`` (the interval reached ``ci_width``)."""

    melting_point: MeltingPoint
    temperatures: tuple[float, ...]
    velocities: tuple[InterfaceVelocity, ...]
    rounds: int
    converged: bool
    ci_width: float


def adaptive_melting_point(run_batch, temperatures: Sequence[float], ci_width: float, n_parallel: int,
                           max_runs: int, level: float = 0.95, window: float | None = None,
                           min_spacing: float = 0.0, resolution: float = 0.0) -> AdaptiveResult:
    """Run coexistence batches until the ``level`` interval of T_m is at most ``ci_width`` wide (or ``max_runs``
    runs were made): the sequential design of :func:`propose_temperatures` on the significance-tested outcomes
    (:meth:`InterfaceVelocity.outcome`) and :func:`fit_runs` after every batch.

    run_batch: callable(list of temperatures) → list of :class:`InterfaceVelocity`, one per temperature (the flow
        runs them in parallel; tests pass synthetic runs). Called first with ``temperatures``.
    ci_width: requested full width of the interval (temperature units, > 0); n_parallel: runs per later batch (≥ 1);
    max_runs: the budget (≥ len(temperatures)); resolution: proposals are rounded to multiples of it (0: not).
    Raises ValueError for ci_width ≤ 0, n_parallel < 1, max_runs below the first batch or no temperatures.
    """
    if not ci_width > 0:
        raise ValueError(f"ci_width = {ci_width} must be > 0 (the requested width of the T_m interval)")
    if n_parallel < 1:
        raise ValueError(f"n_parallel = {n_parallel} must be ≥ 1")
    if len(temperatures) == 0 or max_runs < len(temperatures):
        raise ValueError(f"max_runs = {max_runs} must cover the first batch of {len(temperatures)} temperatures")
    temps = [float(t) for t in temperatures]
    vels = list(run_batch(list(temps)))
    rounds = 1
    while True:
        point = fit_runs(temps, vels, level, window)
        done = point.bounded and point.width <= ci_width
        if done or len(temps) >= max_runs:
            return AdaptiveResult(point, tuple(temps), tuple(vels), rounds, bool(done), float(ci_width))
        outcomes = [r.outcome(level) for r in vels]
        new = propose_temperatures(temps, outcomes, min(n_parallel, max_runs - len(temps)), point, min_spacing)
        if resolution > 0:
            new = [float(f"{round(x / resolution) * resolution:.12g}") for x in new]
        vels += list(run_batch(new))
        temps += new
        rounds += 1
