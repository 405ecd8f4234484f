"""Manhattan and QQ plots."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from torchgenetics.errors import MissingExtraError
from torchgenetics.gwas import gwas
from torchgenetics.plot import gwas_plots, manhattan, qq

PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def result(small_missing):
    d = small_missing
    return gwas(d["G"], d["Y"], d["C"], phenotype_names=["a", "b"])


def test_png_files(result, tmp_path):
    paths = gwas_plots(result, tmp_path / "run")
    assert [p.name for p in paths] == ["run.a.manhattan.png", "run.a.qq.png", "run.b.manhattan.png", "run.b.qq.png"]
    for p in paths:
        assert p.read_bytes()[:4] == PNG


def test_axes_content(result):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    ax = manhattan(result, "b", threshold=1e-6, suggestive=None)
    assert len(ax.collections) == 2                       # one scatter per chromosome
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"]
    top = max(c.get_offsets()[:, 1].max() for c in ax.collections)
    assert top == pytest.approx(-np.nanmin(result.log10_p[:, 1]))
    ax = qq(result.to_frame("a"))
    assert "lambda" in ax.texts[0].get_text()


def test_missing_matplotlib_names_the_extra(result, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match="notebooks"):
        manhattan(result, path=tmp_path / "m.png")
