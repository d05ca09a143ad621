"""Stop rules of flows/active_learning.py: details that mutation testing (``make mutation``, bench/mutation.py) found
untested: the label-budget lift at the iteration boundary and the exact stop messages (they are recorded in
DONE.json and metrics.nc and shown to users)."""

from __future__ import annotations

from flows.active_learning import budget_stop_lifted, stop_after_selecting, stop_before_exploring
from flows.config import StoppingConfig


def test_label_budget_lift_needs_iterations_left_too():
    stop = "label budget (20 labels); not converged"
    budgets = StoppingConfig(max_iterations=3, max_labels=30)
    assert budget_stop_lifted(stop, 2, 20, budgets)
    assert not budget_stop_lifted(stop, 3, 20, budgets)  # it == max_iterations: the iteration budget still stops
    assert not budget_stop_lifted(stop, 2, 30, budgets)
    assert not budget_stop_lifted("converged: no explored frame above grade 2.0", 0, 0, budgets)


def test_stop_messages_are_exact():
    s = StoppingConfig(max_iterations=3, max_labels=20, force_rmse_target=0.1)
    assert stop_before_exploring(1, 5, 0.05, s) == ("error target reached: test force RMSE 0.05 ≤ 0.1 eV/Å "
                                                    "(checked on the held-out set only)")
    assert stop_before_exploring(3, 5, 0.5, s) == "iteration budget (3 label rounds); not converged"
    assert stop_before_exploring(1, 20, 0.5, s) == "label budget (20 labels); not converged"
    assert stop_after_selecting(0, 2.0, s) == (
        "converged: no explored frame above grade 2.0 (checked: the frames this iteration's HMC chains visited; "
        "not checked: states they did not reach, and the size of the errors)")
