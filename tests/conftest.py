"""Shared test configuration.

Tests run on the CPU in float64 with rank promotion disallowed; data are read from
``../shared/data`` (beside the project root) unless ``BAYESCALE_DATA`` says otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
import pytest

jax.config.update("jax_platforms", "cpu")
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
os.environ.setdefault("BAYESCALE_DATA", str(SHARED_DATA))
os.environ.setdefault("BAYESCALE_OFFLINE", "1")


def _chinchilla_available() -> bool:
    return any((Path(p) / "chinchilla_svg_extracted.csv").is_file()
               for p in os.environ["BAYESCALE_DATA"].split(os.pathsep))


# Skip only where the data cannot be there; under CI a missing file must fail.
requires_chinchilla = pytest.mark.skipif(
    not _chinchilla_available() and not os.environ.get("CI"),
    reason="chinchilla_svg_extracted.csv not found; set BAYESCALE_DATA",
)


def _need_chinchilla():
    # CI always has ../shared/data: there a missing file is a failure, not a skip.
    if not _chinchilla_available() and not os.environ.get("CI"):
        pytest.skip("chinchilla_svg_extracted.csv not found; set BAYESCALE_DATA")


@pytest.fixture(scope="session")
def chinchilla_240():
    """Besiroglu et al.'s 240 runs: the 5 highest-loss runs dropped."""
    from bayescale import load_runs

    _need_chinchilla()
    return load_runs("chinchilla", exclude_top=5)


@pytest.fixture(scope="session")
def chinchilla_245():
    """All 245 digitised Chinchilla runs."""
    from bayescale import load_runs

    _need_chinchilla()
    return load_runs("chinchilla")


@pytest.fixture
def rng():
    return np.random.default_rng(20240416)
