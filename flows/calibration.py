"""The campaign's calibration of the extrapolation grade to force errors (eV/Å), iteration by iteration.

At the start of iteration ``i`` (after its fit), the labels of iteration ``i − 1`` give new pairs: the grade their
configuration had when it was selected (a cluster cut: its centre atom's grade) and the force error that
iteration's potential then made on them (RMS over the fitted atoms, eV/Å). All pairs so far give the power-law map
of :mod:`hmc_core.uncertainty.calibration`; the map of iteration ``i − 1``, fitted before those pairs existed,
gives the held-out coverage of its 68 % / 95 % bands on them. Everything is written to the iteration's
``calibration.json`` (pairs included, so the next iteration only adds its own) and summarised in metrics.nc:
``calibration_a``, ``calibration_b``, ``calibration_s``, ``calibration_n``, ``calibration_heldout_coverage_68`` /
``_95`` (NaN until there is a held-out pair), ``threshold_gamma`` (the selection threshold used).

With ``[selection] force_error_threshold`` (eV/Å) the iteration selects above the grade whose median expected error
is that threshold (clipped to [1, break_threshold)), once a calibration exists; before that, and when the error
does not grow with the grade, ``[selection] threshold`` applies and the log says so. Per-system maps are fitted
where a system has enough pairs (``per_system`` in the JSON).
"""

from __future__ import annotations

import numpy as np

from hmc_core.uncertainty.calibration import MIN_PAIRS, CalibrationError, PowerLawCalibration

NAME = "calibration.json"


def label_pairs(store, iteration: int) -> dict[str, list]:
    """(grade, force error) pairs of the usable labels made at ``iteration`` (≥ 0), with their systems: the grade
    is ``centre_grade`` for a cluster cut, else ``grade``; the error is the RMS force error (eV/Å) of that
    iteration's potential over the fitted atoms (``force_weight`` > 0; all atoms without it)."""
    from hmc_core.mtp import read_mtp
    from hmc_core.mtp.fit import predict, usable_labels

    empty = {"grade": [], "error": [], "system": [], "iteration": []}
    labels = store.read_labels()
    if labels is None or not store.path("potential.mtp", iteration).exists():
        return empty
    mine = labels.isel(config=np.flatnonzero(labels["iteration"].values == iteration))
    mine = usable_labels(mine) if mine.sizes["config"] else mine
    if not mine.sizes["config"] or "forces" not in mine:
        return empty
    grade = np.asarray(mine["grade"].values, dtype=np.float64) if "grade" in mine else np.full(mine.sizes["config"],
                                                                                                np.nan)
    if "centre_grade" in mine:
        centre = np.asarray(mine["centre_grade"].values, dtype=np.float64)
        grade = np.where(np.isfinite(centre), centre, grade)
    mtp = read_mtp(store.path("potential.mtp", iteration))
    mtp.below_min_dist = "allow"
    diff = predict(mtp, mine)["forces"] - np.asarray(mine["forces"].values, dtype=np.float64)
    fitted = np.isfinite(diff).all(axis=-1)
    if "force_weight" in mine:
        w = np.asarray(mine["force_weight"].values, dtype=np.float64)
        fitted &= ~(w == 0)
    sq = np.where(fitted[..., None], diff, 0.0) ** 2
    n = fitted.sum(axis=1)
    error = np.where(n > 0, np.sqrt(sq.sum(axis=(1, 2)) / np.maximum(3 * n, 1)), np.nan)
    system = [str(v) for v in mine["system"].values] if "system" in mine else [""] * len(error)
    return {"grade": grade.tolist(), "error": error.tolist(), "system": system,
            "iteration": [int(iteration)] * len(error)}


def _fit(grade, error) -> tuple[PowerLawCalibration | None, str]:
    try:
        return PowerLawCalibration.fit(grade, error), ""
    except CalibrationError as exc:
        return None, str(exc)


def calibrate(cfg, store, it: int) -> dict:
    """Read (or compute and write) iteration ``it``'s ``calibration.json`` (see the module docstring) and return
    its content: ``pairs``, ``calibration`` (dict or None) and ``reason``, ``per_system``, in-sample
    ``coverage_68``/``_95``, held-out ``heldout_coverage_68``/``_95`` and ``n_heldout``, ``threshold_gamma``."""
    if store.has(NAME, it):
        return store.read_json(NAME, it)
    previous = store.read_json(NAME, it - 1) if it > 0 and store.has(NAME, it - 1) else None
    pairs = previous["pairs"] if previous else {"grade": [], "error": [], "system": [], "iteration": []}
    new = label_pairs(store, it - 1) if it > 0 else {"grade": [], "error": [], "system": [], "iteration": []}
    pairs = {k: list(pairs[k]) + list(new[k]) for k in pairs}
    out = {"pairs": pairs, "n_heldout": 0, "heldout_coverage_68": None, "heldout_coverage_95": None}
    old = previous.get("calibration") if previous else None
    if old is not None and new["grade"]:
        held = PowerLawCalibration(**old)
        out.update(n_heldout=len(new["grade"]), heldout_coverage_68=held.coverage(new["grade"], new["error"], 0.68),
                   heldout_coverage_95=held.coverage(new["grade"], new["error"], 0.95))
    cal, reason = _fit(pairs["grade"], pairs["error"])
    out.update(calibration=None if cal is None else cal.as_dict(), reason=reason,
               coverage_68=None if cal is None else cal.coverage(pairs["grade"], pairs["error"], 0.68),
               coverage_95=None if cal is None else cal.coverage(pairs["grade"], pairs["error"], 0.95))
    per_system = {}
    systems = np.asarray(pairs["system"], dtype=object)
    for name in sorted(set(pairs["system"]) - {""}):
        mine = systems == name
        if mine.sum() >= MIN_PAIRS and len(set(pairs["system"])) > 1:
            c, _ = _fit(np.asarray(pairs["grade"])[mine], np.asarray(pairs["error"])[mine])
            per_system[name] = None if c is None else c.as_dict()
    out["per_system"] = per_system
    out["threshold_gamma"], out["threshold_source"] = selection_threshold(cfg.selection, cal)
    store.write_json(NAME, out, it)
    return out


def selection_threshold(selection, calibration: PowerLawCalibration | None) -> tuple[float, str]:
    """The grade threshold of an iteration and where it comes from: ``selection.threshold`` ("threshold"), or,
    with ``force_error_threshold`` and a calibration, the grade whose median expected error is that threshold,
    clipped to [1, break_threshold) ("force_error_threshold", or "threshold (…)" saying why it fell back)."""
    err = getattr(selection, "force_error_threshold", None)
    if err is None:
        return float(selection.threshold), "threshold"
    if calibration is None:
        return float(selection.threshold), "threshold (no calibration yet)"
    try:
        u = calibration.uncertainty_for_error(err)
    except CalibrationError as exc:
        return float(selection.threshold), f"threshold ({exc})"
    ceiling = float(np.nextafter(selection.break_threshold, 0.0))
    return float(min(max(u, 1.0), ceiling)), "force_error_threshold"


def metrics_columns(content: dict) -> dict:
    """The metrics.nc columns of an iteration's calibration (NaN where there is none)."""
    cal = content.get("calibration") or {}

    def num(v):
        return float("nan") if v is None else float(v)

    return {"calibration_a": num(cal.get("a")), "calibration_b": num(cal.get("b")),
            "calibration_s": num(cal.get("s")), "calibration_n": int(cal.get("n", 0)),
            "calibration_heldout_coverage_68": num(content.get("heldout_coverage_68")),
            "calibration_heldout_coverage_95": num(content.get("heldout_coverage_95")),
            "threshold_gamma": float(content["threshold_gamma"])}


__all__ = ["NAME", "calibrate", "label_pairs", "metrics_columns", "selection_threshold"]
