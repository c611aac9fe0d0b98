"""The training scripts of examples/ run in a short mode (--steps) and their loss falls."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import require

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _losses(script: str, steps: int) -> tuple[float, float]:
    """(first, last) loss printed by `script --steps N`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # small arrays: one thread is fastest
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--steps", str(steps)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found = re.search(r"^loss ([0-9.]+) -> ([0-9.]+)$", proc.stdout, re.MULTILINE)
    assert found, proc.stdout
    steps_printed = re.findall(r"^step \d+ loss [0-9.]+$", proc.stdout, re.MULTILINE)
    assert len(steps_printed) >= 2, proc.stdout
    return float(found[1]), float(found[2])


@pytest.mark.parametrize("script", ["train_numpy.py", "train_torch.py"])
def test_the_loss_falls(script):
    if "torch" in script:
        require("torch")
    first, last = _losses(script, steps=40)
    assert last < 0.75 * first, (first, last)
