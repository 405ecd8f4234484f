"""Marginal GWAS against plink2 --glm, and the mixed-model GWAS as a multiple of it.

Simulates a PLINK fileset with LD (default 4,000 samples x 20,000 variants on 4
chromosomes, 0.5% missing calls), a phenotype (h2 0.5, 200 causal variants) and 5
covariates into a temporary folder, then times in one run, from the files:

* ``plink2``: ``plink2 --bfile D --pheno D.pheno --covar D.covar --glm hide-covar omit-ref
  cols=+a1freq --threads T`` (wall time of the process, reading included);
* ``torchgen``: ``association_data`` (read and match the files) + ``gwas`` with ``T``
  torch threads (reading included);
* ``torchgen lmm``: the REML fit (``reml`` on the GRM of all variants) and then
  ``lmm_gwas(fit=...)`` (LOCO PCG solves + scan), each reported as a multiple of the
  marginal scan.

Prints variants per second, the time ratio (goal: torchgen within 2x of plink2) and
the largest relative difference of P (and of BETA) between the two marginal scans.
The default is one thread for both: on a shared 2-core machine torch's intra-op
threads spin against other processes.

Run: ``python benchmarks/gwas.py [--n 4000] [--m 20000] [--threads 1] [--no-lmm]``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torchgenetics.datasets import simulate_genotypes, simulate_phenotype, write_plink  # noqa: E402
from torchgenetics.gwas import gwas, lmm_gwas  # noqa: E402
from torchgenetics.gwas.inputs import association_data  # noqa: E402
from torchgenetics.operators import GRM  # noqa: E402
from torchgenetics.reml import reml  # noqa: E402


def make_data(folder: Path, n: int, m: int, seed: int) -> Path:
    """Write D.bed/.bim/.fam, D.pheno and D.covar; return the prefix."""
    sim = simulate_genotypes(n, m, chromosomes=4, seed=seed, missing_rate=0.005)
    prefix = folder / "D"
    write_plink(prefix, sim.dosages, sim.samples, sim.variants)
    rng = np.random.default_rng(seed)
    C = np.round(rng.normal(size=(n, 5)), 6)
    ph = simulate_phenotype(sim, h2=0.5, n_causal=200, covariates=C, covariate_effects=[0.2] * 5, seed=seed + 1)
    ids = {"FID": sim.samples["fid"], "IID": sim.samples["iid"]}
    pd.DataFrame({**ids, "y": np.round(ph.y, 6)}).to_csv(f"{prefix}.pheno", sep="\t", index=False)
    pd.DataFrame({**ids, **{f"c{i}": C[:, i] for i in range(5)}}).to_csv(f"{prefix}.covar", sep="\t", index=False)
    return prefix


def run_plink2(prefix: Path, threads: int) -> tuple[float, pd.DataFrame]:
    start = time.perf_counter()
    subprocess.run(["plink2", "--bfile", str(prefix), "--pheno", f"{prefix}.pheno", "--covar", f"{prefix}.covar",
                    "--glm", "hide-covar", "omit-ref", "cols=+a1freq", "--threads", str(threads),
                    "--out", f"{prefix}.plink2"], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return seconds, pd.read_csv(f"{prefix}.plink2.y.glm.linear", sep="\t")


def run_torchgen(prefix: Path):
    start = time.perf_counter()
    data = association_data(bfile=str(prefix), pheno=f"{prefix}.pheno", covar=f"{prefix}.covar")
    res = gwas(data.genotypes, data.y, data.covariates, phenotype_names=data.phenotype_names)
    return time.perf_counter() - start, res, data


def max_rel(ours: np.ndarray, theirs: np.ndarray) -> float:
    ok = np.isfinite(ours) & np.isfinite(theirs) & (theirs != 0)
    return float(np.max(np.abs(ours[ok] - theirs[ok]) / np.abs(theirs[ok])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--m", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-lmm", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        prefix = make_data(Path(tmp), args.n, args.m, args.seed)
        print(f"data: n = {args.n:,}, m = {args.m:,}, 5 covariates ({time.perf_counter() - start:.1f} s to simulate)")
        print(f"threads: {args.threads} (plink2 --threads, torch.set_num_threads)")
        t_ours, res, data = run_torchgen(prefix)
        rate = args.m / t_ours
        print(f"torchgen gwas : {t_ours:7.2f} s  {rate:10,.0f} variants/s")
        if shutil.which("plink2") is None:
            print("plink2        : not installed (Debian: apt-get install plink2); no comparison")
        else:
            t_plink, ref = run_plink2(prefix, args.threads)
            ours = res.to_frame("y").set_index("ID").loc[ref["ID"]]
            print(f"plink2 --glm  : {t_plink:7.2f} s  {args.m / t_plink:10,.0f} variants/s")
            print(f"time ratio torchgen / plink2: {t_ours / t_plink:.2f} (goal <= 2)")
            print(f"max relative difference: P {max_rel(ours['P'].to_numpy(float), ref['P'].to_numpy(float)):.2e}, "
                  f"BETA {max_rel(ours['BETA'].to_numpy(float), ref['BETA'].to_numpy(float)):.2e} "
                  "(plink2 prints 6 significant digits: <= 5e-6 is agreement)")
        if not args.no_lmm:
            G, y, C = data.phenotype("y")
            start = time.perf_counter()
            fit = reml(y, {"GRM": GRM(G)}, covariates=C, covariate_names=data.covariate_names, seed=args.seed)
            t_reml = time.perf_counter() - start
            start = time.perf_counter()
            lmm = lmm_gwas(G, y, C, fit=fit, phenotype_name="y", covariate_names=data.covariate_names,
                           seed=args.seed)
            t_scan = time.perf_counter() - start
            print(f"torchgen REML : {t_reml:7.2f} s  ({fit.method}, h2 {fit.h2_total:.3f}) "
                  f"= {t_reml / t_ours:.1f} x the marginal scan")
            print(f"torchgen lmm  : {t_scan:7.2f} s  {args.m / t_scan:10,.0f} variants/s  "
                  f"= {t_scan / t_ours:.1f} x the marginal scan given the fit "
                  f"(LOCO PCG iterations {lmm.info['cg_iterations']}); with REML {(t_reml + t_scan) / t_ours:.1f} x")


if __name__ == "__main__":
    main()
