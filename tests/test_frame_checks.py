"""Sane candidates (issue 17 §3): explored frames with an isolated atom (an exploded cluster, an evaporated or
dissociated atom) or a degenerate periodic cell are refused by the select stage with their reason, whatever
their grade; ``[selection]`` bad values are one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.cluster import Icosahedron

from hmc_core.configurations import from_atoms, make_configurations
from hmc_core.frame_checks import cell_problem, frame_problem, frame_problems, isolated_atoms
from hmc_core.uncertainty import build_active_set
from tasks.select import SelectInputs, SelectionSettings, run_select, select_candidates

CUBE = np.eye(3) * 10.0
PBC = (True, True, True)


def test_cell_checks():
    assert cell_problem(CUBE, PBC, 1.0, 0.05) is None
    assert cell_problem(np.zeros((3, 3)), (False,) * 3, 1.0, 0.05) is None  # open boundary: nothing to check
    flat = np.diag([10.0, 10.0, 0.5])
    assert cell_problem(flat, PBC, 1.0, 0.05).startswith("degenerate_cell: width 0.5 Å along cell vector 2")
    assert cell_problem(flat, (True, True, False), 1.0, 0.05) is None  # the thin direction is not periodic
    sheared = np.array([[10.0, 0, 0], [9.99, 0.3, 0], [0, 0, 10.0]])  # a and b nearly parallel
    assert "of a·b·c, below 0.05" in cell_problem(sheared, PBC, 0.1, 0.05)
    assert cell_problem(sheared, PBC, 0.1, 0.0) is None
    no_volume = cell_problem(np.diag([10.0, 10.0, 0.0]), PBC, 1.0, 0.05)
    assert no_volume == "degenerate_cell: the periodic cell has no volume"
    fcc = bulk("Ar", "fcc", 5.26).cell.array  # primitive: volume 0.71 of a·b·c, a legitimate cell
    assert cell_problem(fcc, PBC, 1.0, 0.05) is None


def test_isolated_atoms():
    cluster = Icosahedron("Ar", 2)
    x = cluster.positions.copy()
    assert len(isolated_atoms(x, cluster.numbers, np.zeros((3, 3)), (False,) * 3, 6.0)) == 0
    x[7] += [0.0, 0.0, 12.0]  # evaporated
    np.testing.assert_array_equal(isolated_atoms(x, cluster.numbers, np.zeros((3, 3)), (False,) * 3, 6.0), [7])
    dimer = np.array([[0.0, 0, 0], [0, 0, 7.0]])
    np.testing.assert_array_equal(isolated_atoms(dimer, [18, 18], np.zeros((3, 3)), (False,) * 3, 6.0), [0, 1])
    assert len(isolated_atoms(dimer, [18, 18], np.zeros((3, 3)), (False,) * 3, 7.5)) == 0
    one = bulk("Ar", "fcc", 5.26)  # one atom per cell: its periodic images are its neighbours
    assert len(isolated_atoms(one.positions, one.numbers, one.cell.array, one.pbc, 6.0)) == 0
    assert len(isolated_atoms(np.zeros((1, 3)), [18], np.zeros((3, 3)), (False,) * 3, 6.0)) == 0
    water = molecule("H2O")
    x = water.positions.copy()
    x[1] += [0, 0, 8.0]  # a dissociated hydrogen
    why = frame_problem(x, water.numbers, np.zeros((3, 3)), (False,) * 3, 6.0, 1.0, 0.05)
    assert why == "isolated_atom: atom(s) 1 with no neighbour within 6.0 Å"
    assert frame_problem(x, water.numbers, np.zeros((3, 3)), (False,) * 3, None, 1.0, 0.05) == ""


def test_frame_problems_over_a_dataset_and_bad_arguments():
    crystal = bulk("Ar", "fcc", 5.26, cubic=True).repeat(2)
    squeezed = crystal.copy()
    squeezed.set_cell(np.diag([10.52, 10.52, 0.8]), scale_atoms=True)
    ds = from_atoms([crystal, squeezed])
    problems = frame_problems(ds, 6.0)
    assert problems[0] == "" and problems[1].startswith("degenerate_cell: width 0.8")
    with pytest.raises(ValueError, match="max_isolation must be > 0"):
        frame_problems(ds, 0.0)
    with pytest.raises(ValueError, match="min_cell_shape"):
        frame_problems(ds, 6.0, min_cell_shape=1.0)


def _basis(positions, cell, pbc, species):
    """Per-atom rows [1, x, y, z] (a synthetic linear basis: grades grow with the distance from the origin)."""
    pos = np.asarray(positions, float)
    return np.column_stack([np.ones(len(pos)), pos])


def test_select_refuses_unphysical_frames_whatever_their_grade():
    tri = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    active = build_active_set(_basis, make_configurations([tri, tri * 1.1], [np.full(4, 18)] * 2), mode="atom")
    near = tri * 3.0            # grade ≫ 2, every atom within 6 Å of another
    exploded = tri * 3.0
    exploded[3] = [0, 0, 30.0]  # one atom 30 Å away: the highest grade of the pool
    pool = make_configurations([near, exploded, tri * 4.0], [np.full(4, 18)] * 3)
    sel, summary = select_candidates(pool, _basis, active, budget=10, max_isolation=6.0)
    assert 1 not in sel["pool_index"].values and 2 in sel["pool_index"].values
    assert summary["reason"].values[1] == "isolated_atom" and summary["selected"].values[1] == 0
    assert summary["problem"].values[1] == "isolated_atom: atom(s) 3 with no neighbour within 6.0 Å"
    assert list(summary["problem"].values[[0, 2]]) == ["", ""]
    assert summary["grade"].values[1] == summary["grade"].values.max()  # graded, just never chosen
    assert summary.attrs["n_unphysical"] == 1 and summary.attrs["n_isolated_atom"] == 1
    assert summary.attrs["n_degenerate_cell"] == 0 and summary.attrs["n_invalid"] == 0
    # without the check the exploded frame is the first pick
    sel, summary = select_candidates(pool, _basis, active, budget=10, max_isolation=None)
    assert sel["pool_index"].values[0] == 1 and summary.attrs["n_unphysical"] == 0
    # the stage applies [selection] max_isolation (default 6 Å)
    result = run_select(SelectInputs(pool, _basis, active, max_new=10), SelectionSettings(), 0)
    assert result.n_unphysical == 1 and 1 not in result.selected["pool_index"].values
    loose = run_select(SelectInputs(pool, _basis, active, max_new=10), SelectionSettings(max_isolation=40.0), 0)
    assert loose.n_unphysical == 0 and 1 in loose.selected["pool_index"].values


@pytest.mark.parametrize("bad", [{"max_isolation": 0}, {"max_isolation": -1.0}, {"min_cell_width": -1},
                                 {"min_cell_shape": 1.0}, {"max_isolation": float("nan")}])
def test_bad_settings(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SelectionSettings(**bad)
