import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from hmc_core import configurations as C


def _labelled():
    water = molecule("H2O")
    water.calc = SinglePointCalculator(water, energy=-1.5, forces=np.arange(9.0).reshape(3, 3))
    cu = bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))
    cu.calc = SinglePointCalculator(cu, energy=-7.0, forces=np.zeros((2, 3)), stress=np.arange(6.0))
    return [water, cu]


def test_schema_and_padding():
    ds = C.from_atoms(_labelled())
    assert ds.attrs["schema"] == C.SCHEMA
    assert ds.sizes == {"config": 2, "atom": 3, "xyz": 3, "cell_vector": 3, "voigt": 6}
    assert list(ds.n_atoms.values) == [3, 2]
    assert np.isnan(ds.positions.values[1, 2]).all() and ds.species.values[1, 2] == 0
    assert ds.positions.attrs["units"] == "Å" and ds.energy.attrs["units"] == "eV"
    assert list(ds.pbc.values[1]) == [1, 1, 1] and list(ds.pbc.values[0]) == [0, 0, 0]


def test_netcdf_round_trip_is_exact(tmp_path):
    ds = C.from_atoms(_labelled(), attrs={"method": "test"})
    ds["positions"][0, 0, 0] = 0.1 + 1e-15
    C.write_netcdf(ds, tmp_path / "c.nc")
    back = C.read_netcdf(tmp_path / "c.nc")
    for v in ds.data_vars:
        np.testing.assert_array_equal(back[v].values, ds[v].values)
    assert back.attrs["method"] == "test"
    assert not list(tmp_path.glob(".*tmp")), "temporary file left behind"


def test_ase_and_extxyz_round_trip(tmp_path):
    atoms = _labelled()
    ds = C.from_atoms(atoms)
    back = C.to_atoms(ds)
    for a, b in zip(atoms, back, strict=True):
        assert a.get_chemical_formula() == b.get_chemical_formula()
        np.testing.assert_allclose(a.positions, b.positions)
        np.testing.assert_allclose(a.get_forces(), b.get_forces())
        assert a.get_potential_energy() == b.get_potential_energy()
    np.testing.assert_allclose(back[1].get_stress(), np.arange(6.0))
    C.write_extxyz(ds, tmp_path / "c.extxyz")
    again = C.read_structures(tmp_path / "c.extxyz")
    np.testing.assert_allclose(again.positions.values, ds.positions.values, equal_nan=True)
    np.testing.assert_allclose(again.energy.values, ds.energy.values)


def test_concat_pads_atoms():
    a = C.from_atoms([molecule("H2O")])
    b = C.from_atoms([molecule("CH4")])
    both = C.concat([a, b])
    assert both.sizes["config"] == 2 and both.sizes["atom"] == 5
    assert both.species.values[0, 3] == 0 and both.species.dtype == np.int32


def test_bad_input_is_clear(tmp_path):
    with pytest.raises(C.ConfigurationError, match="empty"):
        C.from_atoms([])
    with pytest.raises(FileNotFoundError, match="no such structure file"):
        C.read_structures(tmp_path / "missing.xyz")
    (tmp_path / "bad.xyz").write_text("this is not xyz\n")
    with pytest.raises(C.ConfigurationError, match="could not read"):
        C.read_structures(tmp_path / "bad.xyz")
    with pytest.raises(C.ConfigurationError, match="1..118"):
        C.make_configurations([np.zeros((1, 3))], [[200]])
