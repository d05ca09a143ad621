"""Calibration of the extrapolation grade to force errors (issue 17 §1): the power law recovers a known error
model and its bands cover what they claim on fresh data; a threshold in eV/Å maps to the grade the calibration
predicts; a cluster-cut argon campaign with ``[selection] force_error_threshold`` stores its pairs, map and
held-out coverage per iteration and selects above the mapped grade; bad input is a clear error."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from flows.calibration import label_pairs, metrics_columns, selection_threshold
from hmc_core.uncertainty.calibration import CalibrationError, PowerLawCalibration
from tasks.select import SelectionSettings
from tests.test_cluster_campaign import CRYSTAL


def _synthetic(rng, n, a=0.02, b=0.8, s=0.3):
    u = np.exp(rng.uniform(0.0, np.log(50.0), n))
    return u, a * u ** b * np.exp(rng.normal(0.0, s, n))


def test_power_law_recovers_a_known_error_model_with_honest_bands():
    rng = np.random.default_rng(0)
    cal = PowerLawCalibration.fit(*_synthetic(rng, 4000))
    assert cal.a == pytest.approx(0.02, rel=0.05) and cal.b == pytest.approx(0.8, abs=0.02)
    assert cal.s == pytest.approx(0.3, abs=0.01) and cal.n == 4000 and 1.0 <= cal.u_min < cal.u_max <= 50.0
    fresh = _synthetic(rng, 4000)
    assert 0.935 <= cal.coverage(*fresh, level=0.95) <= 0.965
    assert 0.66 <= cal.coverage(*fresh, level=0.68) <= 0.70
    # a miscalibrated map (scatter underestimated 3×) covers far less than it claims
    narrow = PowerLawCalibration(cal.a, cal.b, cal.s / 3, cal.n, cal.u_min, cal.u_max)
    assert narrow.coverage(*fresh, level=0.95) < 0.6
    lo, hi = cal.band([1.0, 10.0], 0.95)
    np.testing.assert_allclose(hi / cal.median([1.0, 10.0]), np.exp(1.959964 * cal.s), rtol=1e-6)
    np.testing.assert_allclose(lo * hi, cal.median([1.0, 10.0]) ** 2, rtol=1e-12)


def test_a_threshold_in_eV_per_A_maps_to_the_predicted_grade():
    cal = PowerLawCalibration(a=0.02, b=0.8, s=0.3, n=100, u_min=1.0, u_max=50.0)
    u = cal.uncertainty_for_error(0.1)
    assert u == pytest.approx((0.1 / 0.02) ** (1 / 0.8)) and cal.median(u) == pytest.approx(0.1)
    settings = SelectionSettings(threshold=2.0, break_threshold=20.0, force_error_threshold=0.1)
    assert selection_threshold(settings, cal) == (pytest.approx(u), "force_error_threshold")
    # clipped to [1, break_threshold)
    low = SelectionSettings(threshold=2.0, break_threshold=20.0, force_error_threshold=0.001)
    assert selection_threshold(low, cal) == (1.0, "force_error_threshold")
    high = SelectionSettings(threshold=2.0, break_threshold=5.0, force_error_threshold=10.0)
    gamma, _ = selection_threshold(high, cal)
    assert 4.999 < gamma < 5.0
    # no calibration yet, or an error that does not grow with the grade: the grade threshold, saying why
    assert selection_threshold(settings, None) == (2.0, "threshold (no calibration yet)")
    flat = PowerLawCalibration(a=0.02, b=-0.1, s=0.3, n=100, u_min=1.0, u_max=50.0)
    gamma, why = selection_threshold(settings, flat)
    assert gamma == 2.0 and "does not grow with the uncertainty" in why
    assert selection_threshold(SelectionSettings(threshold=3.0, break_threshold=9.0), cal) == (3.0, "threshold")


def test_bad_input():
    with pytest.raises(CalibrationError, match="4 usable"):
        PowerLawCalibration.fit([1, 2, 3, 4, np.nan], [0.1, 0.2, 0.3, 0.4, 0.5])
    with pytest.raises(CalibrationError, match="same uncertainty"):
        PowerLawCalibration.fit([2.0] * 6, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    with pytest.raises(ValueError, match="same length"):
        PowerLawCalibration.fit([1, 2], [0.1])
    cal = PowerLawCalibration(a=0.02, b=0.8, s=0.3, n=100, u_min=1.0, u_max=50.0)
    with pytest.raises(ValueError, match="must be > 0 eV/Å"):
        cal.uncertainty_for_error(0.0)
    with pytest.raises(CalibrationError, match="does not grow"):
        PowerLawCalibration(0.02, 0.0, 0.3, 10, 1.0, 2.0).uncertainty_for_error(0.1)
    with pytest.raises(ValueError, match="level"):
        cal.band(2.0, 1.0)
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="force_error_threshold"):
            SelectionSettings(force_error_threshold=bad)
    assert np.isnan(cal.coverage([np.nan], [0.1]))


CALIBRATED = {"budget = 3": "budget = 8\nforce_error_threshold = 0.00043", "max_iterations = 2": "max_iterations = 3",
              "temperatures = [60.0]": "temperatures = [60.0, 120.0]", "n_samples = 4": "n_samples = 6"}


@pytest.fixture(scope="module")
def calibrated_campaign(prefect_api, tmp_path_factory):
    from flows.active_learning import active_learning

    tmp = tmp_path_factory.mktemp("calibrated")
    text = CRYSTAL.format(run=f"cal-{uuid.uuid4().hex[:8]}", buffer=2.5)
    for old, new in CALIBRATED.items():
        assert old in text
        text = text.replace(old, new)
    (tmp / "c.toml").write_text(text)
    summary = active_learning(config_path=str(tmp / "c.toml"), directory=str(tmp / "run"), ui_plots=False)
    return tmp, summary


def test_campaign_calibrates_each_iteration_and_selects_above_the_mapped_grade(calibrated_campaign):
    from flows.config import load_config
    from flows.plots import reliability_figure
    from flows.store import CampaignStore

    tmp, summary = calibrated_campaign
    store = CampaignStore(tmp / "run")
    cfg = load_config(tmp / "c.toml")
    metrics = store.read_metrics()
    assert summary["finished"] and list(metrics["iteration"].values) == [0, 1, 2, 3]

    # iteration 0: no pairs yet, the grade threshold applies
    first = store.read_json("calibration.json", 0)
    assert first["calibration"] is None and first["threshold_source"] == "threshold (no calibration yet)"
    assert metrics["threshold_gamma"].values[0] == cfg.selection.threshold

    # iteration 1: the pairs are iteration 0's labels and that iteration's errors, recomputed here
    second = store.read_json("calibration.json", 1)
    direct = label_pairs(store, 0)
    assert len(direct["grade"]) >= 5 and second["pairs"]["grade"] == direct["grade"]
    np.testing.assert_allclose(second["pairs"]["error"], direct["error"], rtol=1e-12)
    cal = PowerLawCalibration.fit(direct["grade"], direct["error"])
    assert second["calibration"] == pytest.approx(cal.as_dict())
    gamma, source = selection_threshold(cfg.selection, cal)
    assert second["threshold_gamma"] == pytest.approx(gamma) and second["threshold_source"] == source
    assert metrics_columns(second)["calibration_b"] == pytest.approx(cal.b)
    assert metrics["threshold_gamma"].values[1] == pytest.approx(second["threshold_gamma"])
    # the select and cut stages of iteration 1 used that grade
    assert 1.0 < second["threshold_gamma"] < cfg.selection.threshold + 1 and source == "force_error_threshold"
    assert store.read_dataset("pool_summary.nc", 1).attrs["selection_threshold"] == pytest.approx(
        second["threshold_gamma"])

    # iteration 1 found nothing above that grade here (the 108-atom crystal is learned after one round), so the
    # held-out coverage is checked on a copy given labels at iteration 1: real labels of iteration 0 whose errors
    # iteration 1's potential then makes; iteration 2's calibration judges iteration 1's map on them
    import shutil

    copy = CampaignStore(shutil.copytree(tmp / "run", tmp / "heldout"))
    extra = copy.read_labels()
    extra = extra.isel(config=np.flatnonzero(extra["iteration"].values == 0))
    copy.add_labels(extra.drop_vars(["iteration", "origin"]), iteration=1, origin="candidate")
    copy.path("calibration.json", 2).unlink()
    from flows.calibration import calibrate

    third = calibrate(cfg, copy, 2)
    new = label_pairs(copy, 1)
    assert len(new["grade"]) == len(direct["grade"]) and new["grade"] == direct["grade"]
    held = PowerLawCalibration(**second["calibration"])
    assert third["heldout_coverage_95"] == pytest.approx(held.coverage(new["grade"], new["error"], 0.95))
    assert third["heldout_coverage_68"] == pytest.approx(held.coverage(new["grade"], new["error"], 0.68))
    assert third["n_heldout"] == len(new["grade"]) and 0 <= third["heldout_coverage_95"] <= 1
    assert len(third["pairs"]["grade"]) == len(direct["grade"]) + len(new["grade"])
    assert third["pairs"]["iteration"] == [0] * len(direct["grade"]) + [1] * len(new["grade"])
    assert metrics_columns(third)["calibration_heldout_coverage_95"] == pytest.approx(third["heldout_coverage_95"])
    assert np.isnan(metrics["calibration_heldout_coverage_95"].values[2])  # the real campaign had none
    fig = reliability_figure(store)
    assert fig is not None and "grade calibration" in fig.axes[0].get_title()
