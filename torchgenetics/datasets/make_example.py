"""Make the bundled example dataset, byte for byte.

Run ``python -m torchgenetics.datasets.make_example [--out DIR]``; without ``--out`` the
files are written into the package's ``datasets/data`` folder. The same numpy version
gives identical bytes (the test suite checks this against the bundled copy).

The dataset: 1,000 samples x 5,000 SNPs on two chromosomes (2,500 each), 0.5% missing
calls; a phenotype with h2 = 0.3 (chromosome 1) + 0.2 (chromosome 2) from 300 causal
SNPs, age/sex/pc1/pc2 covariate effects and 10 samples with a missing phenotype.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from torchgenetics.datasets.simulate import simulate_genotypes, simulate_phenotype, write_plink

__all__ = ["make_example", "main", "EXAMPLE_SEED", "EXAMPLE_FILES", "DATA_DIR"]

#: Seed of every random draw in the example.
EXAMPLE_SEED = 20240917
#: Folder of the bundled files.
DATA_DIR = Path(__file__).resolve().parent / "data"
#: File names written by :func:`make_example`.
EXAMPLE_FILES = (
    "example.bed",
    "example.bim",
    "example.fam",
    "example.pheno",
    "example.covar",
    "example.components.json",
    "example.truth.json",
)

N_SAMPLES = 1000
CHROMOSOMES = (2500, 2500)
MISSING_RATE = 0.005
H2 = (0.3, 0.2)
N_CAUSAL = 300
N_MISSING_PHENO = 10
# Covariate effects: per year of age, male vs female, and the two (simulated) PCs.
COVARIATE_EFFECTS = {"age": 0.02, "sex_M": 0.3, "pc1": 0.1, "pc2": -0.05}


def _r(x, digits=10):
    """Round a float (or nested list of floats) for stable JSON text."""
    if isinstance(x, (list, tuple)):
        return [_r(v, digits) for v in x]
    return float(f"{float(x):.{digits}g}")


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def make_example(out_dir=None, seed: int = EXAMPLE_SEED) -> dict[str, Path]:
    """Simulate the example dataset and write its seven files into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path, optional
        Destination folder (created if needed); default: the package data folder.
    seed : int
        Master seed; the bundled files use :data:`EXAMPLE_SEED`.

    Returns
    -------
    dict
        File name -> path of each written file.

    Examples
    --------
    >>> import tempfile
    >>> paths = make_example(tempfile.mkdtemp())
    >>> sorted(paths)[:2]
    ['example.bed', 'example.bim']
    """
    out = Path(DATA_DIR if out_dir is None else out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ss = np.random.SeedSequence(seed)
    s_geno, s_cov, s_pheno, s_missing = ss.spawn(4)

    sim = simulate_genotypes(
        N_SAMPLES, sum(CHROMOSOMES), list(CHROMOSOMES), seed=s_geno, missing_rate=MISSING_RATE
    )
    samples, variants = sim.samples, sim.variants
    n = sim.n_samples

    # Covariates: age in years, sex from the .fam (1 = M, 2 = F), two N(0, 1) stand-ins for PCs.
    r_cov = np.random.default_rng(s_cov)
    age = r_cov.integers(40, 71, size=n).astype(np.float64)
    male = (samples["sex"].to_numpy() == 1).astype(np.float64)
    pcs = np.round(r_cov.standard_normal((n, 2)), 6)
    cov_matrix = np.column_stack([age, male, pcs])

    bounds = np.cumsum((0,) + CHROMOSOMES)
    comps = [np.arange(bounds[i], bounds[i + 1]) for i in range(len(CHROMOSOMES))]
    ph = simulate_phenotype(
        sim,
        h2=list(H2),
        n_causal=N_CAUSAL,
        components=comps,
        covariates=cov_matrix,
        covariate_effects=list(COVARIATE_EFFECTS.values()),
        seed=s_pheno,
    )
    missing = np.sort(np.random.default_rng(s_missing).choice(n, N_MISSING_PHENO, replace=False))
    observed = np.ones(n, dtype=bool)
    observed[missing] = False

    paths = {name: out / name for name in EXAMPLE_FILES}
    write_plink(out / "example", sim.dosages, samples, variants)

    fid, iid = samples["fid"].tolist(), samples["iid"].tolist()
    lines = ["#FID\tIID\tpheno"]
    for i in range(n):
        lines.append(
            f"{fid[i]}\t{iid[i]}\t{ph.y[i]:.6f}" if observed[i] else f"{fid[i]}\t{iid[i]}\tNA"
        )
    _write_text(paths["example.pheno"], "\n".join(lines) + "\n")

    lines = ["#FID\tIID\tage\tsex\tpc1\tpc2"]
    for i in range(n):
        sex = "M" if male[i] else "F"
        lines.append(f"{fid[i]}\t{iid[i]}\t{int(age[i])}\t{sex}\t{pcs[i, 0]:.6f}\t{pcs[i, 1]:.6f}")
    _write_text(paths["example.covar"], "\n".join(lines) + "\n")

    names = [f"chr{i + 1}" for i in range(len(comps))]
    entries = [
        json.dumps(
            {
                "name": name,
                "annotation": {"chromosome": str(i + 1), "n_variants": int(c.size)},
                "variant_indices": c.tolist(),
            },
            separators=(", ", ": "),
        )
        for i, (name, c) in enumerate(zip(names, comps, strict=True))
    ]
    _write_text(
        paths["example.components.json"],
        '{"components": [\n  ' + ",\n  ".join(entries) + "\n]}\n",
    )

    # Realized heritability among the samples that keep a phenotype (what REML sees).
    g, gc, e = ph.genetic_value[observed], ph.genetic_components[observed], ph.residual[observed]
    vy = float(np.var(g + e))
    ids = variants["id"].to_numpy()
    truth = {
        "description": (
            "Truth of the torchgenetics example: y = g_chr1 + g_chr2 + covariates @ effects + e "
            "on standardized genotypes (mean/variance over non-missing calls, missing -> 0). "
            "h2 targets are E var(g_c) with var(e) = 1 - sum(h2); realized values are "
            "var(g_c) / var(g + e) over the samples with a phenotype. pc1/pc2 are simulated "
            "N(0, 1) stand-ins, not genotype PCs. Dosages count allele a1 (PLINK A1)."
        ),
        "generator": "python -m torchgenetics.datasets.make_example",
        "seed": seed,
        "n_samples": n,
        "n_variants": sim.n_variants,
        "n_samples_with_phenotype": int(observed.sum()),
        "missing_phenotype_iids": [iid[i] for i in missing],
        "genotype_missing_rate": MISSING_RATE,
        "n_missing_calls": int(np.isnan(sim.dosages).sum()),
        "h2": _r(ph.h2),
        "realized_h2": _r(float(np.var(g)) / vy),
        "residual_variance": _r(1.0 - ph.h2),
        "components": [
            {
                "name": name,
                "h2": _r(ph.h2_components[i]),
                "realized_h2": _r(float(np.var(gc[:, i])) / vy),
                "n_causal": int((ph.causal_component == i).sum()),
            }
            for i, name in enumerate(names)
        ],
        "covariate_effects": {k: _r(v) for k, v in COVARIATE_EFFECTS.items()},
        "causal_indices": ph.causal.tolist(),
        "causal_ids": ids[ph.causal].tolist(),
        "causal_component": [names[i] for i in ph.causal_component],
        "effects_standardized": _r(ph.effects.tolist()),
        "effects_per_allele": _r(ph.allele_effects.tolist()),
    }
    _write_text(paths["example.truth.json"], json.dumps(truth, indent=1) + "\n")
    return paths


def main(argv=None) -> int:
    """Command-line entry: ``python -m torchgenetics.datasets.make_example --out DIR``.

    Examples
    --------
    >>> import tempfile
    >>> main(["--out", tempfile.mkdtemp(), "--quiet"])
    0
    """
    parser = argparse.ArgumentParser(
        prog="python -m torchgenetics.datasets.make_example",
        description="Write the torchgenetics example dataset (PLINK files, phenotype, "
        "covariates, components, truth).",
    )
    parser.add_argument("--out", default=None, help=f"output folder (default: {DATA_DIR})")
    parser.add_argument("--seed", type=int, default=EXAMPLE_SEED, help="master seed")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    paths = make_example(args.out, seed=args.seed)
    if not args.quiet:
        for name in EXAMPLE_FILES:
            print(f"{paths[name]}\t{paths[name].stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
