"""Label stage with real PySCF (small bases): energies vs PySCF called directly, forces vs finite differences,
units, warm start, cache, parallel == serial, failures as data, and every bad input's clear error.

References: "PySCF called directly" = the same method built by hand with ``pyscf.gto.M`` (Å input);
unit constants are CODATA 2018 (NIST); D3(BJ) energies come from ``pyscf.dispersion.dftd3`` directly.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr
from ase import Atoms
from pydantic import ValidationError

from hmc_core.configurations import from_atoms, make_configurations, read_netcdf, write_netcdf
from tasks import pyscf_adapter
from tasks.label import LabelInputError, LabelSettings, label_atoms, label_configurations, label_file, successful
from tasks.pyscf_adapter import FORCE_EV_ANGSTROM, HARTREE_EV, run_label, scf_run_count

WATER = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])  # Å, near equilibrium
WATER_Z = np.array([8, 1, 1])
# One thread per process: tiny molecules gain nothing from more, and spinning threads crawl on a busy machine.
HF_STO3G = LabelSettings(method="hf", basis="sto-3g", density_fit=False, threads_per_worker=1)
PBE_STO3G = LabelSettings(method="dft", functional="pbe", basis="sto-3g", grid_level=1, threads_per_worker=1)


def perturbed_waters(n: int, sigma: float = 0.03, seed: int = 0) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    return [Atoms(numbers=WATER_Z, positions=WATER + rng.normal(0.0, sigma, WATER.shape)) for _ in range(n)]


def direct_pyscf(positions: np.ndarray, settings: LabelSettings, spin: int = 0, species=WATER_Z) -> float:
    """Total energy (Hartree) with PySCF called by hand (Å input)."""
    from pyscf import dft, gto, mp, scf

    symbols = {1: "H", 8: "O", 3: "Li"}
    mol = gto.M(atom=[(symbols[int(z)], tuple(p)) for z, p in zip(species, positions, strict=True)],
                basis=settings.basis, unit="Angstrom", spin=spin, verbose=0)
    if settings.method == "dft":
        mf = (dft.RKS if spin == 0 else dft.UKS)(mol, xc=settings.functional)
        mf.grids.level = settings.grid_level
    else:
        mf = (scf.RHF if spin == 0 else scf.UHF)(mol)
    if settings.dispersion:
        mf.disp = settings.dispersion
    if settings.density_fit:
        mf = mf.density_fit()
    mf.conv_tol = 1e-11
    energy = mf.kernel()
    if settings.method == "mp2":
        return mp.MP2(mf).kernel()[0] + energy
    return energy


def test_unit_constants_are_codata_2018():
    import ase.units

    assert HARTREE_EV == 27.211386245988  # NIST CODATA 2018: 1 Eh = 27.211386245988 eV
    assert pyscf_adapter.BOHR_ANGSTROM == 0.529177210903  # NIST CODATA 2018: a0 = 0.529177210903 Å
    assert FORCE_EV_ANGSTROM == pytest.approx(51.422067476, rel=1e-10)  # Eh/a0 in eV/Å
    assert HARTREE_EV == pytest.approx(ase.units.Hartree, rel=1e-8)  # ASE uses CODATA 2014: differs by 8e-9


@pytest.mark.parametrize("settings", [HF_STO3G, PBE_STO3G], ids=["hf", "pbe-df"])
def test_energy_matches_pyscf_called_directly(settings):
    tight = settings.model_copy(update={"conv_tol": 1e-11})
    ds = label_configurations(make_configurations([WATER], [WATER_Z]), tight)
    assert ds["status"].values[0] == "ok"
    assert ds["energy"].values[0] / HARTREE_EV == pytest.approx(direct_pyscf(WATER, tight), abs=1e-8)
    assert ds["energy"].attrs["units"] == "eV" and ds.attrs["label_method"] == settings.method
    assert ds.attrs["pyscf_version"] and ds.attrs["label_basis"] == "sto-3g"


def test_open_shell_uses_unrestricted_and_matches_direct():
    oh = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.97]])
    settings = HF_STO3G.model_copy(update={"spin": 1, "conv_tol": 1e-11})
    ds = label_configurations(make_configurations([oh], [[8, 1]]), settings)
    assert ds["energy"].values[0] / HARTREE_EV == pytest.approx(
        direct_pyscf(oh, settings, spin=1, species=[8, 1]), abs=1e-8)


def _fd_forces(settings: LabelSettings, positions: np.ndarray, components, h: float = 1e-3) -> np.ndarray:
    """−dE/dx (eV/Å) by central differences of the labeled energy for (atom, axis) ``components``; step ``h`` Å."""
    forces = np.full_like(positions, np.nan)
    for i, a in components:
        e = []
        for sign in (1, -1):
            p = positions.copy()
            p[i, a] += sign * h
            e.append(run_label(WATER_Z, p, np.zeros((3, 3)), np.zeros(3, bool), settings).energy)
        forces[i, a] = -(e[0] - e[1]) / (2 * h)
    return forces


ALL_COMPONENTS = [(i, a) for i in range(3) for a in range(3)]


@pytest.mark.parametrize("settings, components", [(HF_STO3G, ALL_COMPONENTS), (PBE_STO3G, [(0, 2), (1, 1), (2, 0)])],
                         ids=["hf", "pbe-df"])
def test_forces_equal_central_finite_differences(settings, components):
    tight = settings.model_copy(update={"conv_tol": 1e-12})
    geometry = perturbed_waters(1, sigma=0.05, seed=3)[0].positions
    result = run_label(WATER_Z, geometry, np.zeros((3, 3)), np.zeros(3, bool), tight)
    assert result.status == "ok"
    assert np.abs(result.forces.sum(axis=0)).max() < 1e-4  # no net force on an isolated molecule
    fd = _fd_forces(tight, geometry, components)
    checked = np.isfinite(fd)
    np.testing.assert_allclose(result.forces[checked], fd[checked], atol=1e-4)


def test_warm_start_same_energy_fewer_cycles(tmp_path):
    settings = LabelSettings(method="dft", functional="pbe", basis="6-31g", conv_tol=1e-10, threads_per_worker=1)
    first, moved = perturbed_waters(2, sigma=0.03, seed=1)
    seeded = label_atoms([first], settings, cache_dir=tmp_path)  # warm starts come from the cache's labels
    warm = label_atoms([moved], settings, cache_dir=tmp_path)
    cold = label_atoms([moved], settings.model_copy(update={"warm_start": False}))
    assert seeded["warm_start"].values.tolist() == [0] and warm["warm_start"].values.tolist() == [1]
    assert cold["warm_start"].values.tolist() == [0]
    assert 0 < warm["warm_start_rmsd"].values[0] < 0.2
    assert warm["scf_cycles"].values[0] < cold["scf_cycles"].values[0]
    assert abs(warm["energy"].values[0] - cold["energy"].values[0]) / HARTREE_EV <= 1e-8
    # Configurations of the same call are never each other's guess: the choice cannot depend on scheduling.
    both = label_atoms([first, moved], settings, cache_dir=tmp_path / "empty")
    assert both["warm_start"].values.tolist() == [0, 0]
    # Nor are configurations that other calls label at the same time (Dask batches of one iteration).
    from tasks.label_cache import rmsd

    third = perturbed_waters(3, sigma=0.03, seed=1)[2]
    assert rmsd(third.positions, first.positions) < settings.warm_start_max_rmsd  # would be a source otherwise
    alongside = label_atoms([third], settings, cache_dir=tmp_path, labeled_alongside=from_atoms([first, moved]))
    assert alongside["warm_start"].values.tolist() == [0]


def test_cache_second_call_does_no_scf_and_parallel_equals_serial(tmp_path):
    atoms = perturbed_waters(4, seed=2)
    settings = HF_STO3G.model_copy(update={"conv_tol": 1e-11})
    serial = label_atoms(atoms, settings)
    parallel = label_atoms(atoms, settings, cache_dir=tmp_path, n_workers=2)  # spawned workers write the cache
    assert parallel["status"].values.tolist() == ["ok"] * 4 and parallel["cache_hit"].values.sum() == 0
    np.testing.assert_array_equal(parallel["energy"].values, serial["energy"].values)  # bit for bit
    np.testing.assert_array_equal(parallel["forces"].values, serial["forces"].values)
    assert len(list(tmp_path.rglob("*.npz"))) == 4  # each finished label is its own file
    before = scf_run_count()
    again = label_atoms(atoms, settings, cache_dir=tmp_path)  # a new call in another process: all from disk
    assert scf_run_count() == before
    assert again["cache_hit"].values.tolist() == [1] * 4
    np.testing.assert_array_equal(again["energy"].values, parallel["energy"].values)
    np.testing.assert_array_equal(again["forces"].values, parallel["forces"].values)
    # A different method is a different key: it computes.
    other = label_atoms(atoms[:1], settings.model_copy(update={"basis": "6-31g"}), cache_dir=tmp_path)
    assert other["cache_hit"].values.tolist() == [0] and scf_run_count() == before + 1


def test_labels_are_bit_identical_whatever_the_worker_count_with_warm_starts(tmp_path):
    """Issue 15 §2: the same configurations labeled by 1 and by 2 worker processes, both warm-started from
    the same cache content, give bit-identical energies and forces (PBE with density fitting: grids, DF and
    BLAS all on one thread per calculation)."""
    import shutil

    settings = PBE_STO3G.model_copy(update={"threads_per_worker": None})  # the default thread choice
    seed_atoms, batch = perturbed_waters(1, seed=11), perturbed_waters(3, sigma=0.02, seed=12)
    label_atoms(seed_atoms, settings, cache_dir=tmp_path / "one")
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    one = label_atoms(batch, settings, cache_dir=tmp_path / "one", n_workers=1)
    two = label_atoms(batch, settings, cache_dir=tmp_path / "two", n_workers=2)
    assert one["warm_start"].values.tolist() == [1] * 3 and two["warm_start"].values.tolist() == [1] * 3
    np.testing.assert_array_equal(one["warm_start_rmsd"].values, two["warm_start_rmsd"].values)
    np.testing.assert_array_equal(one["energy"].values, two["energy"].values)
    np.testing.assert_array_equal(one["forces"].values, two["forces"].values)


def test_non_convergence_is_recorded_as_failed_and_batch_continues():
    atoms = perturbed_waters(2, seed=4)
    stuck = HF_STO3G.model_copy(update={"max_cycle": 2, "scf_ladder": ()})
    ds = label_atoms(atoms, stuck)
    assert ds["status"].values.tolist() == ["failed", "failed"]
    assert "not converged" in str(ds["reason"].values[0]) and "ladder disabled" in str(ds["reason"].values[0])
    assert np.isnan(ds["energy"].values).all() and np.isnan(ds["forces"].values).all()
    assert successful(ds).sizes["config"] == 0
    rescued = label_atoms(atoms[:1], HF_STO3G.model_copy(update={"max_cycle": 2, "scf_ladder": ("more_cycles",)}))
    plain = label_atoms(atoms[:1], HF_STO3G)
    assert rescued["status"].values[0] == "ok" and rescued["scf_ladder_step"].values[0] == "more_cycles"
    assert rescued["energy"].values[0] == pytest.approx(plain["energy"].values[0], abs=1e-6)


def test_newton_step_converges():
    atoms = perturbed_waters(1, seed=5)
    newton = label_atoms(atoms, HF_STO3G.model_copy(update={"max_cycle": 1, "scf_ladder": ("newton",)}))
    plain = label_atoms(atoms, HF_STO3G)
    assert newton["scf_ladder_step"].values[0] == "newton"
    assert newton["energy"].values[0] == pytest.approx(plain["energy"].values[0], abs=1e-6)
    np.testing.assert_allclose(newton["forces"].values, plain["forces"].values, atol=1e-4)


def test_d3bj_changes_the_energy_by_the_pyscf_dispersion_value():
    from pyscf import gto
    from pyscf.dispersion import dftd3

    plain = label_configurations(make_configurations([WATER], [WATER_Z]), PBE_STO3G)
    d3 = label_configurations(make_configurations([WATER], [WATER_Z]),
                              PBE_STO3G.model_copy(update={"dispersion": "d3bj"}))
    mol = gto.M(atom=[("O", WATER[0]), ("H", WATER[1]), ("H", WATER[2])], basis="sto-3g", verbose=0)
    e_disp = float(dftd3.DFTD3Dispersion(mol, xc="pbe", version="d3bj").get_dispersion()["energy"])
    assert e_disp < 0
    assert (d3["energy"].values[0] - plain["energy"].values[0]) / HARTREE_EV == pytest.approx(e_disp, abs=1e-8)
    assert d3.attrs["label_dispersion"] == "d3bj"


def test_mp2_energy_matches_direct_and_forces_match_finite_differences():
    settings = LabelSettings(method="mp2", basis="sto-3g", density_fit=False, conv_tol=1e-12, threads_per_worker=1)
    geometry = perturbed_waters(1, sigma=0.05, seed=6)[0].positions
    result = run_label(WATER_Z, geometry, np.zeros((3, 3)), np.zeros(3, bool), settings)
    assert result.energy / HARTREE_EV == pytest.approx(direct_pyscf(geometry, settings), abs=1e-8)
    fd = _fd_forces(settings, geometry, [(0, 2), (1, 1)])  # two components keep the test quick
    checked = np.isfinite(fd)
    np.testing.assert_allclose(result.forces[checked], fd[checked], atol=1e-4)


def test_output_keeps_schema_round_trips_netcdf_and_label_file(tmp_path):
    from ase.io import write

    atoms = perturbed_waters(2, seed=7)
    write(tmp_path / "in.extxyz", atoms)
    ds = label_file(tmp_path / "in.extxyz", HF_STO3G, tmp_path / "labels.nc")
    back = read_netcdf(tmp_path / "labels.nc")
    for name in ("positions", "species", "n_atoms", "cell", "pbc", "energy", "forces", "scf_cycles"):
        np.testing.assert_array_equal(back[name].values, ds[name].values)
    assert back["status"].values.tolist() == ["ok", "ok"] and back.attrs["label_method"] == "hf"
    write_netcdf(ds, tmp_path / "again.nc")


# --- bad input: a clear error before any SCF -------------------------------------------------------------


@pytest.mark.parametrize("positions, species, settings, match", [
    ([[0, 0, 0], [0, 0, 0.2]], [1, 1], HF_STO3G, "0.200 Å apart, closer than min_distance"),
    ([[0, 0, 0], [0, 0, np.nan]], [1, 1], HF_STO3G, "NaN or inf"),
    ([[0, 0, 0], [0, 0, np.inf]], [1, 1], HF_STO3G, "NaN or inf"),
    ([[0, 0, 0]], [92], HF_STO3G, "element U .* not covered by basis 'sto-3g'"),
    ([[0, 0, 0], [0, 0, 0.97]], [8, 1], HF_STO3G, "9 electrons .* spin 2S=0"),
    ([[0, 0, 0]], [1], HF_STO3G.model_copy(update={"charge": 1}), "leaves 0 electrons"),
    ([[0, 0, 0], [0, 0, 0.74]], [1, 1], HF_STO3G.model_copy(update={"spin": 4}), "lower the spin"),
], ids=["too-close", "nan", "inf", "element-not-in-basis", "odd-electrons", "no-electrons", "spin-too-high"])
def test_bad_configuration_is_refused_before_any_scf(positions, species, settings, match):
    before = scf_run_count()
    good = make_configurations([WATER], [WATER_Z])
    bad = make_configurations([np.array(positions, float)], [species])
    from hmc_core.configurations import concat

    with pytest.raises(LabelInputError, match=match):
        label_configurations(concat([bad, good]), settings)  # the good config is not computed either
    assert scf_run_count() == before


@pytest.mark.parametrize("update, match", [
    ({"method": "ccsd"}, "method"),
    ({"basis": "no-such-basis"}, "unknown basis 'no-such-basis'"),
    ({"functional": "no-such-xc"}, "unknown functional 'no-such-xc'"),
    ({"method": "mp2"}, "density_fit=False"),
    ({"method": "mp2", "density_fit": False, "dispersion": "d3bj"}, "dispersion=None"),
    ({"dispersion": "d5"}, "dispersion"),
    ({"functional": "lda", "dispersion": "d3bj"}, "no parameters for 'lda'"),
    ({"spin": -1}, "spin"),
    ({"min_distance": 0}, "min_distance"),
    ({"n_workrs": 2}, "n_workrs"),
])
def test_bad_settings_are_refused_with_a_clear_error(update, match):
    with pytest.raises(ValidationError, match=match):
        LabelSettings(**update)


def test_empty_input_is_refused():
    with pytest.raises(LabelInputError, match="empty"):
        label_atoms([], HF_STO3G)
    empty = make_configurations([], [])
    with pytest.raises(LabelInputError, match="empty"):
        label_configurations(empty, HF_STO3G)


@pytest.mark.parametrize("settings, pbc, match", [
    (HF_STO3G, [True, True, True], "need GTH pseudopotentials and a GTH basis"),
    (HF_STO3G, [True, True, False], "partly periodic"),
    (LabelSettings(method="mp2", basis="gth-szv", density_fit=False), [True] * 3, "no periodic MP2"),
    (LabelSettings(functional="b3lyp", basis="gth-szv"), [True] * 3, "'b3lyp' has no periodic nuclear gradients"),
    (LabelSettings(basis="gth-szv", dispersion="d3bj"), [True] * 3, "dispersion 'd3bj' is not wired"),
])
def test_unsupported_periodic_setups_are_refused_naming_what_is_supported(settings, pbc, match):
    ds = make_configurations([np.array([[0, 0, 0], [0, 0, 0.74]])], [[1, 1]], cells=[np.eye(3) * 4.0], pbc=[pbc])
    with pytest.raises(LabelInputError, match=match) as info:
        label_configurations(ds, settings)
    assert "supported for periodic cells" in str(info.value)


def test_labels_replace_existing_energies_and_keep_other_variables():
    ds = from_atoms(perturbed_waters(1, seed=8))
    ds["energy"] = ("config", [123.0])
    ds["start"] = ("config", np.array([7], np.int32))
    out = label_configurations(ds, HF_STO3G)
    assert out["energy"].values[0] != 123.0 and out["start"].values[0] == 7
    assert isinstance(out, xr.Dataset) and out["wall_time"].values[0] > 0


def test_periodic_gamma_point_forces_equal_finite_differences():
    """H2 in a 3 Å box, PBE/gth-szv at Γ (FFTDF, 400 eV cutoff: coarse, so forces carry an egg-box term, which
    the analytic gradient includes): the labeled force equals central differences of the labeled energy."""
    settings = LabelSettings(method="dft", functional="pbe", basis="gth-szv", conv_tol=1e-11, pbc_ke_cutoff=400.0,
                             threads_per_worker=1)
    pos = np.array([[0.0, 0.0, 0.0], [0.74, 0.1, 0.05]])
    ds = label_configurations(make_configurations([pos], [[1, 1]], cells=[np.eye(3) * 3.0], pbc=[[True] * 3]),
                              settings)
    assert ds["status"].values[0] == "ok"
    h = 5e-4
    e = []
    for sign in (1, -1):
        p = pos.copy()
        p[1, 0] += sign * h
        e.append(run_label(np.array([1, 1]), p, np.eye(3) * 3.0, np.ones(3, bool), settings).energy)
    assert ds["forces"].values[0, 1, 0] == pytest.approx(-(e[0] - e[1]) / (2 * h), abs=1e-4)


@pytest.mark.slow
def test_killed_worker_loses_only_the_label_in_flight(tmp_path):
    """SIGKILL one worker mid-batch: finished labels are already on disk, the batch still completes."""
    import multiprocessing
    import signal
    import threading
    import time

    atoms = perturbed_waters(12, seed=9)
    result = {}
    runner = threading.Thread(target=lambda: result.update(
        ds=label_atoms(atoms, HF_STO3G, cache_dir=tmp_path, n_workers=2)))
    runner.start()
    deadline = time.monotonic() + 120
    while not list(tmp_path.rglob("*.npz")) and time.monotonic() < deadline:
        time.sleep(0.02)
    on_disk = {p.name for p in tmp_path.rglob("*.npz")}
    workers = multiprocessing.active_children()
    assert on_disk and workers
    os.kill(workers[0].pid, signal.SIGKILL)
    runner.join(300)
    ds = result["ds"]
    assert ds["status"].values.tolist() == ["ok"] * 12  # the lost ones were redone by a fresh pool
    assert on_disk <= {p.name for p in tmp_path.rglob("*.npz")}
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written entries left behind


def test_prefect_task_wraps_the_stage_function():
    """The campaign flow calls ``label_task`` (exercised end to end in the campaign tests); it is ``run_label``."""
    from tasks.label import label_task, run_label

    assert label_task.fn is run_label and label_task.name == "label"


def test_run_label_counts_ok_and_failed(tmp_path):
    """The stage function labels through label_configurations (the same numbers) and counts usable labels."""
    from hmc_core.configurations import make_configurations
    from tasks.label import LabelInputs, run_label

    configs = make_configurations([np.array([[0, 0, 0], [0, 0, 0.74]]), np.array([[0.0, 0, 0], [0, 0, 0.80]])],
                                  [np.array([1, 1]), np.array([1, 1])])
    settings = LabelSettings(method="hf", basis="sto-3g", density_fit=False)
    result = run_label(LabelInputs(configs, str(tmp_path / "cache")), settings)
    assert result.n_ok == 2 and result.n_failed == 0
    direct = label_configurations(configs, settings)
    np.testing.assert_array_equal(result.labels["energy"].values, direct["energy"].values)
