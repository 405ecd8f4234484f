"""Shared data for the SuSiE tests: N3finemapping (real genotypes) and small simulations."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from make_reference import load_n3  # noqa: E402
from susie_helpers import univariate_z  # noqa: E402

N3_DIR = Path(os.environ.get("TORCHGEN_N3_DIR", Path(__file__).resolve().parents[3] / "shared" / "data" / "n3finemapping"))
REFERENCE = HERE / "data" / "pysusie_n3_reference.npz"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The fits here are small; on a busy shared 2-core machine waking a second
    intra-op thread for every small product costs more than it saves."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def n3():
    """X (574 x 1001), y, z-scores and R of susieR's N3finemapping data."""
    if not (N3_DIR / "N3finemapping_X.csv.gz").exists():
        pytest.skip(f"N3finemapping not found in {N3_DIR} (set TORCHGEN_N3_DIR)")
    X, y = load_n3(N3_DIR)
    return {"X": X, "y": y, "z": univariate_z(X, y), "R": np.corrcoef(X, rowvar=False)}


@pytest.fixture(scope="session")
def reference():
    """pysusie's saved fits (see make_reference.py)."""
    return dict(np.load(REFERENCE))
