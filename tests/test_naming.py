"""The package must never shadow PyTorch's own top-level ``torchgen``."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_nothing_named_torchgen_in_repository():
    offenders = []
    for _folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in {".venv", ".git"}]
        offenders += [n for n in subfolders + files if n in {"torchgen", "torchgen.py"}]
    assert offenders == []


def test_import_torch_then_torchgenetics_from_repository_root():
    code = (
        "import torch, torchgen, torchgenetics, torchgen.model, os;"
        "print(os.path.dirname(torchgen.__file__));"
        "print(os.path.dirname(torch.__file__))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    torchgen_dir, torch_dir = out
    # torchgen must be the one installed beside torch, not anything in the repository.
    assert os.path.dirname(torchgen_dir) == os.path.dirname(torch_dir)
    assert not torchgen_dir.startswith(str(ROOT) + os.sep + "torchgen")


def test_console_script_is_named_torchgen():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'torchgen = "torchgenetics.cli.main:main"' in text
