"""Label stage (tasks/label.py) details that mutation testing (``make mutation``, bench/mutation.py) found untested,
checked without any SCF: how :func:`tasks.label._assemble` turns outcomes into the labels dataset (variables,
dtypes, units, attributes, the "never an ok label with holes" rule) and the thread count of a calculation."""

from __future__ import annotations

import json

import numpy as np

from hmc_core.configurations import make_configurations
from tasks.label import LabelSettings, _assemble, calculation_threads
from tasks.label_worker import LabelOutcome

WATER = np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.469], [0.0, -0.757, -0.469]])


def _configs():
    return make_configurations([WATER, WATER[:2] * 1.1], [[8, 1, 1], [1, 1]])


def _ok(index, n, energy, cycles=7, wall=1.5, warm=False, rmsd=np.nan, ladder="none", hit=False, stability="stable"):
    forces = np.arange(n * 3, dtype=float).reshape(n, 3) * 0.1 + index
    return LabelOutcome(index, energy, forces, "ok", "", cycles, wall, warm, rmsd, ladder, hit, stability)


def test_assemble_variables_dtypes_units_and_attributes():
    settings = LabelSettings(method="dft", functional="pbe", basis="sto-3g", dispersion="d3bj", charge=0, spin=0)
    outcomes = [_ok(0, 3, -75.0, warm=True, rmsd=0.05, ladder="level_shift", hit=True),
                _ok(1, 2, -1.1, cycles=3, wall=0.25, stability="not checked")]
    out = _assemble(_configs(), outcomes, settings, "2.99")
    np.testing.assert_array_equal(out["energy"].values, [-75.0, -1.1])
    assert out["energy"].dtype == np.float64 and out["energy"].attrs == {"units": "eV"}
    assert out["forces"].dims == ("config", "atom", "xyz") and out["forces"].attrs == {"units": "eV/Å"}
    np.testing.assert_array_equal(out["forces"].values[0], outcomes[0].forces)
    np.testing.assert_array_equal(out["forces"].values[1, :2], outcomes[1].forces)
    assert np.all(np.isnan(out["forces"].values[1, 2]))  # padding atom
    assert out["status"].values.tolist() == ["ok", "ok"] and out["status"].dtype.kind == "U"
    assert out["reason"].values.tolist() == ["", ""] and out["reason"].dtype.kind == "U"
    assert out["scf_cycles"].values.tolist() == [7, 3] and out["scf_cycles"].dtype == np.int32
    assert out["wall_time"].values.tolist() == [1.5, 0.25] and out["wall_time"].attrs == {"units": "s"}
    assert out["wall_time"].dtype == np.float64
    assert out["warm_start"].values.tolist() == [1, 0] and out["warm_start"].dtype == np.int8
    assert out["warm_start_rmsd"].values[0] == 0.05 and np.isnan(out["warm_start_rmsd"].values[1])
    assert out["warm_start_rmsd"].attrs == {"units": "Å"} and out["warm_start_rmsd"].dtype == np.float64
    assert out["cache_hit"].values.tolist() == [1, 0] and out["cache_hit"].dtype == np.int8
    assert out["scf_ladder_step"].values.tolist() == ["level_shift", "none"]
    assert out["scf_stability"].values.tolist() == ["stable", "not checked"]
    for name in ("energy", "status", "reason", "scf_cycles", "wall_time", "warm_start", "warm_start_rmsd",
                 "cache_hit", "scf_ladder_step", "scf_stability"):
        assert out[name].dims == ("config",), name
    attrs = {k: v for k, v in out.attrs.items() if k.startswith("label_") or k == "pyscf_version"}
    settings_json = attrs.pop("label_settings")
    assert attrs == {"label_method": "dft", "label_functional": "pbe", "label_basis": "sto-3g",
                     "label_density_fit": 1, "label_dispersion": "d3bj", "label_charge": 0, "label_spin": 0,
                     "label_conv_tol_hartree": 1e-9, "pyscf_version": "2.99"}
    assert json.loads(settings_json) == json.loads(settings.model_dump_json())
    assert "energy" not in _configs()  # the input is not modified
    hf = _assemble(_configs(), outcomes, LabelSettings(method="hf", basis="sto-3g", density_fit=False), "2.99")
    assert hf.attrs["label_functional"] == "" and hf.attrs["label_dispersion"] == "none"
    assert hf.attrs["label_density_fit"] == 0 and hf.attrs["label_method"] == "hf"


def test_assemble_never_keeps_an_ok_label_with_holes():
    settings = LabelSettings(method="hf", basis="sto-3g")
    bad_energy = _ok(0, 3, np.nan)
    bad_forces = _ok(1, 2, -1.0)
    bad_forces.forces[0, 0] = np.inf
    out = _assemble(_configs(), [bad_energy, bad_forces], settings, "2.99")
    assert out["status"].values.tolist() == ["failed", "failed"]
    assert out["reason"].values.tolist() == ["non-finite or wrong-shaped label"] * 2
    assert np.isnan(out["energy"].values).all() and np.isnan(out["forces"].values).all()
    wrong_shape = LabelOutcome(1, -1.0, np.zeros((3, 3)), "ok", "", 1, 0.1, False, np.nan, "none", False)
    out = _assemble(_configs(), [_ok(0, 3, -75.0), wrong_shape], settings, "2.99")
    assert out["status"].values.tolist() == ["ok", "failed"]
    failed = LabelOutcome.failed(1, 2, "SCF did not converge", scf_cycles=50, wall_time=2.0)
    out = _assemble(_configs(), [_ok(0, 3, -75.0), failed], settings, "2.99")
    assert out["status"].values.tolist() == ["ok", "failed"] and out["reason"].values[1] == "SCF did not converge"
    assert out["scf_cycles"].values[1] == 50 and out["scf_ladder_step"].values[1] == "failed"


def test_calculation_threads_default_one():
    assert calculation_threads(LabelSettings()) == 1
    assert calculation_threads(LabelSettings(threads_per_worker=3)) == 3
