"""Published coefficient sets, usable wherever a fit is (as a point estimate).

``bayescale.published(NAME)`` turns one into a point-estimate
:class:`~bayescale.estimators.fit.ScalingFit`, so ``frontier``, ``decide`` and the
Python planning functions answer from a paper's law; ``bayescale laws`` lists them.

>>> from bayescale.laws.published import PUBLISHED
>>> PUBLISHED["muennighoff2023"].law
'data_constrained'
"""

from __future__ import annotations

from typing import Any, NamedTuple

from bayescale.errors import BayescaleError
from bayescale.laws.chinchilla import BESIROGLU_2024, HOFFMANN_2022, HOFFMANN_2022_UNROUNDED
from bayescale.laws.data_constrained import MUENNIGHOFF_2023
from bayescale.laws.kaplan import KAPLAN_2020

__all__ = ["Published", "PUBLISHED", "get_published"]


class Published(NamedTuple):
    """One published coefficient set: the law it belongs to, its parameters, where it
    was published, and what to know before using it."""

    name: str
    law: str
    params: Any
    citation: str
    note: str


PUBLISHED: dict[str, Published] = {p.name: p for p in (
    Published("hoffmann2022", "chinchilla", HOFFMANN_2022,
              "J. Hoffmann et al., arXiv:2203.15556 (2022), eq. 10 (Approach 3), as printed",
              "rounded as printed (E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28); gives "
              "N_opt 32.2B at 5.76e23 FLOPs"),
    Published("hoffmann2022_unrounded", "chinchilla", HOFFMANN_2022_UNROUNDED,
              "J. Hoffmann et al. (2022), Approach 3, unrounded values as recovered by "
              "T. Besiroglu et al., arXiv:2404.10102 (2024)",
              "the values behind Hoffmann et al.'s Table 3 (40.4B at 5.76e23 FLOPs)"),
    Published("besiroglu2024", "chinchilla", BESIROGLU_2024,
              "T. Besiroglu, E. Erdil, M. Barnett, J. You, arXiv:2404.10102 (2024), Table 1",
              "the refit on the 240 digitised Chinchilla runs (72.2B at 5.76e23 FLOPs)"),
    Published("kaplan2020", "kaplan", KAPLAN_2020,
              "J. Kaplan et al., arXiv:2001.08361 (2020), eq. 1.5 and Table 2",
              "N counts non-embedding parameters; losses in nats on WebText2; no "
              "irreducible term"),
    Published("muennighoff2023", "data_constrained", MUENNIGHOFF_2023,
              "N. Muennighoff et al., NeurIPS 2023, arXiv:2305.16264 "
              "(huggingface/datablations README)",
              "needs a unique-token budget U (unique_tokens=, --unique-tokens)"),
)}


def get_published(name: str) -> Published:
    """The published coefficient set ``name`` (see :data:`PUBLISHED`)."""
    try:
        return PUBLISHED[str(name)]
    except KeyError:
        raise BayescaleError(f"no published law {name!r}; choose one of "
                             f"{', '.join(sorted(PUBLISHED))}.") from None
