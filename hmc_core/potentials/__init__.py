"""Potentials: the common interface (:mod:`.base`) and its implementations."""

from hmc_core.potentials.base import ForceField, Potential, PotentialError, check_potential
from hmc_core.potentials.harmonic import HarmonicWells
from hmc_core.potentials.lennard_jones import LennardJones

__all__ = ["ForceField", "HarmonicWells", "LennardJones", "Potential", "PotentialError", "check_potential"]
