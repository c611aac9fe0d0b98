"""`symlstm verify`: one table, rows = cells, columns = checks; non-zero exit status on any failure.

It checks the files users import: planted errors go into a copy of the committed modules
(`--generated DIR`), never into generated/ itself."""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import symlstm
import symlstm.verify as verify
from symlstm.backends import CODE_BACKENDS
from symlstm.cli import main
from symlstm.plan import plan_cell
from symlstm.testing import configurations
from symlstm.verify import CHECKS, format_table, is_smooth, verify_cell

BACKENDS = "{" + ",".join(CODE_BACKENDS) + "}"  # the folders verify names

ROOT = Path(__file__).resolve().parent.parent
NUMERICAL = "fd,direction,adjoint,taylor,same,torch"


def _generated_copy(tmp_path: Path, cell: str, *edits: tuple[str, str]) -> Path:
    """A copy of the committed modules of `cell` (every code backend) in tmp_path/generated, with
    `edits` ((old, new) replacements, each found exactly once) applied to its NumPy module."""
    folder = tmp_path / "generated"
    for backend in CODE_BACKENDS:
        (folder / backend).mkdir(parents=True)
        shutil.copy(ROOT / "generated" / backend / f"{cell}.py", folder / backend)
    path = folder / "numpy" / f"{cell}.py"
    text = path.read_text()
    for old, new in edits:
        assert text.count(old) == 1, f"the edit {old!r} no longer applies to generated/numpy/{cell}.py"
        text = text.replace(old, new)
    path.write_text(text)
    return folder


def _row(out: str, cell: str) -> dict[str, str]:
    """The table row of `cell`: check -> entry ('pass', 'FAIL', 'n/a', ...)."""
    header = out.splitlines()[0].split()
    line = next(line for line in out.splitlines()[2:] if line.split()[:1] == [cell])
    words = line.split()[1:]
    entries, k = {}, 0
    for check in header[1:-1]:
        entries[check] = words[k]
        k += 1 if words[k] in ("n/a", "skip") else 2
    return entries


def test_verify_rnn_prints_one_table_and_exits_zero(capsys):
    assert main(["verify", "rnn"]) == 0
    out = capsys.readouterr().out
    header, rule, row = out.splitlines()[:3]
    assert header.split() == ["cell", *CHECKS, "s"]
    assert set(rule) <= {"-", " "} and row.split()[0] == "rnn"
    assert row.count("pass") == len(CHECKS) - 1 + ("torch" in _importable())
    assert "all passed" in out and "FAILED" not in out
    committed = ROOT / "generated"
    assert f"modules checked: {committed}/{BACKENDS}/rnn.py; each identical to the render" in out


def _importable() -> str:
    try:
        import torch  # noqa: F401
    except ImportError:
        return ""
    return "torch"


def test_a_wrong_gradient_in_the_committed_file_fails_every_numerical_column(capsys, tmp_path):
    transposed = ("d_W_hh = np.matmul(grad_all.T, seq_h[:-1].reshape(T * B, H))\n",
                  "d_W_hh = np.matmul(grad_all.T, seq_h[:-1].reshape(T * B, H)).T.copy()\n")  # fmt: skip
    folder = _generated_copy(tmp_path, "rnn", transposed)
    assert (
        main(["verify", "rnn", "--generated", str(folder), "--checks", "fd,direction,adjoint,taylor,same"])
        == 1
    )
    out = capsys.readouterr().out
    assert set(_row(out, "rnn").values()) == {"FAIL"}, out
    assert "full finite-difference Jacobian on rnn (float64 and float32): FAILED" in out
    assert "BAD W_hh" in out and "BAD dW_hh" in out and "wrong gradient" in out and "5 FAILED" in out
    assert f"modules checked: {folder}/{BACKENDS}/rnn.py; not compared with the render" in out


# The planted errors of the README, as edits of the committed LSTM module.
README_PLANTS = {
    "forget-gate carry dropped": [("np.multiply(d_c, f, out=d_c_prev)", "np.copyto(d_c_prev, d_c)")],
    "sigma' = sigma": [
        ("np.subtract(1, coef_of_i, out=coef_0)", "coef_0[...] = 1"),
        ("np.subtract(1, coef_of_f, out=coef_1)", "coef_1[...] = 1"),
    ],
    "each block of dW_hh transposed": [(
        "    d_W_hh = np.matmul(grad_all.T, seq_h[:-1].reshape(T * B, H))\n",
        "    d_W_hh = np.matmul(grad_all.T, seq_h[:-1].reshape(T * B, H))\n"
        "    d_W_hh = d_W_hh.reshape(4, H, H).transpose(0, 2, 1).reshape(4 * H, H)\n",
    )],
    "the backward loop skipping t = 0": [
        ("for t in range(T - 1, -1, -1):", "for t in range(T - 1, 0, -1):"),
        ('grad_rows = _array(workspace, "backward.grad_rows", (T, B, 4 * H), dtype)',
         "grad_rows = np.zeros((T, B, 4 * H), dtype=dtype)"),
    ],
}  # fmt: skip


@pytest.mark.parametrize("plant", list(README_PLANTS))
def test_the_readme_planted_errors_in_the_committed_file_fail_verify(plant, capsys, tmp_path):
    """Each fails the comparison with the render, and each fails the numerical rungs on the file alone."""
    folder = _generated_copy(tmp_path, "lstm", *README_PLANTS[plant])
    assert main(["verify", "lstm", "--generated", str(folder), "--checks", "files,fd,adjoint,taylor"]) == 1
    out = capsys.readouterr().out
    assert _row(out, "lstm") == {"files": "FAIL", "fd": "FAIL", "adjoint": "FAIL", "taylor": "FAIL"}, out
    assert "BAD numpy" in out and f"({folder}/numpy/lstm.py)" in out and "differ from the render" in out
    assert f"{folder}/{BACKENDS}/lstm.py; 1 differ from the render" in out


def test_an_unedited_copy_passes_and_is_named(capsys, tmp_path):
    folder = _generated_copy(tmp_path, "gru")
    assert main(["verify", "gru", "--generated", str(folder), "--checks", "files,fd"]) == 0
    assert f"modules checked: {folder}/{BACKENDS}/gru.py; each identical" in capsys.readouterr().out


def test_a_file_that_does_not_import_or_is_missing_fails(capsys, tmp_path):
    folder = _generated_copy(
        tmp_path, "rnn", ("import numpy as np\n", "import numpy as np\nraise RuntimeError('planted')\n")
    )
    assert main(["verify", "rnn", "--generated", str(folder), "--checks", "files,fd"]) == 1
    out = capsys.readouterr().out
    assert _row(out, "rnn") == {"files": "FAIL", "fd": "FAIL"}, out
    assert "does not import: RuntimeError: planted" in out
    (folder / "reference" / "rnn.py").unlink()
    assert main(["verify", "rnn", "--generated", str(folder), "--checks", "files,code"]) == 1
    out = capsys.readouterr().out
    assert f"{folder}/reference/rnn.py is missing (symlstm generate writes it)" in out
    assert main(["verify", "rnn", "--generated", str(tmp_path / "nowhere")]) == 2
    assert "--generated: " in capsys.readouterr().err


def test_a_user_cell_is_checked_in_the_module_load_renders():
    spec = dataclasses.replace(symlstm.cell("rnn"), name="my_rnn")
    reports = verify_cell(spec, checks=["files", "fd"])
    assert all(r.ok for r in reports.values()), "\n".join(map(str, reports.values()))
    assert {b.where for b in reports["files"].blocks} == {"rendered in memory: the module symlstm.load gives"}


# Bugs that show only at one of the ladder's variants (planted in rnn's committed module): the ladder's
# own configuration passes, the variant fails, and so does the command.
VARIANT_PLANTS = {
    "T=1": ("dx = np.matmul(grad_all, W_ih).reshape(T, B, I)\n",
            "dx = np.matmul(grad_all, W_ih).reshape(T, B, I) * (2 if T == 1 else 1)\n"),
    "dstate None": ("d_h_prev = np.zeros((B, H), dtype=dtype) if dstate is None",
                    "d_h_prev = np.ones((B, H), dtype=dtype) if dstate is None"),
    "float32": ("d_W_hh = np.matmul(grad_all.T, seq_h[:-1].reshape(T * B, H))\n",
                "d_W_hh = np.matmul(grad_all.T, seq_h[:-1].reshape(T * B, H))\n"
                "    d_W_hh *= 1.01 if dtype == np.float32 else 1\n"),
}  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANT_PLANTS))
def test_a_bug_only_at_a_variant_fails_verify(variant, capsys, tmp_path):
    folder = _generated_copy(tmp_path, "rnn", VARIANT_PLANTS[variant])
    assert main(["verify", "rnn", "--generated", str(folder), "--checks", "fd"]) == 1
    report = verify_cell("rnn", checks=["fd"], generated=folder)["fd"]
    failing = {b.config for b in report.failures}
    assert failing and all(c.startswith(variant) for c in failing), str(report)
    assert all(b.ok for b in report.blocks if b.config == "float64"), str(report)  # the ladder's own passes


# Bugs that show only beyond a threshold of the generated code (planted in gru's committed module):
# the rungs at their own sizes pass, `same` fails exactly at the configurations of the plan that
# take more than one chunk.
THRESHOLD_PLANTS = {
    "input projection chunk": (
        ("for t in range(0, T, buf_steps):", "for t in range(0, min(T, buf_steps), buf_steps):"),
        lambda c: c.steps > max(1, 256 // c.batch),
    ),
    "coefficient chunk": (
        ("coef_steps = max(1, min(T, 4096 // max(B * H, 1)))", "coef_steps = min(T, 4096 // max(B * H, 1))"),
        lambda c: c.batch * c.hidden_size > 4096,
    ),
}


@pytest.mark.parametrize("threshold", list(THRESHOLD_PLANTS))
def test_a_bug_beyond_a_threshold_fails_the_same_column(threshold, tmp_path):
    edit, beyond = THRESHOLD_PLANTS[threshold]
    folder = _generated_copy(tmp_path, "gru", edit)
    with np.errstate(all="ignore"):  # the planted bug reads uninitialised memory
        reports = verify_cell("gru", checks=["fd", "adjoint", "taylor", "same"], generated=folder)
    assert all(reports[c].ok for c in ("fd", "adjoint", "taylor")), "\n".join(map(str, reports.values()))
    configs = configurations(plan_cell(symlstm.derive("gru")))
    # Only the NumPy module carries the bug: the other targets' rows (prefixed by their name) pass.
    failing = {b.config for b in reports["same"].failures}
    assert all(c.startswith("numpy: ") for c in failing), str(reports["same"])
    failing = {c.removeprefix("numpy: ") for c in failing}
    assert failing == {c.text for c in configs if beyond(c)}, str(reports["same"])
    assert any(c.startswith(threshold) for c in failing)


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
    valid = "valid checks: " + ", ".join(CHECKS)
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
    assert CHECKS == ("files", "symbolic", "code", "fd", "direction", "adjoint", "taylor", "same", "torch")
    assert set(verify.SIZES) == set(CHECKS) - {"files", "symbolic", "code", "same"}
    assert set(verify.CHECK_TEXT) == set(CHECKS)
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
