"""Readers and writers: PLINK genotypes, phenotype/covariate tables, component specs, HDF5 store.

Examples
--------
>>> from torchgenetics.io import read_plink, read_table, align, read_components, save_h5, load_h5
"""

from .components import ComponentSpec, read_components, write_components
from .plink import read_pgen, read_plink
from .store import FORMAT_VERSION, h5_format, load_h5, save_h5
from .tables import Alignment, AlignmentReport, align, read_table

__all__ = [
    "read_plink",
    "read_pgen",
    "read_table",
    "align",
    "Alignment",
    "AlignmentReport",
    "ComponentSpec",
    "read_components",
    "write_components",
    "FORMAT_VERSION",
    "h5_format",
    "load_h5",
    "save_h5",
]
