"""The command line: groups exist, pending ones say so and exit 2, inference stays torch-free."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from crackscan.cli import app
from crackscan.cli._pending import PENDING

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


@pytest.mark.parametrize("name", sorted(PENDING))
def test_pending_groups_say_so_and_exit_2(name: str) -> None:
    registered = {c.name for c in app.registered_commands}
    if name not in registered:
        pytest.skip(f"{name} is built")
    result = runner.invoke(app, [name, "anything", "--flag", "x"])
    assert result.exit_code == 2
    assert "not built yet" in result.output


def test_inference_modules_do_not_import_torch() -> None:
    code = (
        "import sys, crackscan.cli, crackscan.imageio, crackscan.data.layouts\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
