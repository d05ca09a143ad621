"""Label stage (tasks/label.py) details that mutation testing (``make mutation``, bench/mutation.py) found untested,
checked without any SCF: how :func:`tasks.label._assemble` turns outcomes into the labels dataset (variables,
dtypes, units, attributes, the "never an ok label with holes" rule) and the thread count of a calculation."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from hmc_core.configurations import ConfigurationError, make_configurations, validate
from tasks.label import (
    LabelInputError,
    LabelInputs,
    LabelSettings,
    _assemble,
    calculation_threads,
    check_batch,
    label_atoms,
    label_configurations,
    label_file,
    run_label,
)
from tasks.label_worker import LabelOutcome
from tasks.pyscf_adapter import scf_run_count

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


# --- input checks (check_batch): the exact refusal, named configuration, before any SCF ----------------------

H2 = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]])
HF = LabelSettings(method="hf", basis="sto-3g", density_fit=False, threads_per_worker=1)
PERIODIC = LabelSettings(method="dft", functional="pbe", basis="gth-szv", threads_per_worker=1)


def _refusal(configs, settings=HF) -> str:
    before = scf_run_count()
    with pytest.raises(LabelInputError) as info:
        label_configurations(configs, settings)
    assert scf_run_count() == before
    return str(info.value)


def _h2_then(positions, species, **kw):
    """A good H2 first, then the configuration under test (so messages must name config 1)."""
    return make_configurations([H2, np.asarray(positions, float)], [[1, 1], species], **kw)


def test_an_empty_or_dimensionless_dataset_is_refused_as_empty():
    assert _refusal(xr.Dataset()) == "nothing to label: the configurations dataset is empty"
    assert _refusal(make_configurations([], [])) == "nothing to label: the configurations dataset is empty"
    with pytest.raises(LabelInputError) as info:
        label_atoms([], HF)
    assert str(info.value) == "nothing to label: the list of structures is empty"


def test_a_schema_error_is_passed_on_with_its_own_message():
    bad = make_configurations([H2], [[1, 1]]).drop_vars("species")
    with pytest.raises(ConfigurationError) as schema:
        validate(bad)
    assert _refusal(bad) == str(schema.value) and "species" in str(schema.value)


def test_per_configuration_refusals_name_the_configuration_and_the_atoms():
    assert _refusal(_h2_then(np.zeros((0, 3)), [])) == "config 1 has no atoms"
    nan = np.zeros((12, 3)) + np.arange(12)[:, None] * 0.9
    nan[[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 0] = np.nan  # eleven atoms: only the first ten are listed
    nan[2, 1] = np.inf
    assert _refusal(_h2_then(nan, [1] * 12)) == ("config 1: positions of atoms [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] are "
                                                 "NaN or inf")
    one = H2.copy()
    one[1, 2] = np.nan  # atom 1, axis 2: the atom is named, not the axis
    assert _refusal(_h2_then(one, [1, 1])) == "config 1: positions of atoms [1] are NaN or inf"
    cell = make_configurations([H2, H2], [[1, 1], [1, 1]])
    cell["cell"].values[1, 0, 0] = np.nan
    assert _refusal(cell) == "config 1: the cell contains NaN or inf"
    assert _refusal(_h2_then(H2, [1, 1], cells=[np.zeros((3, 3)), np.eye(3) * 4.0],
                             pbc=[[False] * 3, [True, True, False]])).startswith("config 1: partly periodic cell")


def test_close_and_coincident_atoms():
    exactly = _refusal(_h2_then([[0, 0, 0], [0, 0, 0.1]], [1, 1]))  # 0.1 Å is "too close", not yet "coincide"
    assert exactly == ("config 1: atoms 0 and 1 are 0.100 Å apart, closer than min_distance 0.5 Å (a broken or "
                       "overlapping structure; lower min_distance only if this is intended)")
    same = _refusal(_h2_then([[0, 0, 0], [0.5, 0, 0], [0.5, 0, 0.05]], [1, 1, 1]))
    assert same == ("config 1: atoms 1 and 2 coincide (0.050 Å apart): a duplicated atom in the structure; remove "
                    "the copy")
    # Across the periodic boundary: 0.2 Å through the face of a 3 Å box (2.8 Å inside it).
    box = make_configurations([np.array([[0.1, 1.5, 1.5], [2.9, 1.5, 1.5]])], [[1, 1]], cells=[np.eye(3) * 3.0],
                              pbc=[[True] * 3])
    assert _refusal(box, PERIODIC).startswith("config 0: atoms 0 and 1 are 0.200 Å apart")


def test_charge_and_spin_refusals_and_hints():
    assert _refusal(make_configurations([H2[:1]], [[1]]), HF.model_copy(update={"charge": 1})) == (
        "config 0: charge 1 leaves 0 electrons")
    oh = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.97]])
    assert _refusal(_h2_then(oh, [8, 1])) == (
        "config 1: 9 electrons (charge 0) cannot have spin 2S=0; give a spin 2S with the parity of the electron "
        "count (spin=1 for a doublet, 3 for a quartet) or change the charge")
    assert _refusal(make_configurations([H2], [[1, 1]]), HF.model_copy(update={"spin": 1})) == (
        "config 0: 2 electrons (charge 0) cannot have spin 2S=1; give a spin 2S with the parity of the electron "
        "count (spin=0 for a closed shell, 2 for a triplet) or change the charge")
    assert _refusal(make_configurations([H2], [[1, 1]]), HF.model_copy(update={"spin": 4})) == (
        "config 0: 2 electrons (charge 0) cannot have spin 2S=4; lower the spin")


def test_one_electron_with_spin_one_is_accepted():
    check_batch(make_configurations([H2[:1]], [[1]]), HF.model_copy(update={"spin": 1}))  # a hydrogen atom


def test_periodic_checks_accept_a_good_cell_and_refuse_a_flat_one():
    # An H atom in a 1 Å cube (volume exactly 1 Å³; its nearest image 1 Å away) is a valid periodic system.
    check_batch(make_configurations([np.zeros((1, 3))], [[1]], cells=[np.eye(3)], pbc=[[True] * 3]),
                PERIODIC.model_copy(update={"spin": 1}))
    flat = np.diag([4.0, 4.0, 1e-8])
    assert _refusal(make_configurations([H2 + 1.0], [[1, 1]], cells=[flat], pbc=[[True] * 3]), PERIODIC) == (
        "config 0 is periodic but its cell has zero volume; give the lattice vectors")


def test_periodic_water_with_a_gth_basis_passes_the_element_check():
    """Bug found by a surviving mutant: every element was also checked by the open-boundary rule (core functions
    or an ECP), which a GTH valence basis never meets, so no periodic system with O (or any element past He)
    could be labeled. Elements of periodic cells are checked against the pseudopotentials only."""
    water = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]) + 3.0
    check_batch(make_configurations([water], [[8, 1, 1]], cells=[np.eye(3) * 6.0], pbc=[[True] * 3]), PERIODIC)
    # ... while on open boundaries the same valence-only rule still refuses: minao has no ECP and no core for I.
    hi = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.61]])
    assert "no effective core potential for I (Z=53)" in _refusal(
        make_configurations([hi], [[1, 53]]), HF.model_copy(update={"basis": "minao"}))


# --- _assemble: the label variables keep their types for any outcome values ----------------------------------


def test_assemble_types_hold_for_integer_numbers_and_for_an_empty_batch():
    """Integer energies / wall times / distances (an ASE calculator may give them) are still stored as float64,
    and an empty batch still has text status, reason, ladder step and stability."""
    ints = [LabelOutcome(0, -75, np.zeros((3, 3)), "ok", "", 7, 2, True, 0, "none", False),
            LabelOutcome(1, -1, np.zeros((2, 3)), "ok", "", 3, 1, True, 1, "none", False)]
    out = _assemble(_configs(), ints, LabelSettings(method="hf", basis="sto-3g"), "2.99")
    for name in ("energy", "wall_time", "warm_start_rmsd"):
        assert out[name].dtype == np.float64, name
    empty = _assemble(make_configurations([], []), [], LabelSettings(method="hf", basis="sto-3g"), "2.99")
    for name in ("status", "reason", "scf_ladder_step", "scf_stability"):
        assert empty[name].dtype.kind == "U" and empty[name].sizes == {"config": 0}, name


# --- label_configurations with real PySCF (HF/STO-3G H2: ~0.05 s a label) -------------------------------------


def _h2s(*lengths):
    return make_configurations([np.array([[0.0, 0.0, 0.0], [0.0, 0.0, d]]) for d in lengths], [[1, 1]] * len(lengths))


def _children(calls):
    """A progress callback recording (done, total, the process types of this process's live children)."""
    def progress(done, total):
        calls.append((done, total, sorted(type(p).__name__ for p in multiprocessing.active_children())))
    return progress


def test_progress_counts_every_label_cache_hits_first(tmp_path):
    label_configurations(_h2s(0.74), HF, cache_dir=tmp_path)
    calls = []
    out = label_configurations(_h2s(0.80, 0.74), HF, cache_dir=tmp_path, progress=_children(calls))
    assert out["cache_hit"].values.tolist() == [0, 1]
    assert calls == [(1, 2, []), (2, 2, [])]


def test_warm_start_from_the_nearest_cached_geometry(tmp_path):
    """The pending configuration starts from the density of the nearest cache entry (within
    warm_start_max_rmsd, boundary included), never from a configuration of this call or of a call labeling
    alongside, and not at all when warm_start is off."""
    from tasks.label_cache import rmsd

    seed = tmp_path / "seed"
    label_configurations(_h2s(0.74), HF, cache_dir=seed)
    a, b = _h2s(0.74)["positions"].values[0], _h2s(0.78)["positions"].values[0]
    d = rmsd(a, b)

    def fresh(name):
        shutil.copytree(seed, tmp_path / name)
        return tmp_path / name

    warm = label_configurations(_h2s(0.78), HF, cache_dir=fresh("warm"))
    cold = label_configurations(_h2s(0.78), HF)
    assert warm["warm_start"].values.tolist() == [1] and warm["status"].values.tolist() == ["ok"]
    assert warm["warm_start_rmsd"].values[0] == pytest.approx(d, rel=1e-12)
    assert warm["energy"].values[0] == pytest.approx(cold["energy"].values[0], abs=1e-6)
    assert cold["warm_start"].values.tolist() == [0] and np.isnan(cold["warm_start_rmsd"].values[0])
    edge = label_configurations(_h2s(0.78), HF.model_copy(update={"warm_start_max_rmsd": d}), cache_dir=fresh("edge"))
    assert edge["warm_start"].values.tolist() == [1]
    far = label_configurations(_h2s(0.78), HF.model_copy(update={"warm_start_max_rmsd": d * 0.99}),
                               cache_dir=fresh("far"))
    assert far["warm_start"].values.tolist() == [0]
    off = label_configurations(_h2s(0.78), HF.model_copy(update={"warm_start": False}), cache_dir=fresh("off"))
    assert off["warm_start"].values.tolist() == [0]
    # The cached 0.74 Å H2 is a configuration of this call (a cache hit): no source for the 0.78 Å one.
    same_call = label_configurations(_h2s(0.74, 0.78), HF, cache_dir=fresh("same_call"))
    assert same_call["cache_hit"].values.tolist() == [1, 0] and same_call["warm_start"].values.tolist() == [0, 0]
    # Nor when another call labels it at the same time (run_label passes labeled_alongside through).
    alongside = run_label(LabelInputs(_h2s(0.78), str(fresh("alongside")), labeled_alongside=_h2s(0.74)), HF)
    assert alongside.labels["warm_start"].values.tolist() == [0] and alongside.n_ok == 1
    unrelated = run_label(LabelInputs(_h2s(0.78), str(fresh("unrelated")), labeled_alongside=_h2s(0.9)), HF)
    assert unrelated.labels["warm_start"].values.tolist() == [1]
    assert len(list((tmp_path / "unrelated").rglob("*.npz"))) == 2  # run_label used the cache it was given


def test_a_calculation_runs_with_the_requested_threads_and_restores_them():
    """PySCF's OpenMP count and the BLAS pools are set to the calculation's thread count while it runs and put
    back afterwards. (The process runs at 2 threads around the call but no parallel region runs at 2 here: a
    GNU OpenMP pool created in this process would hang forked copies of it, such as mutmut's test runners.)"""
    from pyscf import lib
    from threadpoolctl import threadpool_info, threadpool_limits

    def pools():
        return [(i["filepath"], i["num_threads"]) for i in threadpool_info()]

    previous = lib.num_threads()
    try:
        with threadpool_limits(limits=2):
            lib.num_threads(2)
            outside = pools()
            with threadpool_limits(limits=1):
                expected = pools()
            assert expected != outside
            seen = []
            label_configurations(_h2s(0.74), HF, progress=lambda done, total: seen.append((lib.num_threads(), pools())))
            assert seen == [(1, expected)]
            assert lib.num_threads() == 2 and pools() == outside
    finally:
        lib.num_threads(previous)


def test_in_a_daemonic_process_labels_run_in_process():
    """A Dask worker is a daemonic process, which may not start children: n_workers=2 labels in-process there."""
    me = multiprocessing.current_process()
    calls = []
    me.daemon = True
    try:
        out = label_configurations(_h2s(0.74, 0.78), HF, n_workers=2, progress=_children(calls))
    finally:
        me.daemon = False
    assert out["status"].values.tolist() == ["ok", "ok"] and calls == [(1, 2, []), (2, 2, [])]


def test_label_file_and_label_atoms_pass_their_options_on(tmp_path):
    from ase import Atoms
    from ase.io import write

    write(tmp_path / "in.extxyz", [Atoms("H2", positions=[[0, 0, 0], [0, 0, d]]) for d in (0.74, 0.78)])
    calls = []
    two = HF.model_copy(update={"n_workers": 2})  # the argument n_workers=1 wins: no worker processes
    out = label_file(tmp_path / "in.extxyz", two, tmp_path / "out.nc", cache_dir=tmp_path / "cache", n_workers=1,
                     progress=_children(calls))
    assert calls == [(1, 2, []), (2, 2, [])] and out["status"].values.tolist() == ["ok", "ok"]
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 2
    again = label_atoms([Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])], HF, cache_dir=tmp_path / "cache")
    assert again["cache_hit"].values.tolist() == [1]


def test_ase_labelers_are_dispatched_with_all_options(tmp_path):
    """labeler != "pyscf": check_batch and label_configurations hand over to tasks.ase_labeler."""
    lj = LabelSettings(labeler="ase:lj", n_workers=2)
    atom = make_configurations([np.zeros((1, 3))], [[1]])  # one electron: PySCF would refuse spin 0
    check_batch(atom, lj)
    calls = []
    argon = make_configurations([np.array([[0.0, 0.0, 0.0], [0.0, 0.0, d]]) for d in (3.8, 4.0)], [[18, 18]] * 2)
    out = label_configurations(argon, lj, cache_dir=tmp_path, n_workers=1, progress=_children(calls))
    assert calls == [(1, 2, []), (2, 2, [])] and out["status"].values.tolist() == ["ok", "ok"]
    assert len(list(tmp_path.rglob("*.npz"))) == 2
    assert np.isfinite(out["energy"].values[0]) and out["forces"].values[0, 0, 2] == -out["forces"].values[0, 1, 2]


# --- worker processes (spawned; each imports PySCF: a few seconds) ---------------------------------------------


def test_a_fully_cached_batch_starts_no_worker_processes(tmp_path):
    label_configurations(_h2s(0.74, 0.78), HF, cache_dir=tmp_path)
    calls = []
    out = label_configurations(_h2s(0.74, 0.78), HF, cache_dir=tmp_path, n_workers=2, progress=_children(calls))
    assert out["cache_hit"].values.tolist() == [1, 1] and calls == [(1, 2, []), (2, 2, [])]


def test_spawned_pool_labels_equal_in_process_labels(tmp_path):
    """n_workers spawned processes (never forked; as many as asked, not one per core) label the batch into the
    cache, bit-identical to labels computed in this process."""
    n = 3 if os.cpu_count() == 2 else 2  # a count other than the core count (ProcessPoolExecutor's default)
    lengths = [0.70 + 0.03 * k for k in range(n)]
    calls = []
    pooled = label_configurations(_h2s(*lengths), HF, cache_dir=tmp_path, n_workers=n, progress=_children(calls))
    serial = label_configurations(_h2s(*lengths), HF)
    assert pooled["status"].values.tolist() == ["ok"] * n
    np.testing.assert_array_equal(pooled["energy"].values, serial["energy"].values)
    np.testing.assert_array_equal(pooled["forces"].values, serial["forces"].values)
    assert [c[:2] for c in calls] == [(k + 1, n) for k in range(n)]
    assert calls[0][2] == ["SpawnProcess"] * n  # every worker alive at the first result, all spawned
    assert len(list(tmp_path.rglob("*.npz"))) == n and not list(tmp_path.rglob("*.tmp"))


def _mine(pid: int) -> bool:
    """Whether ``pid`` is a live child process of this one (never signal anything else)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid()
    except (OSError, IndexError, ValueError):
        return False


def _kill_pools(n_pools: int, size: int, stop: threading.Event) -> threading.Thread:
    """SIGKILL the worker processes of the next ``n_pools`` pools of ``size`` workers, as soon as all of a pool's
    workers exist (so every job has been submitted) and before any can finish a label."""
    def run():
        killed: set[int] = set()
        for _ in range(n_pools):
            while not stop.is_set():
                fresh = [p for p in multiprocessing.active_children() if p.pid not in killed and _mine(p.pid)]
                if len(fresh) >= size:
                    for p in fresh:
                        os.kill(p.pid, signal.SIGKILL)
                        killed.add(p.pid)
                    break
                time.sleep(0.002)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_pool_that_dies_twice_fails_its_labels_as_data():
    stop = threading.Event()
    killer = _kill_pools(2, 2, stop)
    try:
        out = label_configurations(_h2s(0.74, 0.78), HF, n_workers=2)
    finally:
        stop.set()
        killer.join()
    assert out["status"].values.tolist() == ["failed", "failed"]
    assert out["reason"].values.tolist() == ["worker process died twice while this configuration was pending"] * 2
    assert np.isnan(out["energy"].values).all() and np.isnan(out["forces"].values).all()
    assert out["forces"].shape == (2, 2, 3)


def test_a_pool_that_dies_once_is_retried_with_the_same_options(tmp_path):
    n = 3 if os.cpu_count() == 2 else 2  # a count other than the core count (ProcessPoolExecutor's default)
    lengths = [0.70 + 0.03 * k for k in range(n)]
    stop = threading.Event()
    killer = _kill_pools(1, n, stop)
    calls = []
    try:
        out = label_configurations(_h2s(*lengths), HF, cache_dir=tmp_path, n_workers=n, progress=_children(calls))
    finally:
        stop.set()
        killer.join()
    serial = label_configurations(_h2s(*lengths), HF)
    assert out["status"].values.tolist() == ["ok"] * n
    np.testing.assert_array_equal(out["energy"].values, serial["energy"].values)
    assert [c[:2] for c in calls] == [(k + 1, n) for k in range(n)] and calls[0][2] == ["SpawnProcess"] * n
    assert len(list(tmp_path.rglob("*.npz"))) == n and not list(tmp_path.rglob("*.tmp"))
