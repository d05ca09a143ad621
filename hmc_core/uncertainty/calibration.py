"""Calibration of an uncertainty measure (extrapolation grade γ, or a Bayesian σ) to an expected force error (eV/Å).

γ has no unit, so "threshold 2" means nothing to a user who thinks in eV/Å. Every label whose prediction was made
before it was labeled gives one pair (u, e): the uncertainty u the potential reported for it (γ of the
configuration, or of a cluster cut's centre atom) and the force error e the same potential then made on it (RMS
over the fitted atoms, eV/Å). The grade–error relation of MTPs is close to a power law (Podryabinkin & Shapeev,
Comput. Mater. Sci. 140, 171 (2017), Fig. 6; Novikov et al., Mach. Learn.: Sci. Technol. 2, 025002 (2021)), so
the map here is the log-normal power law

    ln e = ln a + b ln u + ε,   ε ~ N(0, s²),

fitted by ordinary least squares on (ln u, ln e); s is the residual standard deviation (n − 2 degrees of
freedom). Its central band at level p is a·u^b·exp(± z_p s) with z_p the standard-normal quantile, and a threshold
in eV/Å maps to u* = (e*/a)^(1/b): the uncertainty whose median expected error is e*. The quality measure is the
coverage (Kuleshov, Fenner & Ermon, ICML 2018; Tran et al., Mach. Learn.: Sci. Technol. 1, 025006 (2020)): the
fraction of actual errors inside the predicted 68 % / 95 % bands, measured on pairs the map was not fitted to.

Shapes: 1-D arrays of equal length; units: u as given (γ dimensionless), e in eV/Å.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm

#: fewer usable pairs than this give no calibration
MIN_PAIRS = 5


class CalibrationError(ValueError):
    """The pairs cannot give a calibration (too few, or an error that does not grow with the uncertainty)."""


def usable_pairs(uncertainty, error) -> tuple[np.ndarray, np.ndarray]:
    """The pairs with a finite, positive uncertainty and error (logs exist), as float arrays."""
    u = np.asarray(uncertainty, dtype=np.float64).ravel()
    e = np.asarray(error, dtype=np.float64).ravel()
    if u.shape != e.shape:
        raise ValueError(f"uncertainty and error must have the same length, got {u.shape} and {e.shape}")
    ok = np.isfinite(u) & np.isfinite(e) & (u > 0) & (e > 0)
    return u[ok], e[ok]


@dataclass(frozen=True)
class PowerLawCalibration:
    """e ≈ a·u^b with log-normal scatter s (see the module docstring); n: pairs it was fitted to; u_min, u_max:
    their uncertainty range (outside it the map extrapolates)."""

    a: float
    b: float
    s: float
    n: int
    u_min: float
    u_max: float

    @classmethod
    def fit(cls, uncertainty, error) -> PowerLawCalibration:
        """Least squares on (ln u, ln e). Raises :class:`CalibrationError` with fewer than :data:`MIN_PAIRS`
        usable pairs or fewer than two distinct uncertainties."""
        u, e = usable_pairs(uncertainty, error)
        if len(u) < MIN_PAIRS:
            raise CalibrationError(f"{len(u)} usable (uncertainty, error) pairs; a calibration needs {MIN_PAIRS}")
        x, y = np.log(u), np.log(e)
        if np.ptp(x) <= 1e-12:
            raise CalibrationError("every pair has the same uncertainty: the error's dependence on it is unknown")
        b, ln_a = np.polyfit(x, y, 1)
        resid = y - (ln_a + b * x)
        s = float(np.sqrt(resid @ resid / (len(u) - 2))) if len(u) > 2 else 0.0
        return cls(float(np.exp(ln_a)), float(b), s, int(len(u)), float(u.min()), float(u.max()))

    def median(self, uncertainty) -> np.ndarray:
        """Median expected force error (eV/Å) at ``uncertainty``."""
        return self.a * np.asarray(uncertainty, dtype=np.float64) ** self.b

    def band(self, uncertainty, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` band (lower, upper) of the error at ``uncertainty``. ValueError for a level
        outside (0, 1)."""
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        z = norm.ppf(0.5 + level / 2)
        m = self.median(uncertainty)
        return m * np.exp(-z * self.s), m * np.exp(z * self.s)

    def coverage(self, uncertainty, error, level: float = 0.95) -> float:
        """Fraction of the usable pairs whose error lies inside the ``level`` band (NaN without pairs)."""
        u, e = usable_pairs(uncertainty, error)
        if not len(u):
            return float("nan")
        lo, hi = self.band(u, level)
        return float(np.mean((e >= lo) & (e <= hi)))

    def uncertainty_for_error(self, error: float) -> float:
        """The uncertainty u* whose median expected error is ``error`` (eV/Å): (error/a)^(1/b). Raises
        :class:`CalibrationError` when the fitted error does not grow with the uncertainty (b ≤ 0), and
        ValueError for an error that is not positive."""
        if not error > 0:
            raise ValueError(f"a force error threshold must be > 0 eV/Å, got {error}")
        if not self.b > 0:
            raise CalibrationError(f"the fitted error does not grow with the uncertainty (exponent b = {self.b:.3g}); "
                                   "an error threshold cannot be mapped to one")
        return float((error / self.a) ** (1.0 / self.b))

    def as_dict(self) -> dict:
        return asdict(self)


__all__ = ["MIN_PAIRS", "CalibrationError", "PowerLawCalibration", "usable_pairs"]
