"""Potentials: the common interface (:mod:`.base`) and its implementations."""

from hmc_core.potentials.base import ForceField, Potential, PotentialError, check_potential
from hmc_core.potentials.harmonic import HarmonicWells
from hmc_core.potentials.lennard_jones import LennardJones
from hmc_core.potentials.lj_cluster import LennardJonesCluster

__all__ = ["ForceField", "HarmonicWells", "LennardJones", "LennardJonesCluster", "Potential", "PotentialError",
           "check_potential"]
