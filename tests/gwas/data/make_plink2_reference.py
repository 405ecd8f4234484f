"""Regenerate the plink2 --glm reference outputs used by tests/gwas/test_plink2_reference.py.

Run from the repository root with plink2 on the PATH (Debian: apt-get install plink2):

    .venv/bin/python tests/gwas/data/make_plink2_reference.py

It writes, next to this script:

* ``example2.pheno``       two phenotypes on the bundled example's samples: ``pheno`` (a copy
                           of example.pheno) and ``pheno_b`` (seeded, with 40 extra NA);
* ``example.extract``      every 5th variant ID of the example (keeps the reference small);
* ``edge.bed/.bim/.fam``, ``edge.pheno``, ``edge.covar``  a 400 x 200 simulated set with 2%
                           missing calls and variants plink2 refuses to test (constant, nearly
                           all missing, identical to a covariate, nearly collinear);
* ``*.glm.linear.gz``      plink2's outputs (gzipped), from the commands in ``COMMANDS``.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))

from torchgenetics.datasets import example, simulate_genotypes, write_plink  # noqa: E402

EX = example().bfile
# plink2 --glm, tested allele = ALT (.bim column 5; 'omit-ref': older plink2 default to the minor allele).
COMMANDS = {
    "example": ["plink2", "--bfile", EX, "--pheno", str(HERE / "example2.pheno"), "--covar", EX + ".covar",
                "--extract", str(HERE / "example.extract"), "--glm", "hide-covar", "omit-ref",
                "cols=+a1freq", "--threads", "1", "--out", str(HERE / "example")],
    "edge": ["plink2", "--bfile", str(HERE / "edge"), "--pheno", str(HERE / "edge.pheno"),
             "--covar", str(HERE / "edge.covar"), "--glm", "hide-covar", "omit-ref", "cols=+a1freq",
             "--threads", "1", "--out", str(HERE / "edge")],
    "edge_nocovar": ["plink2", "--bfile", str(HERE / "edge"), "--pheno", str(HERE / "edge.pheno"),
                     "--glm", "hide-covar", "omit-ref", "allow-no-covars", "cols=+a1freq",
                     "--threads", "1", "--out", str(HERE / "edge_nocovar")],
}


def write_example_inputs() -> None:
    pheno = pd.read_csv(EX + ".pheno", sep="\t")
    rng = np.random.default_rng(11)
    b = np.round(rng.normal(size=len(pheno)) + 0.02 * np.arange(len(pheno)) % 3, 6).astype(object)
    b[rng.choice(len(pheno), 40, replace=False)] = "NA"
    pheno["pheno_b"] = b
    pheno.to_csv(HERE / "example2.pheno", sep="\t", index=False, na_rep="NA")
    ids = pd.read_csv(EX + ".bim", sep="\t", header=None)[1]
    (HERE / "example.extract").write_text("\n".join(ids[::5]) + "\n")


def write_edge_inputs() -> None:
    """The simulated set with edge cases (see the module docstring)."""
    rng = np.random.default_rng(5)
    sim = simulate_genotypes(400, 200, chromosomes=2, seed=3, missing_rate=0.02)
    X = sim.dosages.copy()
    c2 = rng.integers(0, 3, 400).astype(float)
    cov = pd.DataFrame({"FID": sim.samples.fid, "IID": sim.samples.iid, "c1": np.round(rng.normal(size=400), 6), "c2": c2})
    X[:, 5] = 1.0                                   # constant
    X[:, 6] = np.nan
    X[:3, 6] = [0, 1, 2]                            # almost all missing
    X[:, 7] = 0.0
    X[0, 7] = 1.0                                   # singleton
    X[:, 8] = c2                                    # identical to a covariate
    X[:, 9] = c2
    X[:3, 9] = c2[:3] + np.where(c2[:3] < 2, 1, -1)  # nearly collinear with it
    write_plink(HERE / "edge", X, sim.samples, sim.variants)
    y1 = np.round(np.nan_to_num(X[:, 20], nan=np.nan) * 0.3 + rng.normal(size=400), 6)
    y2 = np.round(rng.normal(size=400) + 0.5 * cov.c1.to_numpy(), 6)
    y2[rng.choice(400, 37, replace=False)] = np.nan
    y3 = np.round(rng.normal(size=400) * 3 + 100, 6)
    pd.DataFrame({"FID": sim.samples.fid, "IID": sim.samples.iid, "y1": y1, "y2": y2, "y3": y3}).to_csv(
        HERE / "edge.pheno", sep="\t", index=False, na_rep="NA")
    cov.to_csv(HERE / "edge.covar", sep="\t", index=False)


def main() -> None:
    if shutil.which("plink2") is None:
        sys.exit("plink2 is not on the PATH (Debian: apt-get install plink2)")
    write_example_inputs()
    write_edge_inputs()
    for name, cmd in COMMANDS.items():
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        for out in HERE.glob(f"{name}.*.glm.linear"):
            with open(out, "rb") as src, gzip.open(str(out) + ".gz", "wb", compresslevel=9) as dst:
                shutil.copyfileobj(src, dst)
            out.unlink()
        for extra in (".log",):
            (HERE / f"{name}{extra}").unlink(missing_ok=True)
    version = subprocess.run(["plink2", "--version"], capture_output=True, text=True).stdout.strip()
    (HERE / "PLINK2_VERSION").write_text(version + "\n")


if __name__ == "__main__":
    main()
