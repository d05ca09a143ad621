"""Sampling diagnostics: integrated autocorrelation time τ and effective sample size (ESS).

For m chains of n draws of a scalar observable the autocorrelation is estimated as in Stan/ArviZ
(Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021, Bayesian Analysis 16, 667, eqs. 10–11):

  ρ̂_t = 1 − (W − (1/m) Σ_c γ̂_{c,t}) / var⁺,  W = mean within-chain variance,
  var⁺ = (n−1)/n · W + B/n (B/n the variance of the chain means),

with γ̂ the FFT autocovariance of each chain. τ = −1 + 2 Σ_k P_k with Geyer's (1992) initial positive,
monotone sequence P_k = ρ̂_{2k} + ρ̂_{2k+1} (plus the first dropped even term once, as Stan does),
and ESS = m n / τ (τ ≥ 1/log10(m n), as in ArviZ).
With ``split=True`` each chain is cut in halves first (ArviZ's default for ``method="mean"``), which
also flags non-stationary chains. Validated against ``arviz.ess(method="mean")`` in the tests.
"""

from __future__ import annotations

import numpy as np


def _as_chains(values, split: bool) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"values must be (draws,) or (chains, draws), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("values contain NaN or inf; drop unfinished samples first")
    if split:
        half = x.shape[1] // 2
        x = np.concatenate([x[:, :half], x[:, x.shape[1] - half:]], axis=0)
    if x.shape[1] < 4:
        raise ValueError(f"need at least 4 draws per (split) chain, got {x.shape[1]}")
    return x


def autocovariance(x: np.ndarray) -> np.ndarray:
    """Biased autocovariance γ_t (normalised by n) of each row of x (chains, n), by FFT."""
    n = x.shape[-1]
    d = x - x.mean(axis=-1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(d, size, axis=-1)
    return np.fft.irfft(f * np.conj(f), size, axis=-1)[..., :n] / n


def autocorrelation(values, split: bool = False) -> np.ndarray:
    """Combined autocorrelation ρ̂_t (t = 0 … n−1) of one or several chains (see module docstring)."""
    x = _as_chains(values, split)
    m, n = x.shape
    acov = autocovariance(x)
    within = acov[:, 0].mean() * n / (n - 1.0)
    var_plus = within * (n - 1.0) / n
    if m > 1:
        var_plus += x.mean(axis=1).var(ddof=1)
    if var_plus <= 0:
        return np.ones(n)
    rho = 1.0 - (within - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0
    return rho


def integrated_autocorrelation_time(values, split: bool = False) -> float:
    """τ (in draws) of a scalar observable; values (draws,) or (chains, draws)."""
    x = _as_chains(values, split)
    m, n = x.shape
    rho = autocorrelation(x)
    n_pairs = n // 2
    pairs = rho[: 2 * n_pairs].reshape(n_pairs, 2).sum(axis=1)
    positive = np.nonzero(pairs <= 0)[0]
    k_max = positive[0] if len(positive) else n_pairs
    tail = rho[2 * k_max] if k_max < n_pairs and rho[2 * k_max] > 0 else 0.0  # first dropped even term, once
    pairs = np.minimum.accumulate(pairs[:k_max]) if k_max else pairs[:0]
    tau = -1.0 + 2.0 * float(pairs.sum()) + float(tail)
    return max(tau, 1.0 / np.log10(m * n))


def effective_sample_size(values, split: bool = False) -> float:
    """ESS = m n / τ of a scalar observable; values (draws,) or (chains, draws)."""
    x = _as_chains(values, split)
    return x.size / integrated_autocorrelation_time(x)
