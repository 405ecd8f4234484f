"""``torchgen dream technical|cis|trans``: fit the bayesDREAM models of a CRISPR screen.

Each step reads the counts and the cell table, loads the fits earlier steps left in
``--out`` (``technical_<modality>.h5``, ``cis.h5``), runs one fit and writes its
HDF5 file and tab-separated summaries there.
"""

from __future__ import annotations

from pathlib import Path

STEPS = ("technical", "cis", "trans")
_SECTIONS = {"data", "device", "dtype", "seed", "threads"} | set(STEPS)
_STEP_KEYS = {
    "technical": {"cells", "batch_size", "n_samples", "guide", "optim"},
    "cis": {"batch_size", "n_samples", "guide", "optim"},
    "trans": {"form", "guide", "gate_prior", "n_scale", "degree", "prior_cv", "temperature", "batch_size",
              "n_samples", "optim"},
}


def add_parser(subparsers) -> None:
    """Register ``torchgen dream`` and its three steps.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level parser's subcommand registry.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="torchgen")
    >>> add_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["dream", "cis", "--counts", "c.csv", "--cells", "m.tsv",
    ...                           "--cis-gene", "GFI1B", "--out", "o"])
    >>> args.step, args.cis_gene
    ('cis', 'GFI1B')
    """
    import argparse

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--counts", required=True, metavar="FILE",
                        help="cells x features counts (.csv/.tsv with cell ids first, or .npz)")
    common.add_argument("--cells", required=True, metavar="FILE",
                        help="cell table: cell, guide, target (ntc for controls), [size_factor], [group]")
    common.add_argument("--cis-gene", required=True, metavar="NAME", help="perturbed cis feature (gene or peak)")
    common.add_argument("--config", metavar="YAML", help="run configuration (see configs/dream.yaml)")
    common.add_argument("--out", required=True, metavar="DIR", help="output directory (created if needed)")
    common.add_argument("--modality", default="counts", metavar="NAME",
                        help="modality to fit (technical, trans); default the counts")
    common.add_argument("--modality-file", metavar="FILE", help="extra modality values (cells x features)")
    common.add_argument("--family", choices=("normal", "studentt", "binomial"),
                        help="likelihood family of --modality-file")
    common.add_argument("--denominator-file", metavar="FILE", help="binomial denominators of --modality-file")
    common.add_argument("--n-steps", type=int, metavar="N", help="override optim.n_steps of the step")
    common.add_argument("--seed", type=int, help="override the configured seed")
    common.add_argument("--verbose", action="store_true", help="show a progress bar")
    parser = subparsers.add_parser(
        "dream",
        help="bayesDREAM: technical, cis and trans fits of a CRISPR perturbation screen",
        description="Fit the bayesDREAM Pyro models of a CRISPR screen, one step at a time: "
                    "technical (NTC cells), cis (x_true per cell), trans (dose-response per feature).",
    )
    steps = parser.add_subparsers(dest="step", metavar="STEP", required=True)
    for step, text in (("technical", "technical-group effects and noise on NTC cells"),
                       ("cis", "guide- and cell-level cis expression x_true"),
                       ("trans", "each trans feature as a dose-response curve of x_true")):
        sub = steps.add_parser(step, parents=[common], help=text, description=f"bayesDREAM {step} fit: {text}.")
        sub.set_defaults(func=run, step=step)


def load_config(path) -> dict:
    """Read and check a dream YAML config (unknown keys are named).

    Parameters
    ----------
    path : str or None
        YAML file; None gives the defaults (empty sections).

    Returns
    -------
    dict

    Examples
    --------
    >>> load_config(None)["trans"]
    {}
    """
    from torchgenetics.errors import FileFormatError, MissingFileError

    config: dict = {}
    if path is not None:
        import yaml

        file = Path(path)
        if not file.is_file():
            raise MissingFileError(file, "config")
        try:
            config = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as err:
            raise FileFormatError(file, f"not valid YAML ({err})") from None
        if not isinstance(config, dict):
            raise FileFormatError(file, "the top level must be a mapping")
        unknown = sorted(set(config) - _SECTIONS)
        if unknown:
            raise FileFormatError(file, f"unknown section(s) {unknown}; expected {sorted(_SECTIONS)}")
        for step in STEPS:
            extra = sorted(set(config.get(step) or {}) - _STEP_KEYS[step])
            if extra:
                raise FileFormatError(file, f"unknown key(s) {extra} in section {step!r}; "
                                            f"expected {sorted(_STEP_KEYS[step])}")
    for step in STEPS:
        config[step] = dict(config.get(step) or {})
    config["data"] = dict(config.get("data") or {})
    return config


def _build(args, config):
    import torch

    from torchgenetics.dream import BayesDream, make_modality, read_cells, read_counts
    from torchgenetics.errors import InputError

    counts = read_counts(args.counts)
    kwargs = {}
    if isinstance(counts, tuple):
        counts, kwargs["cell_ids"], kwargs["features"] = counts
    modalities = []
    if args.modality_file:
        if not args.family:
            raise InputError("--modality-file needs --family (normal, studentt or binomial)")
        values = read_counts(args.modality_file)
        den = read_counts(args.denominator_file) if args.denominator_file else None
        vkw = {}
        if isinstance(values, tuple):
            values, vkw["cell_ids"], vkw["features"] = values
        if isinstance(den, tuple):
            den = den[0]
        modalities.append(make_modality(args.modality, args.family, values, denominator=den, **vkw))
    data = config["data"]
    dtype = getattr(torch, str(config.get("dtype", "float64")))
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))
    seed = args.seed if args.seed is not None else int(config.get("seed", 0))
    return BayesDream(counts, read_cells(args.cells), args.cis_gene, modalities=modalities,
                      ntc_label=data.get("ntc_label", "ntc"), baseline_group=data.get("baseline_group"),
                      columns=data.get("columns"), device=config.get("device"), dtype=dtype, seed=seed, **kwargs)


def _fit_kwargs(section: dict, args) -> dict:
    out = {k: v for k, v in section.items() if k != "optim"}
    out["config"] = dict(section.get("optim") or {})
    if args.n_steps is not None:
        out["config"]["n_steps"] = args.n_steps
    if args.verbose:
        out["config"]["verbose"] = True
    if "temperature" in out:
        out["temperature"] = tuple(out["temperature"])
    return out


def run(args) -> int:
    """Run one bayesDREAM step and write its outputs.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed ``torchgen dream <step>`` arguments.

    Returns
    -------
    int
        Exit status 0.

    Examples
    --------
    >>> from torchgenetics.cli.main import main
    >>> main(["dream", "technical", "--counts", "c.csv", "--cells", "m.tsv",
    ...       "--cis-gene", "G", "--out", "o"])  # doctest: +SKIP
    """
    from torchgenetics.dream import CisFit, TechnicalFit
    from torchgenetics.errors import InputError

    config = load_config(args.config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dm = _build(args, config)
    kwargs = _fit_kwargs(config[args.step], args)
    tech_file = out / f"technical_{args.modality if args.step != 'cis' else 'counts'}.h5"
    if args.step != "technical" and tech_file.is_file():
        fit = TechnicalFit.load(tech_file)
        dm.technical[fit.modality] = fit
    if args.step == "technical":
        fit = dm.fit_technical(args.modality, **kwargs)
        fit.save(tech_file)
        fit.group_effects().to_csv(out / f"technical_{args.modality}_effects.tsv", sep="\t", index=False)
        fit.to_frame().to_csv(out / f"technical_{args.modality}.tsv", sep="\t")
        written = [tech_file.name, f"technical_{args.modality}_effects.tsv", f"technical_{args.modality}.tsv"]
    elif args.step == "cis":
        fit = dm.fit_cis(**kwargs)
        fit.save(out / "cis.h5")
        fit.guides_frame().to_csv(out / "cis_guides.tsv", sep="\t")
        fit.cells_frame().to_csv(out / "cis_cells.tsv", sep="\t")
        written = ["cis.h5", "cis_guides.tsv", "cis_cells.tsv"]
    else:
        cis_file = out / "cis.h5"
        if not cis_file.is_file():
            raise InputError(f"{cis_file} not found: run `torchgen dream cis ... --out {out}` first")
        dm.cis = CisFit.load(cis_file)
        fit = dm.fit_trans(args.modality, **kwargs)
        fit.save(out / f"trans_{args.modality}.h5")
        fit.to_frame().to_csv(out / f"trans_{args.modality}.tsv", sep="\t")
        written = [f"trans_{args.modality}.h5", f"trans_{args.modality}.tsv"]
    print(dm.summary())
    print(f"{args.step}: {fit.n_iter} SVI steps in {fit.run.seconds:.1f} s "
          f"({'early stop' if fit.converged else 'all steps'}), batch "
          f"{'all cells' if fit.batch_size is None else fit.batch_size}; {fit.prior_report}")
    print("wrote " + ", ".join(str(out / w) for w in written))
    return 0
