"""Label cache: it answers only the question it was asked.

Every kind of bad entry (planted under a computable key, edited, another geometry, wrong shapes, NaN,
truncated, wrong JSON, another method) is planted where the request's label would be; the label stage must
log a warning, recompute with real PySCF (HF/STO-3G, H2 and HF molecules, ~0.05 s each) and give exactly the
value of a run without a cache (the reference: same settings, one thread, no warm start, so bit-identical),
never the planted one — in the returned dataset and in labels.nc. Plus key rounding, family separation,
durable files with the umask's mode, clean-up of dead writers' temporaries, and deterministic warm-start choice.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from hmc_core.configurations import make_configurations, read_netcdf
from tasks.label import label_configurations, label_file
from tasks.label_cache import (
    CACHE_FORMAT,
    LabelCache,
    LabelQuestion,
    entry_arrays,
    family_hash,
    label_key,
    labeler_identity,
    write_entry,
)
from tasks.label_settings import LabelSettings
from tasks.pyscf_adapter import PYSCF_VERSION, scf_run_count

POS = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
Z = np.array([8, 1, 1])
NO_CELL, OPEN = np.zeros((3, 3)), np.zeros(3, bool)
LABELER = labeler_identity("2.14.0")

SETTINGS = LabelSettings(method="hf", basis="sto-3g", density_fit=False, threads_per_worker=1)
MOLECULES = {"H2": (np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]]), [1, 1]),
             "HF": (np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.92]]), [9, 1])}


def question_for(positions, species, settings=SETTINGS) -> LabelQuestion:
    """The question the label stage asks for this open-boundary molecule (positions Å)."""
    return LabelQuestion(np.asarray(species), np.asarray(positions, float), NO_CELL, OPEN, settings.method_key(),
                         labeler_identity(PYSCF_VERSION), settings.position_tolerance)


@pytest.fixture(scope="module")
def reference():
    """Labels computed without any cache: the right values every recomputation must reproduce bit for bit."""
    out = {}
    for name, (pos, z) in MOLECULES.items():
        ds = label_configurations(make_configurations([pos], [z]), SETTINGS)
        assert ds["status"].values[0] == "ok"
        out[name] = (float(ds["energy"].values[0]), ds["forces"].values[0].copy())
    return out


def _valid(q: LabelQuestion, energy=-30.0, forces=None, **kw) -> dict:
    forces = np.zeros((len(q.species), 3)) if forces is None else forces
    return entry_arrays(q, energy, forces, 5, 0.1, "none", kw.get("dm"), PYSCF_VERSION)


def _plant_old_format(path, q):  # what the issue planted: a file of the old layout with E = -1e6 eV
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, energy=np.float64(-1e6), forces=np.zeros((len(q.species), 3)), positions=q.positions,
             scf_cycles=np.int64(1), wall_time=np.float64(0.0), ladder_step=np.str_("none"))


def _plant_edited_energy(path, q):
    arrays = _valid(q)
    arrays["energy"] = np.float64(-1e6)  # changed after writing: the checksum no longer matches
    write_entry(path, arrays)


def _plant_other_positions(path, q):
    moved = question_for(q.positions + np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.05]]), q.species)
    write_entry(path, _valid(moved, energy=-1e6))  # intact, but the answer to another geometry


def _plant_wrong_forces_shape(path, q):
    write_entry(path, _valid(q, forces=np.zeros((len(q.species) - 1, 3))))


def _plant_nan_energy(path, q):
    write_entry(path, _valid(q, energy=np.nan))


def _plant_nan_forces(path, q):
    forces = np.zeros((len(q.species), 3))
    forces[0, 1] = np.nan
    write_entry(path, _valid(q, forces=forces))


def _plant_truncated(path, q):
    write_entry(path, _valid(q, dm=np.eye(4)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _plant_not_npz(path, q):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"energy": -1e6}))


def _plant_bad_json_header(path, q):
    arrays = _valid(q, energy=-1e6)
    arrays["header"] = np.str_("{not json")
    arrays.pop("checksum")
    from tasks.label_cache import _checksum

    arrays["checksum"] = np.str_(_checksum(arrays))  # intact file, nonsense question
    write_entry(path, arrays)


def _plant_other_method(path, q):
    other = question_for(q.positions, q.species, SETTINGS.model_copy(update={"basis": "6-31g"}))
    write_entry(path, _valid(other, energy=-1e6))


def _plant_other_labeler(path, q):
    other = LabelQuestion(q.species, q.positions, q.cell, q.pbc, q.method, {**q.labeler, "pyscf": "1.7"},
                          q.tolerance)
    write_entry(path, _valid(other, energy=-1e6))


PLANTED = {
    "planted-old-format": (_plant_old_format, "not a pesflow.label-cache/2 entry"),
    "edited-energy": (_plant_edited_energy, "checksum mismatch"),
    "other-positions": (_plant_other_positions, "positions differ from the request by 0.05 Å"),
    "wrong-forces-shape": (_plant_wrong_forces_shape, r"forces of shape \(1, 3\)"),
    "nan-energy": (_plant_nan_energy, "energy .*nan.* is not one finite number"),
    "nan-forces": (_plant_nan_forces, r"forces of shape \(2, 3\) are not finite"),
    "truncated": (_plant_truncated, "unreadable"),
    "not-npz": (_plant_not_npz, "unreadable"),
    "bad-json-header": (_plant_bad_json_header, "header is not JSON"),
    "other-method": (_plant_other_method, "method .*6-31g"),
    "other-labeler": (_plant_other_labeler, "labeler .*1.7"),
}


@pytest.mark.parametrize("molecule", ["H2", "HF"])
@pytest.mark.parametrize("case", list(PLANTED))
def test_a_bad_entry_is_recomputed_with_a_warning_never_used(tmp_path, caplog, reference, case, molecule):
    plant, reason = PLANTED[case]
    pos, z = MOLECULES[molecule]
    q = question_for(pos, z)
    plant(LabelCache(tmp_path).path(q.family, q.key), q)
    before = scf_run_count()
    with caplog.at_level(logging.WARNING, logger="pesflow.label_cache"):
        ds = label_configurations(make_configurations([pos], [z]), SETTINGS, cache_dir=tmp_path)
    assert scf_run_count() == before + 1  # recomputed
    e_ref, f_ref = reference[molecule]
    assert ds["status"].values[0] == "ok" and ds["cache_hit"].values[0] == 0
    assert ds["energy"].values[0] == e_ref  # the right value, bit for bit, not the planted one
    np.testing.assert_array_equal(ds["forces"].values[0], f_ref)
    messages = [r.getMessage() for r in caplog.records if r.name == "pesflow.label_cache"]
    assert any("not used, recomputing" in m for m in messages), messages
    assert any(__import__("re").search(reason, m) for m in messages), (reason, messages)
    # The bad entry was overwritten by the right one: the next call is a verified hit, nothing computed.
    again = label_configurations(make_configurations([pos], [z]), SETTINGS, cache_dir=tmp_path)
    assert again["cache_hit"].values[0] == 1 and scf_run_count() == before + 1
    assert again["energy"].values[0] == e_ref


def test_a_planted_entry_never_reaches_labels_nc_as_ok(tmp_path, reference):
    """The issue's case end to end: E = -1e6 eV planted under the computable key, label_file writes labels.nc."""
    from ase import Atoms
    from ase.io import write

    pos, z = MOLECULES["H2"]
    q = question_for(pos, z)
    cache = tmp_path / "cache"
    _plant_old_format(LabelCache(cache).path(q.family, q.key), q)
    write(tmp_path / "in.extxyz", [Atoms(numbers=z, positions=pos)])
    label_file(tmp_path / "in.extxyz", SETTINGS, tmp_path / "labels.nc", cache_dir=cache)
    back = read_netcdf(tmp_path / "labels.nc")
    assert back["status"].values.tolist() == ["ok"]
    assert back["energy"].values[0] == reference["H2"][0] and back["energy"].values[0] > -100


def test_positions_within_the_key_rounding_are_the_same_question(tmp_path, reference):
    """A request 3e-7 Å away (inside the 1e-6 Å tolerance, same rounded key) is answered from the cache."""
    pos, z = MOLECULES["H2"]
    label_configurations(make_configurations([pos], [z]), SETTINGS, cache_dir=tmp_path)
    nudged = pos + np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 3e-7]])
    assert question_for(nudged, z).key == question_for(pos, z).key
    hit = label_configurations(make_configurations([nudged], [z]), SETTINGS, cache_dir=tmp_path)
    assert hit["cache_hit"].values[0] == 1 and hit["energy"].values[0] == reference["H2"][0]


def test_put_refuses_what_get_would_reject(tmp_path):
    cache = LabelCache(tmp_path)
    q = question_for(POS, Z)
    with pytest.raises(ValueError, match="refusing to cache an invalid label: energy"):
        cache.put(q, np.nan, np.zeros((3, 3)), 1, 0.1, "none", None, PYSCF_VERSION)
    with pytest.raises(ValueError, match=r"forces of shape \(2, 3\)"):
        cache.put(q, -1.0, np.zeros((2, 3)), 1, 0.1, "none", None, PYSCF_VERSION)
    assert not list(tmp_path.rglob("*.npz")) and not list(tmp_path.rglob("*.tmp"))


def test_key_rounds_positions_to_the_stated_tolerance_and_separates_methods():
    fam = family_hash(Z, OPEN, LabelSettings(method="hf", basis="sto-3g").method_key(), LABELER)
    key = label_key(fam, POS, NO_CELL, 1e-6)
    assert label_key(fam, POS + 2e-8, NO_CELL, 1e-6) == key  # well inside the rounding tolerance
    assert label_key(fam, POS + np.array([[3e-6, 0, 0], [0, 0, 0], [0, 0, 0]]), NO_CELL, 1e-6) != key
    assert label_key(fam, POS, np.eye(3) * 5, 1e-6) != key
    other = family_hash(Z, OPEN, LabelSettings(method="hf", basis="6-31g").method_key(), LABELER)
    assert other != fam and label_key(other, POS, NO_CELL, 1e-6) != key
    # Settings that do not change the numbers share the family; PySCF patch releases too.
    assert family_hash(Z, OPEN, LabelSettings(method="hf", basis="sto-3g", n_workers=4, max_memory=999,
                                              scf_ladder=()).method_key(), labeler_identity("2.14.1")) == fam
    hf = LabelSettings(method="hf", basis="sto-3g").method_key()
    assert family_hash(Z, OPEN, hf, labeler_identity("2.15.0")) != fam  # another PySCF minor: new family
    assert family_hash(Z[::-1], OPEN, LabelSettings(method="hf", basis="sto-3g").method_key(), LABELER) != fam


def test_entries_carry_their_question_provenance_and_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        path = LabelCache(tmp_path).put(question_for(POS, Z), -2039.5, np.arange(9.0).reshape(3, 3), 7, 0.25,
                                        "none", np.eye(7), PYSCF_VERSION)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640  # 0o666 & ~0o027, not mkstemp's 0o600
    assert path.parent.name == question_for(POS, Z).family and not list(tmp_path.rglob("*.tmp"))
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
        provenance = json.loads(str(data["provenance"]))
        np.testing.assert_array_equal(data["positions"], POS)
    assert header["format"] == CACHE_FORMAT and header["species"] == [8, 1, 1] and header["pbc"] == [False] * 3
    assert header["method"]["basis"] == "sto-3g" and header["labeler"]["labeler"] == "pesflow.pyscf_adapter"
    assert header["units"]["energy"] == "eV" and header["units"]["forces"] == "eV/Å"
    assert provenance["pyscf"] == PYSCF_VERSION and provenance["pesflow"]
    hit = LabelCache(tmp_path).get(question_for(POS, Z))  # a fresh instance (another process) reads it back
    assert hit["energy"] == -2039.5 and hit["scf_cycles"] == 7 and hit["ladder_step"] == "none"
    np.testing.assert_array_equal(hit["forces"], np.arange(9.0).reshape(3, 3))


def test_opening_the_cache_removes_only_dead_writers_temporaries(tmp_path, caplog):
    from hmc_core.atomic_io import _host

    q = question_for(POS, Z)
    LabelCache(tmp_path).put(q, -1.0, np.zeros((3, 3)), 1, 0.1, "none", None, PYSCF_VERSION)
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        folder = tmp_path / q.family
        dead_tmp = folder / f".{q.key}.npz~{_host()}~{int(done.stdout)}~x1.tmp"
        live_tmp = folder / f".{q.key}.npz~{_host()}~{live.pid}~x2.tmp"
        dead_tmp.write_bytes(b"half")
        live_tmp.write_bytes(b"being written")
        with caplog.at_level(logging.WARNING, logger="pesflow.label_cache"):
            LabelCache(tmp_path)
        assert not dead_tmp.exists() and live_tmp.exists()  # a concurrent worker's file is left alone
        assert any("killed mid-write" in r.getMessage() for r in caplog.records)
    finally:
        live.kill()
        live.wait()


def test_nearest_density_is_chosen_by_content_only(tmp_path, caplog):
    cache = LabelCache(tmp_path)
    a, b = question_for(POS, Z), question_for(POS + 0.3, Z)
    cache.put(a, 0.0, np.zeros((3, 3)), 5, 0.1, "none", np.full((4, 4), 1.0), PYSCF_VERSION)
    cache.put(b, 0.0, np.zeros((3, 3)), 5, 0.1, "none", np.full((4, 4), 2.0), PYSCF_VERSION)
    request = question_for(POS + 0.01, Z)
    path, d = cache.nearest(request)
    assert path.stem == a.key and d == pytest.approx(np.sqrt(3) * 0.01)  # every atom moved (0.01, 0.01, 0.01) Å
    assert cache.density(path, request)[0, 0] == 1.0
    path, _ = cache.nearest(request, exclude={a.key})  # entries of the current call are no warm-start source
    assert path.stem == b.key
    other_method = question_for(POS, Z, SETTINGS.model_copy(update={"basis": "6-31g"}))
    assert cache.nearest(other_method) == (None, np.inf)
    # A damaged density is not used (warning), the SCF then starts from PySCF's own guess.
    cache.path(a.family, a.key).write_bytes(b"damaged")
    with caplog.at_level(logging.WARNING, logger="pesflow.label_cache"):
        assert cache.density(cache.path(a.family, a.key), request) is None
    assert any("warm-start density" in r.getMessage() for r in caplog.records)


def test_a_writer_killed_mid_write_leaves_a_temporary_that_the_next_opening_removes(tmp_path):
    """The race behind the flaky killed-worker test: SIGKILL between creating and renaming the temporary file."""
    q = question_for(POS, Z)
    target = LabelCache(tmp_path).path(q.family, q.key)
    code = ("import os, signal\nfrom hmc_core.atomic_io import atomic_target\n"
            f"with atomic_target({str(target)!r}) as tmp:\n"
            "    tmp.write_bytes(b'half an entry')\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", code], cwd=os.getcwd(), check=False)
    assert killed.returncode == -9
    left = list(target.parent.glob(".*.tmp"))
    assert len(left) == 1 and not target.exists()
    cache = LabelCache(tmp_path)  # the next worker (or resumed run) that opens the cache
    assert not list(target.parent.glob(".*.tmp")) and cache.get(q) is None


def test_an_unusable_cache_folder_is_refused_before_any_scf(tmp_path):
    from tasks.label import LabelInputError

    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    pos, z = MOLECULES["H2"]
    before = scf_run_count()
    with pytest.raises(LabelInputError, match=r"label cache folder .*cache cannot be created \(File exists\); give a "
                                              r"writable folder"):
        label_configurations(make_configurations([pos], [z]), SETTINGS, cache_dir=not_a_folder)
    assert scf_run_count() == before
