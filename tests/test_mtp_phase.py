"""The HMC phase flows on a fitted MTP (issue 16 §4): :class:`hmc_core.mtp_phase.MTPSystem` (relaxed or given
lattice constant, one species, metal units), the phase runs on it without Prefect, ``pesflow temper
--potential``, and ``pesflow coexist --potential`` end to end through Prefect on MLIP's level-10 fixture
(an fcc metal: its 0 K lattice constant is 3.590 Å, so it is sampled as Cu)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
CU = (29,)


@pytest.fixture(scope="module")
def level10(shared_data) -> Path:
    return shared_data / "mtp" / "cubic_level10.mtp"


def test_relaxed_lattice_constant_is_the_zero_pressure_minimum(level10):
    from hmc_core.mtp import read_mtp
    from hmc_core.mtp_phase import relaxed_lattice_constant
    from hmc_core.structures import lattice

    mtp = read_mtp(level10, species=list(CU))
    a = relaxed_lattice_constant(mtp, 29)
    assert a == pytest.approx(3.590, abs=2e-3)
    pos, cell = lattice("fcc", 3, 4.0 / a**3)
    stress = mtp.evaluate(pos, np.full(len(pos), 29), cell, (True, True, True))["stress"]
    assert np.max(np.abs(stress[:3])) < 2e-4  # eV/Å³ (≈ 0.3 kbar): dE/da = 0 means zero pressure at 0 K
    assert np.allclose(stress[3:], 0.0, atol=1e-9)


def test_mtp_system_units_species_and_refusals(level10, shared_data):
    from hmc_core.mtp_phase import FCC_A_PER_SIGMA, MTPSystem

    given = MTPSystem(str(level10), CU, 3.6)
    assert (given.units, given.element, given.mass, given.cutoff) == ("metal", "Cu", pytest.approx(63.546), 5.0)
    assert given.sigma * FCC_A_PER_SIGMA == pytest.approx(3.6) and given.lattice_constant_source == "given"
    relaxed = MTPSystem(str(level10), CU)
    assert relaxed.lattice_constant_source.startswith("relaxed") and relaxed.describe()["lattice_constant"] < 3.6
    assert given.potential() is not given.potential()  # one copy per force field (runs in parallel threads)
    cfg = given.hmc_settings(1000.0, 10, 5)
    assert cfg.units == "metal" and cfg.dt == 1.0
    with pytest.raises(ValueError, match="3 species; the phase studies are one-component"):
        MTPSystem(str(shared_data / "mtp" / "multi_level06.mtp"), (42, 3, 1), 3.6)
    with pytest.raises(ValueError, match="no minimum"):  # level 16 collapses below the fitted range
        MTPSystem(str(shared_data / "mtp" / "cubic_level16.mtp"), CU)
    with pytest.raises(ValueError, match="positive"):
        MTPSystem(str(level10), CU, -1.0)


def test_settings_fill_element_and_lattice_constant(level10):
    from pydantic import ValidationError

    from tasks.phase_settings import CoexistenceSettings

    s = CoexistenceSettings(potential=str(level10), species=CU, temperatures=(1000.0,), n_cells=(3, 3, 6))
    assert s.element == "Cu" and s.lattice_constant == pytest.approx(3.590, abs=2e-3)
    assert "cutoff_sigma" not in s.summary() and s.summary()["lattice_constant_source"].startswith("relaxed")
    assert s.system().lattice_constant == s.lattice_constant
    with pytest.raises(ValidationError, match="twice the MTP's cutoff"):
        CoexistenceSettings(potential=str(level10), species=CU, temperatures=(1000.0,), n_cells=(2, 2, 4))
    with pytest.raises(ValidationError, match="cutoff_sigma is the Lennard-Jones cutoff"):
        CoexistenceSettings(potential=str(level10), species=CU, cutoff_sigma=2.5)
    with pytest.raises(ValidationError, match="contradicts the potential file"):
        CoexistenceSettings(potential=str(level10), species=CU, element="Ar")


def test_coexistence_and_ladder_on_mtp(level10):
    """The phase runs themselves (no Prefect): a 216-atom Cu two-phase box grows at 1100 K and melts at 1500 K
    (the MLIP fixture's melting point lies between; real Cu: 1358 K); a heating ladder melts 108 atoms."""
    from hmc_core.coexistence import coexistence_bracket
    from hmc_core.mtp_phase import MTPSystem
    from tasks.phase import coexistence_run, ladder

    system = MTPSystem(str(level10), CU)
    runs = [coexistence_run(system, t, 1.0, (3, 3, 6), n_samples=20, analyse_every=5, n_melt=40, n_hold=5,
                            n_bulk=20, n_steps=10, seed=1, melt_temperature=4000.0) for t in (1100.0, 1500.0)]
    assert [ds.attrs["outcome"] for ds in runs] == ["grew", "melted"]
    assert coexistence_bracket(runs)["bracket"] == (1100.0, 1500.0)
    ds = runs[0]
    assert ds.attrs["units"] == "metal" and ds.attrs["pressure_unit"] == "bar" and "cutoff_sigma" not in ds.attrs
    assert ds["potential_energy"].attrs["units"] == "eV/atom" and ds.attrs["potential_file"].endswith(level10.name)
    assert 0.075 < ds.attrs["solid_density"] < 0.085  # Å⁻³ (Cu: 0.0847 at 300 K)
    heat = ladder(system, "heating", [800.0, 3000.0], 1.0, 3, n_samples=10, n_warmup=5, analyse_every=5)
    assert heat["solid_fraction_final"].values[0] > 0.5 > heat["solid_fraction_final"].values[1]
    assert heat["density"].attrs["units"] == "1/Å³" and heat.attrs["element"] == "Cu"


def test_temper_on_mtp_cluster(level10, tmp_path, capsys):
    from flows.cli import main

    out = tmp_path / "t.nc"
    argv = ["temper", "--potential", str(level10), "--species", "Cu", "--atoms", "13", "--t-min", "300",
            "--t-max", "1200", "--rungs", "3", "--sweeps", "10", "--warmup", "5", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert ds["temperature"].attrs["units"] == "K" and ds["potential_energy"].attrs["units"] == "eV"
    assert ds.attrs["radius_units"] == "Å" and "Cu13" in ds.attrs["system"]
    assert np.all(np.isfinite(ds["potential_energy"].values)) and "global_minimum_energy" not in ds.attrs
    assert list(np.unique(ds["species"].values)) == [29]


def test_coexist_command_on_a_fitted_mtp(level10, tmp_path):
    """`pesflow coexist --potential` end to end: its own Prefect server, the flow, netCDF, PNG and summary.json.
    30–45 s on the 2-core machine (7–11 s of it the server's start)."""
    out = tmp_path / "coexist"
    cmd = [str(Path(sys.executable).parent / "pesflow"), "coexist", "--potential", str(level10), "--species", "Cu",
           "--t-min", "1100", "--t-max", "1500", "--n-temperatures", "2", "--cells", "3", "3", "6",
           "--n-samples", "20", "--every", "5", "--melt-sweeps", "40", "--hold", "5", "--steps", "10",
           "--melt-temperature", "4000", "--out", str(out)]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    said = re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)  # the console writes to stderr
    assert "melting bracket: 1100.0 < T_m < 1500.0" in said, said[-1500:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["element"] == "Cu" and summary["reference_T_m"] is None
    assert [r["outcome"] for r in summary["runs"]] == ["grew", "melted"]
    assert summary["potential"].startswith("MTP level 10 from cubic_level10.mtp")
    combined = xr.open_dataset(out / "coexistence.nc", engine="h5netcdf")
    assert list(combined["temperature"].values) == [1100.0, 1500.0] and combined.attrs["units"] == "metal"
    assert (out / "coexistence.png").stat().st_size > 10_000
    assert sorted(p.name for p in (out / "runs").glob("*.nc")) == ["T1100.nc", "T1500.nc"]
