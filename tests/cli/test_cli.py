"""The ``torchgen`` command line: help, info on the bundled example, clean errors."""

import subprocess
import sys

import pytest

from torchgenetics.cli.main import main
from torchgenetics.datasets import example


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "info" in out and "demo" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: torchgen" in capsys.readouterr().out


def test_info_on_bundled_example(capsys):
    assert main(["info", "--bfile", example().bfile]) == 0
    out = capsys.readouterr().out
    assert "samples            1,000" in out
    assert "variants           5,000" in out
    assert "1: 2,500, 2: 2,500" in out
    assert "MAF histogram" in out


def test_info_missing_file_is_a_clean_error(tmp_path, capsys):
    assert main(["info", "--bfile", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "torchgen info: error:" in err and "nothing" in err


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "torchgenetics.cli.main", "--version"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out.startswith("torchgen ")
