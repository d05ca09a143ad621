"""Basis generation by level vs the MLIP templates in ../shared/data/mtp (from motep's test data).

The generated lists must define the same basis functions as MLIP's: same basic moments (same order),
same number of basis functions, and one-to-one equal values on random neighbourhoods (our order of
contracted moments differs from MLIP's generator, so functions are matched by value).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from hmc_core.mtp import MTP, per_atom_basis, read_basis
from hmc_core.mtp.levels import generate_basis


def _values(basis, species, atoms, seed=0):
    rng = np.random.default_rng(seed)
    s = len(species)
    mtp = MTP(species=tuple(species), basis=basis, min_dist=1.0, max_dist=5.0, radial_basis_size=8,
              radial_coeffs=rng.uniform(-1, 1, (s, s, basis.radial_funcs_count, 8)), species_coeffs=np.zeros(s),
              moment_coeffs=np.zeros(basis.n_basis))
    return per_atom_basis(mtp, atoms.positions, atoms.cell[:], atoms.pbc, atoms.numbers)


def assert_same_functions(generated, reference, species):
    assert np.array_equal(generated.alpha_index_basic, reference.alpha_index_basic)
    assert generated.radial_funcs_count == reference.radial_funcs_count
    assert generated.n_basis == reference.n_basis
    atoms = bulk("Mo", "bcc", a=3.2, cubic=True).repeat(2)
    atoms.rattle(0.3, seed=4)
    z = atoms.numbers.copy()
    for k, zz in enumerate(species):
        z[k::len(species)] = zz
    atoms.numbers = z
    gen = _values(generated, species, atoms)
    ref = _values(reference, species, atoms)
    scale = np.maximum(np.abs(ref).max(0), 1e-300)
    matched = []
    for col in range(gen.shape[1]):
        err = np.abs(ref - gen[:, [col]]).max(0) / scale
        best = int(np.argmin(err))
        assert err[best] < 1e-9, f"generated basis function {col} matches no MLIP function (best {err[best]:.1e})"
        matched.append(best)
    assert sorted(matched) == list(range(reference.n_basis)), "generated functions are not one-to-one with MLIP's"


@pytest.mark.parametrize(("level", "name", "species"), [
    (2, "cubic_level02.mtp", [42]),
    (6, "cubic_level06.mtp", [42]),
    (10, "cubic_level10.mtp", [42]),
    (16, "cubic_level16_untrained.mtp", [42]),
    (2, "multi_level02_untrained.mtp", [42, 3, 1]),
    (6, "multi_level06_untrained.mtp", [42, 3, 1]),
    (10, "multi_level10_untrained.mtp", [42, 3, 1]),
])
def test_generated_basis_equals_mlip_template(shared_data, level, name, species):
    assert_same_functions(generate_basis(level), read_basis(shared_data / "mtp" / name), species)


@pytest.mark.slow
@pytest.mark.parametrize("level", [20, 24, 26])
def test_generated_basis_equals_mlip_high_levels(shared_data, level):
    assert_same_functions(generate_basis(level), read_basis(shared_data / "mtp" / f"cubic_level{level}.mtp"), [42])


def test_counts_and_bad_levels():
    # Sizes of MLIP's templates (basis functions per level; fixtures for 2, 6, 10, 16, 20, 24, 26).
    assert [generate_basis(level).n_basis for level in (2, 4, 6, 8, 10, 12, 14, 16)] == [1, 2, 5, 9, 16, 29, 52, 92]
    with pytest.raises(ValueError, match="level must be an integer in 2..28"):
        generate_basis(30)
    with pytest.raises(ValueError, match="level must be"):
        generate_basis(1)
