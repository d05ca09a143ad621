"""Local minimisation ("quenching") of a configuration on a force field.

:func:`local_minimum` uses the potential's own compiled minimiser when it has one (e.g.
:meth:`~hmc_core.potentials.lj_cluster.LennardJonesCluster.minimize`, a Numba L-BFGS: ~3 ms per LJ₃₈
quench) and otherwise scipy's L-BFGS-B on ``ForceField.energy_forces``. Evaluations are added to the
force field's ``n_evaluations`` either way, so samplers that quench report their whole cost.
Units: those of the force field (energy, length); ``gtol`` is the largest force component allowed.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from hmc_core.potentials.base import ForceField


def local_minimum(ff: ForceField, positions, gtol: float = 1e-6, max_iter: int = 5000) -> tuple[float, np.ndarray]:
    """(energy, positions (N, 3)) of the local minimum reached from ``positions`` (N, 3)."""
    if not (gtol > 0 and max_iter >= 1):
        raise ValueError(f"local_minimum: need gtol > 0 and max_iter ≥ 1, got gtol={gtol}, max_iter={max_iter}")
    x0 = np.ascontiguousarray(positions, dtype=np.float64).reshape(ff.n_atoms, 3)
    own = getattr(ff.potential, "minimize", None)
    if own is not None and not ff.pbc.any():
        energy, x, n_eval = own(x0, max_iter=max_iter, gtol=gtol)
        ff.record_evaluations(n_eval, energy)
        return energy, x

    def fun(flat):
        e, f = ff.energy_forces(flat.reshape(ff.n_atoms, 3).copy())
        return e, -f.ravel()

    res = minimize(fun, x0.ravel(), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "gtol": gtol, "ftol": 1e-15, "maxcor": 10})
    return float(res.fun), res.x.reshape(ff.n_atoms, 3)
