"""Scaling laws: the :class:`~bayescale.laws.base.Law` concept, its one shared evaluation
helper, and the shipped families (``chinchilla``, ``kaplan``, ``data_constrained``,
``farseer``).

>>> from bayescale.laws import get_law, loss
>>> get_law("kaplan").param_names
('N_c', 'D_c', 'alpha_N', 'alpha_D')
"""

from bayescale.laws.base import Law, Prior, log_loss_theta, register  # noqa: F401
from bayescale.laws.registry import get_law, law_names, law_of, log_loss, loss  # noqa: F401

__all__ = ["Law", "Prior", "get_law", "law_names", "law_of", "log_loss", "log_loss_theta",
           "loss", "register"]
