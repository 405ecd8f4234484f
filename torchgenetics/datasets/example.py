"""The bundled example dataset: a small PLINK cohort with a phenotype of known heritability."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from torchgenetics.errors import MissingFileError

__all__ = ["ExampleData", "example"]

_DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class ExampleData:
    """Paths of the example dataset's files (all ``str``).

    Attributes
    ----------
    bfile : str
        PLINK prefix: ``bfile + ".bed"``, ``".bim"``, ``".fam"``.
    pheno : str
        Tab-separated ``#FID IID pheno`` table; ``NA`` marks a missing phenotype.
    covar : str
        Tab-separated ``#FID IID age sex pc1 pc2`` table; ``sex`` is ``M``/``F``.
    components : str
        JSON ``{"components": [{"name", "annotation", "variant_indices"}, ...]}``; the
        annotation is an object (``{"chromosome": "1", "n_variants": 2500}``).
    truth : str
        JSON with the simulation truth (h2 per component, causal indices, effects, seed).

    Examples
    --------
    >>> ex = example()
    >>> ex.bed.endswith("example.bed")
    True
    """

    bfile: str
    pheno: str
    covar: str
    components: str
    truth: str

    @property
    def bed(self) -> str:
        """Path of the ``.bed`` file."""
        return self.bfile + ".bed"

    @property
    def bim(self) -> str:
        """Path of the ``.bim`` file."""
        return self.bfile + ".bim"

    @property
    def fam(self) -> str:
        """Path of the ``.fam`` file."""
        return self.bfile + ".fam"

    def load_truth(self) -> dict:
        """The truth JSON as a dict.

        Examples
        --------
        >>> example().load_truth()["h2"]
        0.5
        """
        with open(self.truth, encoding="utf-8") as f:
            return json.load(f)


def example() -> ExampleData:
    """Paths of the bundled example dataset.

    1,000 samples x 5,000 SNPs on chromosomes 1 and 2 (2,500 each, LD from
    :func:`~torchgenetics.datasets.simulate_genotypes`, about 0.5% missing calls);
    a phenotype with target h2 0.3 (chromosome 1) + 0.2 (chromosome 2) from 300
    causal SNPs, covariate effects of age, sex (``M``/``F``), pc1 and pc2, and 10
    samples with phenotype ``NA``. The files are rebuilt bit for bit by
    ``python -m torchgenetics.datasets.make_example``.

    Returns
    -------
    ExampleData
        ``bfile`` (PLINK prefix), ``pheno``, ``covar``, ``components``, ``truth``.

    Raises
    ------
    MissingFileError
        If a bundled file is absent (regenerate it with ``make_example``).

    Examples
    --------
    >>> ex = example()
    >>> from bed_reader import open_bed
    >>> with open_bed(ex.bed) as bed:
    ...     bed.shape
    (1000, 5000)
    """
    prefix = _DATA_DIR / "example"
    data = ExampleData(
        bfile=str(prefix),
        pheno=str(_DATA_DIR / "example.pheno"),
        covar=str(_DATA_DIR / "example.covar"),
        components=str(_DATA_DIR / "example.components.json"),
        truth=str(_DATA_DIR / "example.truth.json"),
    )
    for path in (data.bed, data.bim, data.fam, data.pheno, data.covar, data.components, data.truth):
        if not Path(path).is_file():
            raise MissingFileError(
                path, "example dataset (rebuild: python -m torchgenetics.datasets.make_example)"
            )
    return data
