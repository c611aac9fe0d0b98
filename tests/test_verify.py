"""`symlstm verify`: one table, rows = cells, columns = checks; non-zero exit status on any failure."""

from __future__ import annotations

import io
import re
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import symlstm
import symlstm.verify as verify
from symlstm.cli import main
from symlstm.verify import CHECKS, format_table, is_smooth, verify_cell


def _broken_rnn():
    """The generated rnn with dW_hh transposed."""
    rnn = symlstm.load("rnn")

    def backward(params, cache, dy, dstate=None):
        dparams, dx, dstate0 = rnn.backward(params, cache, dy, dstate)
        dparams["W_hh"] = dparams["W_hh"].T.copy()
        return dparams, dx, dstate0

    names = ("CELL", "STATES", "BLOCKS", "TORCH_NAMES", "init_params", "forward", "jvp", "from_torch")
    return SimpleNamespace(**{k: getattr(rnn, k) for k in names}, backward=backward)


def test_verify_rnn_prints_one_table_and_exits_zero(capsys):
    assert main(["verify", "rnn"]) == 0
    out = capsys.readouterr().out
    header, rule, row = out.splitlines()[:3]
    assert header.split() == ["cell", "symbolic", "fd", "direction", "adjoint", "taylor", "torch", "s"]
    assert set(rule) <= {"-", " "} and row.split()[0] == "rnn"
    assert row.count("pass") == 5 + ("torch" in _importable())
    assert "all passed" in out and "FAILED" not in out


def _importable() -> str:
    try:
        import torch  # noqa: F401
    except ImportError:
        return ""
    return "torch"


def test_a_wrong_gradient_fails_every_numerical_column_and_the_exit_status(capsys, monkeypatch):
    monkeypatch.setattr(verify, "load", lambda spec: _broken_rnn())
    assert main(["verify", "rnn", "--checks", "fd,direction,adjoint,taylor"]) == 1
    out = capsys.readouterr().out
    row = out.splitlines()[2]
    assert row.split()[0] == "rnn" and row.count("FAIL") == 4, out
    assert "full finite-difference Jacobian on rnn (float64): FAILED" in out
    assert "BAD W_hh" in out and "wrong gradient" in out and "4 FAILED" in out


def test_a_crashing_module_is_a_failed_check_not_a_traceback():
    def forward(params, x, state0=None):
        raise RuntimeError("boom")

    rnn = symlstm.load("rnn")
    module = SimpleNamespace(CELL="rnn", STATES=rnn.STATES, init_params=rnn.init_params, forward=forward)
    reports = verify_cell("rnn", module=module, checks=["direction"])
    assert not reports["direction"].ok and "RuntimeError: boom" in str(reports["direction"])


def test_table_rows_are_cells_and_columns_are_checks():
    results = {n: verify_cell(n, checks=["fd", "adjoint"]) for n in ("rnn", "gru")}
    lines = format_table(results).splitlines()
    assert lines[0].split() == ["cell", "fd", "adjoint", "s"]
    assert [line.split()[0] for line in lines[2:]] == ["rnn", "gru"]
    assert all(line.count("pass") == 2 for line in lines[2:])


def test_float32_and_seed_options(capsys):
    assert (
        main(["verify", "gru", "--dtype", "float32", "--seed", "3", "--checks", "direction,adjoint,taylor"])
        == 0
    )
    assert "float32, seed 3, 1 job(s): all passed" in capsys.readouterr().out


def test_parallel_jobs_give_the_same_table_in_registry_order(capsys):
    argv = ["verify", "rnn", "gru", "--checks", "fd,adjoint"]
    assert main([*argv, "-j", "1"]) == 0
    serial = capsys.readouterr().out
    assert main([*argv, "-j", "2"]) == 0
    parallel = capsys.readouterr().out
    rows = [[line.split()[:-1] for line in out.splitlines()[2:4]] for out in (serial, parallel)]
    assert rows[0] == rows[1] and [r[0] for r in rows[0]] == ["rnn", "gru"]
    assert "2 job(s): all passed" in parallel
    assert main([*argv, "-j", "0"]) == 2 and "--jobs must be at least 1" in capsys.readouterr().err


def test_bad_arguments_are_named(capsys):
    assert main(["verify", "no_such_cell"]) == 2
    assert "unknown cell 'no_such_cell'" in capsys.readouterr().err
    valid = "valid checks: symbolic, fd, direction, adjoint, taylor, torch"
    for bad, named in (("symbolic,fuzz", "unknown check 'fuzz'"), ("full FD", "unknown check 'full FD'"),
                       ("fd,,taylor", "an empty check name")):  # fmt: skip
        assert main(["verify", "rnn", "--checks", bad]) == 2
        err = capsys.readouterr().err
        assert f"symlstm verify: error: --checks: {named}; {valid}" in err, err
    with pytest.raises(ValueError, match=f"unknown check 'fuzz'; {valid}"):
        verify_cell("rnn", checks=["fuzz"])


def test_check_names_are_one_word_in_any_case_without_repeats():
    assert verify.parse_checks("FD, Taylor,fd") == ["fd", "taylor"]
    assert verify.parse_checks(["adjoint", "Symbolic"]) == ["adjoint", "symbolic"]
    assert all(name.isalpha() and name.islower() for name in CHECKS)
    assert list(verify_cell("rnn", checks="FD,taylor")) == ["fd", "taylor"]


def test_torch_column_is_na_for_cells_pytorch_lacks():
    lacking = [n for n in sorted(symlstm.CELLS) if not symlstm.cell(n).torch]
    if not lacking:
        pytest.skip("every registered cell has a PyTorch counterpart")
    report = verify_cell(lacking[0], checks=["torch"])["torch"]
    assert report.ok and report.skipped == "PyTorch has no such cell"
    assert "n/a" in format_table({lacking[0]: {"torch": report}})


def test_relu_cells_are_checked_as_piecewise_smooth():
    assert is_smooth(symlstm.cell("lstm"))
    relu_cells = [n for n in sorted(symlstm.CELLS) if not is_smooth(symlstm.cell(n))]
    for name in relu_cells:
        reports = verify_cell(name, checks=["direction", "taylor"])
        assert all(r.ok for r in reports.values()), "\n".join(map(str, reports.values()))


def test_checks_and_sizes_cover_the_ladder():
    assert CHECKS == ("symbolic", "fd", "direction", "adjoint", "taylor", "torch")
    assert set(verify.SIZES) == set(CHECKS) - {"symbolic"} and set(verify.CHECK_TEXT) == set(CHECKS)
    assert np.prod(verify.SIZES["direction"]) > 100 * np.prod(verify.SIZES["fd"])  # realistic vs tiny


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_each_row_is_printed_when_its_cell_is_done(monkeypatch, jobs):
    """Rows come out in the order of the cells, each before the next cell starts (recorded by the
    worker when it starts, with one job)."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    if jobs == "1":
        real = verify._verify_worker
        seen = {}

        def worker(name, *rest):
            seen[name] = out.getvalue()
            return real(name, *rest)

        monkeypatch.setattr(verify, "_verify_worker", worker)
    assert main(["verify", "rnn", "gru", "--checks", "fd", "-j", jobs]) == 0
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines[2:4]] == ["rnn", "gru"]
    if jobs == "1":
        assert seen["rnn"].splitlines() == lines[:2]  # the header before any work
        assert seen["gru"].splitlines() == lines[:3]  # rnn's row before gru starts
    assert "\r" not in out.getvalue()  # not a terminal: plain rows, no progress line


def test_a_terminal_gets_a_progress_line_that_rows_replace(monkeypatch):
    term = _Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    assert main(["verify", "rnn", "gru", "--checks", "fd", "-j", "1"]) == 0
    text = term.getvalue()
    assert (
        "\r\033[K[0/2 cells, 0 s] running: rnn" in text and "[1/2 cells, " in text and "running: gru" in text
    )
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stdout", plain)
    assert main(["verify", "rnn", "gru", "--checks", "fd", "-j", "1"]) == 0
    cleaned = re.sub(r"\r\033\[K(\[[^\r\n]*)?", "", text)  # each progress line is erased before a row
    assert [line.split()[:-1] for line in cleaned.splitlines()[:4]] == [
        line.split()[:-1] for line in plain.getvalue().splitlines()[:4]
    ]


def test_an_interrupted_run_says_so_and_clears_the_progress_line(monkeypatch, capsys):
    def interrupted(*args):
        raise KeyboardInterrupt

    term = _Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    monkeypatch.setattr(verify, "_verify_worker", interrupted)
    assert main(["verify", "rnn", "--checks", "fd", "-j", "1"]) == 130
    assert "symlstm verify: interrupted" in capsys.readouterr().err
    assert term.getvalue().endswith("\r\033[K")  # the progress line was erased
