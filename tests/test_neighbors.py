import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

from hmc_core.neighbors import NeighborList


def _structures():
    rng = np.random.default_rng(0)
    out = []
    a = bulk("Cu", "fcc", a=3.6).repeat((2, 2, 2))
    a.rattle(0.1, seed=1)
    out.append(a)
    out.append(bulk("Mo", "bcc", a=3.16))  # one atom: many images of itself
    out.append(bulk("Cu", "fcc", a=3.6))  # triclinic primitive cell
    big = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((4, 4, 4))
    big.rattle(0.05, seed=2)
    out.append(big)
    slab = big.copy()
    slab.pbc = [True, True, False]
    out.append(slab)
    out.append(Atoms("Ar13", positions=rng.normal(size=(13, 3)) * 2.5))  # open cluster
    tri = Atoms("Ar8", cell=[[6.0, 0, 0], [2.5, 5.5, 0], [1.0, 1.5, 7.0]], pbc=True,
                positions=rng.uniform(0, 5, size=(8, 3)))
    out.append(tri)
    return out


@pytest.mark.parametrize("k", range(7))
@pytest.mark.parametrize("full", [False, True])
def test_pairs_match_ase(k, full):
    atoms = _structures()[k]
    rc = 5.0
    nl = NeighborList(rc, 0.0, full=full)
    nl.build(atoms.positions.copy(), atoms.cell.array, atoms.pbc)
    i, j, s = nl.pairs()
    d = np.linalg.norm(nl.reference[j] + s - nl.reference[i], axis=1)
    mine = np.sort(d[d < rc])
    ref = np.sort(neighbor_list("d", atoms, rc))
    if not full:
        mine = np.sort(np.concatenate([mine, mine]))
    np.testing.assert_allclose(mine, ref, atol=1e-10)
    if full:  # every atom's neighbour count agrees
        ii = neighbor_list("i", atoms, rc)
        counts = np.bincount(i[d < rc], minlength=len(atoms))
        np.testing.assert_array_equal(counts, np.bincount(ii, minlength=len(atoms)))


def test_rebuild_only_when_two_displacements_exceed_skin():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((3, 3, 3))
    x = atoms.positions.copy()
    nl = NeighborList(4.0, 0.4)
    assert nl.update(x, atoms.cell.array, atoms.pbc)
    x[5] += [0.25, 0.0, 0.0]  # one atom alone cannot close a gap wider than the skin
    assert not nl.update(x, atoms.cell.array, atoms.pbc)
    x[7] += [0.0, 0.1, 0.0]  # 0.25 + 0.1 < 0.4
    assert not nl.update(x, atoms.cell.array, atoms.pbc)
    x[9] += [0.0, 0.0, 0.2]  # 0.25 + 0.2 > 0.4: two atoms may now be within the cutoff unseen
    assert nl.update(x, atoms.cell.array, atoms.pbc)
    assert nl.n_builds == 2


def test_list_stays_exact_between_rebuilds():
    """Pairs within the cutoff found by the skin list equal a fresh build after random moves."""
    rng = np.random.default_rng(3)
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((3, 3, 3))
    x = atoms.positions.copy()
    nl = NeighborList(4.0, 0.5)
    nl.update(x, atoms.cell.array, atoms.pbc)
    for _ in range(20):
        x += rng.normal(scale=0.03, size=x.shape)
        nl.update(x, atoms.cell.array, atoms.pbc)
        i, j, s = nl.pairs()
        d = np.linalg.norm(x[j] + s - x[i], axis=1)
        fresh = NeighborList(4.0, 0.0)
        fresh.build(x.copy(), atoms.cell.array, atoms.pbc)
        fi, fj, fs = fresh.pairs()
        fd = np.linalg.norm(fresh.reference[fj] + fs - fresh.reference[fi], axis=1)
        np.testing.assert_allclose(np.sort(d[d < 4.0]), np.sort(fd[fd < 4.0]), atol=1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match="cutoff"):
        NeighborList(-1.0)
    nl = NeighborList(3.0)
    with pytest.raises(ValueError, match="periodic but cell vector"):
        nl.build(np.zeros((2, 3)), np.zeros((3, 3)), [True, True, True])
    with pytest.raises(ValueError, match="NaN"):
        nl.build(np.full((2, 3), np.nan), np.eye(3) * 5, [True] * 3)
