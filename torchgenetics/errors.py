"""Exceptions raised on bad input.

Every error names where the problem is (file, line, sample or variant) and what
was expected, so a user can fix the input without reading the source.
"""

from __future__ import annotations

__all__ = [
    "TorchgenError",
    "InputError",
    "FileFormatError",
    "MissingFileError",
    "SampleError",
    "PhenotypeError",
    "ComponentSpecError",
    "MemoryBudgetError",
    "MissingExtraError",
    "ConvergenceError",
]


class TorchgenError(Exception):
    """Base class of every error raised by torchgenetics."""


class InputError(TorchgenError, ValueError):
    """Input values that cannot be used as given.

    Examples
    --------
    >>> raise InputError("y has 3 rows but X has 4")
    Traceback (most recent call last):
    ...
    torchgenetics.errors.InputError: y has 3 rows but X has 4
    """


class FileFormatError(InputError):
    """A file exists but its content is not in the expected format.

    Parameters
    ----------
    path : str
        The offending file.
    message : str
        What is wrong and what was expected.
    line : int, optional
        1-based line number, when the problem is on one line.

    Examples
    --------
    >>> str(FileFormatError("a.fam", "expected 6 columns, found 5", line=3))
    'a.fam, line 3: expected 6 columns, found 5'
    """

    def __init__(self, path, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        where = self.path if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {message}")


class MissingFileError(TorchgenError, FileNotFoundError):
    """A file the caller named does not exist.

    Examples
    --------
    >>> str(MissingFileError("data/cohort.bed", "PLINK .bed"))
    'PLINK .bed file not found: data/cohort.bed'
    """

    def __init__(self, path, what: str = "file"):
        self.path = str(path)
        super().__init__(f"{what} file not found: {self.path}")

    def __str__(self) -> str:
        return self.args[0]


class SampleError(InputError):
    """Samples that are duplicated, missing or do not overlap between inputs."""


class PhenotypeError(InputError):
    """A phenotype or covariate column that cannot be used (non-numeric, all missing)."""


class ComponentSpecError(InputError):
    """A variance-component specification that does not fit the genotypes."""


class MemoryBudgetError(TorchgenError, MemoryError):
    """The memory budget cannot hold even the smallest unit of work."""


class MissingExtraError(TorchgenError, ImportError):
    """An optional dependency is needed; the message names the pip extra.

    Examples
    --------
    >>> str(MissingExtraError("pgenlib", "pgen"))
    "reading this needs the optional package 'pgenlib': pip install 'torchgenetics[pgen]'"
    """

    def __init__(self, package: str, extra: str):
        super().__init__(
            f"reading this needs the optional package '{package}': "
            f"pip install 'torchgenetics[{extra}]'"
        )


class ConvergenceError(TorchgenError, RuntimeError):
    """An iterative method did not reach its tolerance and the caller asked to raise."""
