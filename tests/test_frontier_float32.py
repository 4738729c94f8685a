"""The frontier in float32 (JAX's default) at the edges of its range (issue 13).

Without x64, budgets were cast to float32 before their log was taken ("overflow
encountered in cast" above 3.4e38 FLOPs) and huge parameters silently became inf.
Now ``log C`` is taken in float64 first, and values float32 cannot hold are refused
with a message naming them. Oracle: the closed form of Hoffmann et al. (2022, eq. 4)
in float64 NumPy.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from bayescale.errors import BayescaleError
from bayescale.laws.chinchilla import BESIROGLU_2024, LawParams
from bayescale.planning.frontier import frontier


def _closed_form_N(p: LawParams, C: float) -> float:
    E, A, B, alpha, beta = (float(v) for v in p)
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    return G * (C / 6) ** (beta / (alpha + beta))


@pytest.mark.parametrize("C", [1e24, 1e40, 1e60])
def test_budgets_beyond_float32_range_are_solved_in_logs(C):
    with jax.enable_x64(False):
        f = frontier(BESIROGLU_2024, [C])
        assert f.N_opt.dtype == np.float32
    np.testing.assert_allclose(float(f.N_opt[0, 0]), _closed_form_N(BESIROGLU_2024, C),
                               rtol=1e-5)
    assert bool(f.converged.all())


def test_an_optimum_beyond_float32_is_refused_with_the_budget():
    with jax.enable_x64(False), pytest.raises(BayescaleError, match=r"C = 1e\+90.*float64"):
        frontier(BESIROGLU_2024, [1e90])


def test_parameters_beyond_float32_are_refused_by_name():
    huge = BESIROGLU_2024._replace(A=1e50)
    with jax.enable_x64(False), pytest.raises(BayescaleError, match=r"parameter A = 1e\+50"):
        frontier(huge, [1e22])
    with jax.enable_x64(True):  # float64 holds it
        f = frontier(huge, [1e22])
    np.testing.assert_allclose(float(f.N_opt[0, 0]), _closed_form_N(huge, 1e22), rtol=1e-9)
