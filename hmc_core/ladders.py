"""Heating and cooling ladders with NPT HMC and the melting-temperature bracket from their hysteresis.

Everything works in the potential's units: reduced LJ (T*, P*, ρ*) or metal (K, bar, Å) for the
built-in rare gases (:class:`hmc_core.phase_system.PhaseSystem`) and fitted MTPs
(:class:`hmc_core.mtp_phase.MTPSystem`, metal units). Results are xarray Datasets; the Prefect
flows in ``flows/phase.py`` only wire them together.

Melting bracket: a crystal that melts on heating at T₊ proves T_m < T₊ (superheating only raises
T₊); a liquid that crystallises on cooling at T₋ proves T_m > T₋. The hysteresis estimate
T_m ≈ T₊ + T₋ − √(T₊ T₋) is from Luo, Strachan & Swift, JCP 120, 11640 (2004).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

from hmc_core.npt import NPTConfig, NPTSampler, block_standard_error, run_npt_chain
from hmc_core.phase_analysis import OrderAnalysis
from hmc_core.phase_system import PhaseModel
from hmc_core.units import get_units


def run_ladder(system: PhaseModel, positions, cell, temperatures: Sequence[float], pressure: float,
               n_samples: int = 200, n_warmup: int = 50, n_steps: int = 10, dt: float | None = None,
               analyse_every: int = 20, seed: int = 0, volume_mode: str = "isotropic",
               pressure_unit: str | None = None, allow_negative_pressure: bool = False,
               progress: Callable[[str], None] | None = None) -> xr.Dataset:
    """Walk one NPT chain through ``temperatures`` in order (a heating or cooling ladder).

    At each temperature: ``n_warmup`` sweeps (dt and δ adapt), then ``n_samples`` production sweeps;
    order parameters every ``analyse_every`` sweeps. Temperatures in K or T*, pressure in bar or P*.
    Returns a Dataset over ``temperature`` with means and block standard errors of ``density``,
    ``enthalpy`` and ``potential_energy`` (per atom), ``solid_fraction``, ``largest_cluster``,
    structure fractions; traces ``density_trace`` (temperature, sample); the final configuration.
    ``progress(message)`` is called after each temperature (e.g. a logger's ``info``).
    """
    temps = [float(t) for t in temperatures]
    if not temps or min(temps) <= 0:
        raise ValueError(f"temperatures must be a non-empty list of positive numbers, got {temperatures}")
    npt = NPTConfig(pressure=pressure, pressure_unit=pressure_unit, mode=volume_mode,
                    allow_negative_pressure=allow_negative_pressure)
    x = np.asarray(positions, float)
    n = len(x)
    ff = system.force_field(n, cell)
    analysis = OrderAnalysis()
    state, rows, traces = None, [], []
    for t in temps:
        cfg = system.hmc_settings(t, n_steps, n_warmup, dt)
        sampler = NPTSampler(ff, cfg, npt)
        res = run_npt_chain(sampler, x, n_samples, seed=seed, save_every=analyse_every, analyse=analysis,
                            state=state)
        state = res.state
        p_int = sampler.pressure
        rho = n / res.volume
        h = (res.potential_energy + p_int * res.volume) / n + 1.5 * cfg.kT
        row = {"temperature": t, "density": rho.mean(), "density_se": block_standard_error(rho),
               "enthalpy": h.mean(), "enthalpy_se": block_standard_error(h),
               "potential_energy": res.potential_energy.mean() / n,
               "potential_energy_se": block_standard_error(res.potential_energy / n),
               "hmc_acceptance": res.hmc_acceptance, "volume_acceptance": res.volume_acceptance,
               "dt": res.final_dt}
        for key, values in res.analysis.items():
            row[key] = float(np.mean(values))
        row["solid_fraction_final"] = float(res.analysis["solid_fraction"][-1])
        rows.append(row)
        traces.append(rho)
        if progress is not None:
            progress(f"ladder T={t:g} ({len(rows)}/{len(temps)}): density {row['density']:.4f}, solid fraction "
                     f"{row['solid_fraction_final']:.3f}")
    units = get_units(system.units)
    data = {key: ("temperature", np.array([r[key] for r in rows])) for key in rows[0] if key != "temperature"}
    data["density_trace"] = (("temperature", "sample"), np.array(traces))
    data["final_positions"] = (("atom", "xyz"), state.hmc.positions.copy())
    data["final_cell"] = (("cell_vector", "xyz"), state.cell.copy())
    ds = xr.Dataset(data, coords={"temperature": temps, "xyz": ["x", "y", "z"]})
    for name, unit in (("density", f"1/{units.length}³"), ("enthalpy", f"{units.energy}/atom"),
                       ("potential_energy", f"{units.energy}/atom")):
        ds[name].attrs["units"] = unit
    ds["temperature"].attrs["units"] = units.temperature
    ds.attrs.update({**system.describe(), "pressure": pressure,
                     "pressure_unit": npt.pressure_unit or system.default_pressure_unit,
                     "n_atoms": n, "n_samples": n_samples, "n_warmup": n_warmup, "seed": seed,
                     "schema": "pesflow.phase_ladder/1"})
    return ds


def melt(system: PhaseModel, positions, cell, temperature: float, pressure: float, n_samples: int = 200,
         seed: int = 0, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Melt (or equilibrate) a configuration at one (T, P); returns its final positions (N, 3) and cell (3, 3)."""
    ds = run_ladder(system, positions, cell, [temperature], pressure, n_samples=n_samples, seed=seed, **kw)
    return ds["final_positions"].values, ds["final_cell"].values


def melting_bracket(heating: Sequence[xr.Dataset], cooling: Sequence[xr.Dataset], threshold: float = 0.5) -> dict:
    """Melting-temperature bracket from heating and cooling ladders (their ``solid_fraction_final``).

    T₊: lowest temperature at which a heated crystal ended below ``threshold`` solid (min over chains);
    T₋: highest temperature at which a cooled liquid ended above it (max over chains). Returns
    ``T_plus``, ``T_minus`` (NaN when not seen), ``bracket`` (T₋, T₊) and the Luo–Strachan–Swift
    estimate ``T_hysteresis`` = T₊ + T₋ − √(T₊ T₋).
    """
    def crossing(ds, melted: bool):
        t = ds["temperature"].values
        s = ds["solid_fraction_final"].values
        hit = (s < threshold) if melted else (s > threshold)
        return t[hit] if hit.any() else np.array([])

    plus = [crossing(ds, True) for ds in heating]
    minus = [crossing(ds, False) for ds in cooling]
    t_plus = min((float(v.min()) for v in plus if len(v)), default=float("nan"))
    t_minus = max((float(v.max()) for v in minus if len(v)), default=float("nan"))
    est = t_plus + t_minus - math.sqrt(t_plus * t_minus) if np.isfinite(t_plus + t_minus) else float("nan")
    return {"T_plus": t_plus, "T_minus": t_minus, "bracket": (t_minus, t_plus), "T_hysteresis": est}
