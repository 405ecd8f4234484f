"""``torchgen deepwas``: train a functional prior on GWAS statistics, predict variances."""

from __future__ import annotations

__all__ = ["add_parser", "run_train", "run_predict"]


def add_parser(subparsers) -> None:
    """Register ``torchgen deepwas train`` and ``torchgen deepwas predict``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level parser's subcommand registry.

    Examples
    --------
    >>> import argparse
    >>> p = argparse.ArgumentParser(); sub = p.add_subparsers(dest="command"); add_parser(sub)
    >>> p.parse_args(["deepwas", "predict", "--model", "m.h5", "--annotations", "a", "--out", "o"]).action
    'predict'
    """
    from torchgenetics.cli._distributed import add_distributed_argument

    parser = subparsers.add_parser(
        "deepwas",
        help="DeepWAS: neural functional priors trained on the GWAS likelihood",
        description="Train a prior network mapping variant annotations to effect variances on "
                    "the full marginal likelihood of summary statistics under LD, or predict "
                    "variances with a trained one.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train a prior (writes PREFIX.model.h5, PREFIX.history.tsv)")
    train.add_argument("--sumstats", required=True, metavar="FILE",
                       help="summary statistics: variant id, z (or beta and se), n, chrom, pos")
    train.add_argument("--annotations", required=True, metavar="FILE",
                       help="annotation table (id + feature columns) or HDF5 (windowed tracks)")
    train.add_argument("--ld", required=True, metavar="DIR",
                       help="LD HDF5 file, or directory of them (BlockLD/BandedLD.save)")
    train.add_argument("--config", metavar="YAML", help="run configuration (configs/deepwas.yaml)")
    train.add_argument("--out", required=True, metavar="PREFIX", help="output prefix")
    train.add_argument("--n", type=float, metavar="N", help="GWAS sample size if the file has no n column")
    train.add_argument("--val-chrom", nargs="+", metavar="CHR",
                       help="chromosomes held out for validation (overrides the config)")
    train.add_argument("--epochs", type=int, help="training epochs (overrides the config)")
    train.add_argument("--seed", type=int, help="seed (overrides the config)")
    train.add_argument("--device", default=None, help="torch device (default cpu)")
    train.add_argument("--verbose", action="store_true", help="progress bar")
    add_distributed_argument(train)
    train.set_defaults(func=run_train)

    predict = actions.add_parser("predict", help="per-variant prior variances from a trained prior")
    predict.add_argument("--model", required=True, metavar="FILE", help="PREFIX.model.h5 from train")
    predict.add_argument("--annotations", required=True, metavar="FILE", help="annotations to score")
    predict.add_argument("--out", required=True, metavar="FILE", help="output TSV")
    predict.set_defaults(func=run_predict)


def run_train(args) -> int:
    """Read the inputs, fit, write ``PREFIX.model.h5`` and ``PREFIX.history.tsv``, print a summary.

    With ``--distributed`` (under torchrun / srun) every rank reads the inputs and
    trains data-parallel (each global batch of regions split over the ranks: the
    same fit as one process); rank 0 writes the outputs.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        Exit status 0.

    Examples
    --------
    >>> from torchgenetics.cli.main import main
    >>> main(["deepwas", "train", "--sumstats", "s.tsv", "--annotations", "a.tsv",
    ...       "--ld", "ld/", "--out", "run"])  # doctest: +SKIP
    """
    from torchgenetics.cli._distributed import distributed_session

    with distributed_session(args.distributed) as distributed:
        return _train(args, distributed)


def _train(args, distributed: bool) -> int:
    from torchgenetics.deepwas.config import DeepWASConfig
    from torchgenetics.deepwas.data import Annotations, SumStats, read_ld
    from torchgenetics.deepwas.fit import fit_deepwas
    from torchgenetics.distributed import is_main

    device = args.device
    if distributed and device is None:  # one GPU per rank when there are GPUs
        from torchgenetics.distributed import device_for_rank

        device = str(device_for_rank()) if device_for_rank().type == "cuda" else None
    cfg = DeepWASConfig.coerce(args.config)
    cfg = cfg.updated("training", epochs=args.epochs, seed=args.seed)
    if args.val_chrom:
        cfg = cfg.updated("data", val_chromosomes=list(args.val_chrom))
    sumstats = SumStats.read(args.sumstats, n=args.n)
    annotations = Annotations.read(args.annotations)
    ld = read_ld(args.ld, device=device)
    fit = fit_deepwas(sumstats, annotations, ld, cfg, device=device, verbose=args.verbose,
                      distributed=distributed)
    if not is_main():  # rank 0 writes the (identical) fit
        return 0
    fit.save(f"{args.out}.model.h5")
    fit.history.epochs.to_csv(f"{args.out}.history.tsv", sep="\t", index=False, float_format="%.8g")
    print(fit.summary())
    print(f"wrote {args.out}.model.h5 and {args.out}.history.tsv")
    return 0


def run_predict(args) -> int:
    """Load a trained prior, score the annotations, write a TSV.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        Exit status 0.

    Examples
    --------
    >>> from torchgenetics.cli.main import main
    >>> main(["deepwas", "predict", "--model", "run.model.h5", "--annotations", "a.tsv",
    ...       "--out", "pred.tsv"])  # doctest: +SKIP
    """
    from torchgenetics.deepwas.data import Annotations
    from torchgenetics.deepwas.fit import DeepWASFit
    from torchgenetics.deepwas.predict import predict_variance, write_predictions

    fit = DeepWASFit.load(args.model)
    annotations = Annotations.read(args.annotations)
    half = int(fit.config["data"].get("track_half_width") or 0)
    if half > 0 and annotations.values.ndim == 2:
        annotations = annotations.windowed(half)
    frame = predict_variance(fit, annotations)
    write_predictions(frame, args.out)
    print(f"predicted prior variances of {len(frame):,} variants -> {args.out}")
    return 0
