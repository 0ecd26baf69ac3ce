"""The Makefile's setup as a newcomer meets it: a Python whose venv module is missing."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What Debian's python3 says without python3-venv (ensurepip is split out of the package).
NO_VENV_PYTHON = """#!/bin/sh
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"  # Debian's venv leaves a half-made directory behind
  echo "The virtual environment was not created successfully because ensurepip is not" >&2
  echo "available.  On Debian/Ubuntu systems, you need to install the python3-venv" >&2
  exit 1
fi
exec python3 "$@"
"""


def test_a_missing_venv_module_is_named_and_nothing_half_made_is_left(tmp_path):
    python = tmp_path / "python3"
    python.write_text(NO_VENV_PYTHON)
    python.chmod(0o755)
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "-s", f"{venv}/.installed", f"VENV={venv}", f"PYTHON={python}", "ROOT="],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "-m venv failed: install the venv module" in done.stdout
    assert "sudo apt-get install python3-venv" in done.stdout
    assert not venv.exists()  # the next `make` tries again from scratch
