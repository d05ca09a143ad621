"""Label cache without PySCF: key rounding, family separation, atomic files, unreadable entries, nearest density."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.label_cache import DensityMemory, LabelCache, family_hash, label_key
from tasks.label_settings import LabelSettings

POS = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
Z = np.array([8, 1, 1])
NO_CELL, OPEN = np.zeros((3, 3)), np.zeros(3, bool)


def test_key_rounds_positions_to_the_stated_tolerance_and_separates_methods():
    fam = family_hash(Z, OPEN, LabelSettings(method="hf", basis="sto-3g").method_key(), "2.14.0")
    key = label_key(fam, POS, NO_CELL, 1e-6)
    assert label_key(fam, POS + 2e-8, NO_CELL, 1e-6) == key  # well inside the rounding tolerance
    assert label_key(fam, POS + np.array([[3e-6, 0, 0], [0, 0, 0], [0, 0, 0]]), NO_CELL, 1e-6) != key
    assert label_key(fam, POS, np.eye(3) * 5, 1e-6) != key
    other = family_hash(Z, OPEN, LabelSettings(method="hf", basis="6-31g").method_key(), "2.14.0")
    assert other != fam and label_key(other, POS, NO_CELL, 1e-6) != key
    # Settings that do not change the numbers share the family; PySCF patch releases too.
    assert family_hash(Z, OPEN, LabelSettings(method="hf", basis="sto-3g", n_workers=4, max_memory=999,
                                              scf_ladder=()).method_key(), "2.14.1") == fam
    assert family_hash(Z[::-1], OPEN, LabelSettings(method="hf", basis="sto-3g").method_key(), "2.14.0") != fam


def test_put_get_is_atomic_and_unreadable_entries_are_misses(tmp_path):
    cache = LabelCache(tmp_path)
    forces = np.arange(9.0).reshape(3, 3)
    dm = np.eye(7)
    path = cache.put("fam", "k1", POS, -2039.5, forces, 7, 0.25, "none", dm)
    assert path.exists() and not list(tmp_path.rglob("*.tmp"))
    hit = LabelCache(tmp_path).get("fam", "k1")  # a fresh instance (another process) reads it back
    assert hit["energy"] == -2039.5 and hit["scf_cycles"] == 7 and hit["ladder_step"] == "none"
    np.testing.assert_array_equal(hit["forces"], forces)
    assert cache.get("fam", "missing") is None
    cache.path("fam", "broken").write_bytes(b"half a file")
    assert cache.get("fam", "broken") is None


def test_nearest_density_from_disk_and_memory(tmp_path):
    cache = LabelCache(tmp_path)
    cache.put("fam", "a", POS, 0.0, np.zeros((3, 3)), 5, 0.1, "none", np.full((4, 4), 1.0))
    cache.put("fam", "b", POS + 0.3, 0.0, np.zeros((3, 3)), 5, 0.1, "none", np.full((4, 4), 2.0))
    dm, d = cache.nearest("fam", POS + 0.01)
    assert dm[0, 0] == 1.0 and d == pytest.approx(np.sqrt(3) * 0.01)  # every atom moved (0.01, 0.01, 0.01) Å
    assert cache.nearest("other", POS) == (None, np.inf)
    memory = DensityMemory(per_family=2)
    for shift in (0.5, 0.2, 0.1):
        memory.add("fam", POS + shift, np.full((2, 2), shift))
    dm, d = memory.nearest("fam", POS)
    assert dm[0, 0] == 0.1 and len(memory._items["fam"]) == 2
