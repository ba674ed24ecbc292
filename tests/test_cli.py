"""The command line: every group exists and the inference path stays torch-free."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from crackscan.cli import app

runner = CliRunner()

GROUPS = ["data", "train", "evaluate", "predict", "measure", "inspect", "export", "serve", "bench"]


def test_help_lists_every_group() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in GROUPS:
        assert group in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "crackscan" in result.output


def test_inference_modules_do_not_import_torch() -> None:
    code = (
        "import sys, crackscan.cli, crackscan.imageio, crackscan.data.layouts\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
