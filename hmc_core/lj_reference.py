"""Published reference results for the (full) Lennard-Jones system, reduced units (ε = σ = k_B = m = 1).

* :func:`jzg_pressure` — the modified Benedict–Webb–Rubin equation of state of Johnson, Zollweg &
  Gubbins, "The Lennard-Jones equation of state revisited", Mol. Phys. 78, 591–618 (1993),
  Eq. (7) with Tables 5–6 and their 32 fitted parameters x₁…x₃₂ (γ = 3 is the 33rd). Fitted to fluid
  states 0.7 ≤ T* ≤ 6 of the *full* potential; quoted accuracy of the pressure ~1–3 % in the dense
  liquid. Simulations with a cutoff must add the tail correction to compare.
* :func:`jzg_density` — the liquid density at given (T*, P*), solving P(ρ) = P* on the liquid branch.
* :func:`melting_pressure` — the solid–liquid coexistence pressure in the form proposed by Agrawal &
  Kofke, Mol. Phys. 85, 43 (1995), P = β^(−5/4) exp(−a √β)(16.89 + A β + B β²), β = 1/T*, with the
  coefficients recommended by van der Hoef, J. Chem. Phys. 113, 8142 (2000), Eq. (24):
  a = 0.4759, A = −7.2866, B = −2.9895 (Agrawal & Kofke: a = 0.4, A = −7.19, B = −3.028).
* :func:`melting_densities` — coexisting liquid and fcc densities on the melting line from Mastny &
  de Pablo, "Melting line of the Lennard-Jones system, infinite size, and full potential",
  J. Chem. Phys. 127, 104504 (2007), Eqs. (20)–(21).
* Triple points: Agrawal & Kofke (1995) T* = 0.687(4), P* = 0.0011 (N ≈ 500 extrapolated);
  Mastny & de Pablo (2007) T* = 0.694 (infinite size, full potential).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

JZG_GAMMA = 3.0
JZG_X = np.array([
    0.8623085097507421, 2.976218765822098, -8.402230115796038, 0.1054136629203555, -0.8564583828174598,
    1.582759470107601, 0.7639421948305453, 1.753173414312048, 2.798291772190376e03, -4.8394220260857657e-2,
    0.9963265197721935, -3.698000291272493e01, 2.084012299434647e01, 8.305402124717285e01,
    -9.574799715203068e02, -1.477746229234994e02, 6.398607852471505e01, 1.603993673294834e01,
    6.805916615864377e01, -2.791293578795945e03, -6.245128304568454, -8.116836104958410e03,
    1.488735559561229e01, -1.059346754655084e04, -1.131607632802822e02, -8.867771540418822e03,
    -3.986982844450543e01, -4.689270299917261e03, 2.593535277438717e02, -2.694523589434903e03,
    -7.218487631550215e02, 1.721802063863269e02,
])
TRIPLE_POINT_AGRAWAL_KOFKE = 0.687
TRIPLE_POINT_MASTNY_DE_PABLO = 0.694


def _jzg_coefficients(t: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([[0.0], JZG_X])  # 1-based as in the paper
    a = np.array([
        x[1] * t + x[2] * np.sqrt(t) + x[3] + x[4] / t + x[5] / t**2,
        x[6] * t + x[7] + x[8] / t + x[9] / t**2,
        x[10] * t + x[11] + x[12] / t,
        x[13],
        x[14] / t + x[15] / t**2,
        x[16] / t,
        x[17] / t + x[18] / t**2,
        x[19] / t**2,
    ])
    b = np.array([
        x[20] / t**2 + x[21] / t**3,
        x[22] / t**2 + x[23] / t**4,
        x[24] / t**2 + x[25] / t**3,
        x[26] / t**2 + x[27] / t**4,
        x[28] / t**2 + x[29] / t**3,
        x[30] / t**2 + x[31] / t**3 + x[32] / t**4,
    ])
    return a, b


def jzg_pressure(temperature: float, density: float) -> float:
    """P* of the full LJ fluid at (T*, ρ*) from the JZG (1993) MBWR equation of state."""
    if temperature <= 0 or density < 0:
        raise ValueError(f"need T* > 0 and ρ* ≥ 0, got T* = {temperature}, ρ* = {density}")
    a, b = _jzg_coefficients(float(temperature))
    rho = float(density)
    f = np.exp(-JZG_GAMMA * rho * rho)
    p = rho * temperature
    p += sum(a[i] * rho ** (i + 2) for i in range(8))
    p += f * sum(b[i] * rho ** (2 * i + 3) for i in range(6))
    return float(p)


def jzg_density(temperature: float, pressure: float, lo: float = 0.6, hi: float = 1.15) -> float:
    """Liquid ρ* with P_JZG(T*, ρ*) = P* (liquid branch, searched in [lo, hi])."""
    g = lambda rho: jzg_pressure(temperature, rho) - pressure  # noqa: E731
    if g(lo) > 0 or g(hi) < 0:
        raise ValueError(f"no liquid-branch JZG density for T* = {temperature}, P* = {pressure} in [{lo}, {hi}]")
    return float(brentq(g, lo, hi, xtol=1e-10))


def melting_pressure(temperature: float) -> float:
    """Solid–liquid coexistence P* at T* (Agrawal–Kofke form, van der Hoef 2000 coefficients)."""
    beta = 1.0 / temperature
    return float(beta**-1.25 * np.exp(-0.4759 * np.sqrt(beta)) * (16.89 - 7.2866 * beta - 2.9895 * beta**2))


def melting_temperature(pressure: float) -> float:
    """T* on the melting line at P* (inverse of :func:`melting_pressure`; P* ≳ 0.05)."""
    return float(brentq(lambda t: melting_pressure(t) - pressure, 0.69, 5.0, xtol=1e-10))


def melting_densities(temperature: float) -> tuple[float, float]:
    """(ρ_liquid, ρ_solid) at coexistence at T* (Mastny & de Pablo 2007, Eqs. 20–21)."""
    b = 1.0 / temperature
    pre = b**-0.25
    rho_s = pre * (0.908629 - 0.041510 * b + 0.514632 * b**2 - 0.708590 * b**3 + 0.428351 * b**4
                   - 0.095229 * b**5)
    rho_l = pre * (0.90735 - 0.27120 * b + 0.91784 * b**2 - 1.16270 * b**3 + 0.68012 * b**4 - 0.15284 * b**5)
    return float(rho_l), float(rho_s)


def _melting_pressure_ak(temperature: float, a: float, big_a: float, big_b: float) -> float:
    beta = 1.0 / temperature
    return float(beta**-1.25 * np.exp(-a * np.sqrt(beta)) * (16.89 + big_a * beta + big_b * beta**2))


def published_melting_temperatures(pressure: float) -> list[dict]:
    """Published estimates of the LJ melting temperature T* at P* (full potential, N → ∞), each
    ``{"T_m": T*, "source": citation}``, so that a result can be set against their spread (they differ by about
    ±1–2 %):

    * the melting line in the Agrawal–Kofke form with van der Hoef's coefficients (J. Chem. Phys. 113, 8142
      (2000), Eq. 24) and with Agrawal & Kofke's own (Mol. Phys. 85, 43 (1995): a = 0.4, A = −7.19, B = −3.028),
      both for P* ≥ 0.05 where the fits hold;
    * below P* = 0.05 (the triple-point region; 1 bar of argon is P* ≈ 0.0024) the triple-point temperatures of
      Agrawal & Kofke (1995), 0.687(4), and Mastny & de Pablo (J. Chem. Phys. 127, 104504 (2007)), 0.694.
    """
    if pressure < 0:
        raise ValueError(f"P* = {pressure} is negative")
    if pressure < 0.05:
        return [{"T_m": TRIPLE_POINT_AGRAWAL_KOFKE,
                 "source": "Agrawal & Kofke, Mol. Phys. 85, 43 (1995), triple point"},
                {"T_m": TRIPLE_POINT_MASTNY_DE_PABLO,
                 "source": "Mastny & de Pablo, J. Chem. Phys. 127, 104504 (2007), triple point"}]
    out = []
    for coeffs, source in (((0.4759, -7.2866, -2.9895), "van der Hoef, J. Chem. Phys. 113, 8142 (2000), Eq. 24"),
                           ((0.4, -7.19, -3.028), "Agrawal & Kofke, Mol. Phys. 85, 43 (1995)")):
        try:
            t = brentq(lambda t, c=coeffs: _melting_pressure_ak(t, *c) - pressure, 0.6, 5.0, xtol=1e-10)
        except ValueError:  # outside the fitted range
            continue
        out.append({"T_m": float(t), "source": source})
    return out
