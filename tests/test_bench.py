"""The benchmark script runs end to end in its --quick mode and reports sane numbers."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "bench_cells.py"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--cells", "lstm", "gru", "--dtypes", "float64"]
    proc = subprocess.run([*cmd, "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(out.read_text())


def test_quick_run_prints_a_table_row_per_case(quick_run):
    stdout, _ = quick_run
    rows = [line for line in stdout.splitlines() if line.startswith("| lstm") or line.startswith("| gru")]
    assert len(rows) == 4  # printed as measured, then in the final table
    assert "openblas" in stdout.splitlines()[0] or "BLAS kernel unknown" in stdout.splitlines()[0]


def test_every_implementation_timed_in_both_modes(quick_run):
    _, data = quick_run
    torch_installed = importlib.util.find_spec("torch") is not None
    for r in data["results"]:
        for mode in ("fwd", "fwd+bwd"):
            med = r["median_s"][mode]
            expected = {"generated", "floor"} | ({"torch"} if torch_installed else set())
            assert set(med) == expected
            assert all(0 < v < 1 for v in med.values())
            assert all(len(s) == 2 for s in r["samples"][mode].values())


def test_floor_counts_the_gemms_of_the_algorithm(quick_run):
    """The floor's matrix multiplies, against a hand count for the LSTM (4 gates) and GRU (3)."""
    _, data = quick_run
    for r in data["results"]:
        B, T, I, H = r["shape"]
        G = {"lstm": 4, "gru": 3}[r["case"]["cell"]]
        forward = 2 * T * B * I * G * H + 2 * T * B * H * G * H
        assert r["info"]["floor"]["flops"] == {"fwd": forward, "fwd+bwd": 3 * forward}


def test_cache_is_the_minimum_backward_needs(quick_run):
    """The generated forward keeps exactly one (T, B, H) array per value backward reads: for the LSTM
    h and c as (T + 1)-sequences and i, f, g, o, tanh(c); for the GRU h and r, z, n, W_hn h + b_hn."""
    _, data = quick_run
    for r in data["results"]:
        B, T, _, H = r["shape"]
        per_step = {"lstm": 2 * (T + 1) + 5 * T, "gru": (T + 1) + 4 * T}[r["case"]["cell"]]
        mem = r["info"]["generated"]
        assert mem["min_bytes"] == per_step * B * H * 8
        assert mem["cache_bytes"] == mem["min_bytes"]
        assert mem["fwd_peak_bytes"] >= mem["cache_bytes"]


def test_profile_script_ranks_the_lines_of_forward_and_backward():
    require("line_profiler")
    script = ROOT / "bench" / "profile_cell.py"
    cmd = [sys.executable, str(script), "gru", "--size", "tiny", "--calls", "2", "--top", "40"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("gru tiny (B, T, I, H) = (2, 5, 4, 8) float64:")
    rows = [line.split(None, 4) for line in lines[2:]]
    times = [float(r[0]) for r in rows]
    assert times == sorted(times, reverse=True) and len(rows) == 40
    code = [r[4] for r in rows]
    assert any("np.matmul(h_prev, W_hh.T" in c for c in code)  # forward's recurrent GEMM
    assert any("np.matmul(grad_rows[t" in c for c in code)  # backward's


def test_workspace_mode_runs_and_says_so():
    cmd = [sys.executable, str(SCRIPT), "--quick", "--cells", "rnn", "--dtypes", "float32", "--workspace"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("generated code with workspace=")
    assert sum(line.startswith("| rnn | tiny") for line in lines) == 2
