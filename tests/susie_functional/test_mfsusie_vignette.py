"""The seed vignette (two-pass scans with warm-start follow-up) replayed on simulated data:
a signal locus with two causal variants and a null locus, 2 outcomes of 32 positions."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import mf_data  # noqa: E402

from torchgenetics.susie import Locus, load_scan, scan  # noqa: E402
from torchgenetics.susie.functional import mfsusie  # noqa: E402

CAUSAL = (11, 79)
OPTS = {"L": 15, "L_greedy": 5, "prior_variance_scope": "per_outcome"}


_one_thread = pytest.fixture(scope="module", autouse=True)(mf_data.one_thread)


@pytest.fixture(scope="module")
def loci():
    return mf_data.vignette(causal=CAUSAL)


@pytest.fixture(scope="module")
def cold(loci):
    X, signal, _ = loci
    return mfsusie(X, signal, max_iter=100, **OPTS)


def _leads(fit):
    return sorted(int(cs[fit.pip[cs].argmax()]) for cs in fit.sets["cs"])


def test_signal_locus_finds_both_variants_in_separate_sets(cold):
    assert cold.converged
    assert len(cold.sets["cs"]) == 2
    assert _leads(cold) == sorted(CAUSAL)
    members = [set(cs.tolist()) for cs in cold.sets["cs"]]
    assert not members[0] & members[1]
    assert all(any(j in m for m in members) for j in CAUSAL)
    assert float(cold.pip[list(CAUSAL)].min()) > 0.95
    # greedy growth stopped at L_greedy effects: the extra ones are null
    assert cold.L == 5 and cold.greedy_history[-1]["action"] == "saturated"
    assert int((cold.V > 0).sum()) == 2


def test_null_locus_settles_fast_without_sets(loci):
    X, _, null = loci
    fit = mfsusie(X, null, max_iter=5, **OPTS)
    assert fit.converged and fit.n_iter <= 2
    assert fit.sets["cs"] == []
    assert float(fit.pip.max()) < 0.1


def test_warm_start_continues_the_cold_fit(loci, cold):
    X, signal, _ = loci
    with pytest.warns(RuntimeWarning, match="did not converge"):
        short = mfsusie(X, signal, max_iter=2, **OPTS)
    assert not short.converged and short.n_iter == 2
    warm = mfsusie(X, signal, max_iter=100, init=short, **OPTS)
    assert warm.converged
    assert float((warm.pip - cold.pip).abs().max()) < 1e-6
    assert abs(float(warm.elbo[-1] - cold.elbo[-1])) < 1e-8
    assert _leads(warm) == _leads(cold)
    # the follow-up only adds the iterations the partial fit was missing
    assert short.n_iter + warm.n_iter == cold.n_iter
    torch.testing.assert_close(torch.cat([short.elbo, warm.elbo]), cold.elbo, rtol=0, atol=1e-8)


def test_scan_triage_queues_only_the_signal_locus(loci, cold, tmp_path):
    X, signal, null = loci
    loci_list = [Locus.from_data("signal", {"X": X, "Y": signal}),
                 Locus(name="null", kind="functional", loader=lambda: {"X": X, "Y": null, "pos": [None, None]},
                       n_variables=X.shape[1])]
    seen = []
    out = scan(loci_list, L=15, first_max_iter=2, max_iter=100, checkpoint=tmp_path / "scan.h5",
               callback=lambda phase, names: seen.append((phase, names)),
               functional_options={"L_greedy": 5, "prior_variance_scope": "per_outcome"})
    table = out.table.set_index("locus")
    assert table.loc["signal", "status"] == "refit"
    assert table.loc["null", "status"] == "null"
    assert seen == [("first", ["signal", "null"]), ("second", ["signal"])]
    assert list(out.fits) == ["signal"]
    fit = out.fits["signal"]
    assert float((fit.pip - cold.pip).abs().max()) < 1e-6
    assert table.loc["signal", "n_iter"] == cold.n_iter and table.loc["signal", "n_cs"] == 2
    assert sorted(out.cs_frame()["lead_variable"].astype(int)) == sorted(CAUSAL)
    # the checkpoint holds the functional fits and reloads them
    again = load_scan(tmp_path / "scan.h5")
    torch.testing.assert_close(again.fits["signal"].pip, fit.pip)
    assert again.fits["signal"].prior_family == "mixture_normal"


def test_scan_rejects_unknown_functional_options(loci):
    X, signal, _ = loci
    with pytest.raises(Exception, match="not mfsusie options"):
        scan([Locus.from_data("a", (X, signal))], L=5, functional_options={"estimate_prior_method": "EM"})


def test_vignette_on_n3finemapping_genotypes():
    X = mf_data.n3_genotypes(120)
    if X is None:
        pytest.skip(f"N3finemapping not found in {mf_data.N3_DIR} (set TORCHGEN_N3_DIR)")
    X, signal, null = mf_data.vignette(causal=(36, 87), beta=(1.0, -0.6), sd=0.4, X=X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = mfsusie(X, signal, max_iter=100, **OPTS)
        fit_null = mfsusie(X, null, max_iter=5, **OPTS)
    assert _leads(fit) == [36, 87]
    assert fit_null.converged and fit_null.sets["cs"] == []
