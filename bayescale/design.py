"""``bayescale.design``: which runs to train next. The same module as
:mod:`bayescale.planning.design` (``from bayescale.design import next_runs`` and
``bayescale.design.next_runs(fit, ...)`` both reach it); see there."""

from bayescale.planning.design import (  # noqa: F401
    OBJECTIVES,
    Design,
    default_candidates,
    next_runs,
    noise_scale,
)

__all__ = ["Design", "next_runs", "OBJECTIVES", "default_candidates", "noise_scale"]
