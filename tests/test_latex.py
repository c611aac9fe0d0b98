"""The derivation documents: printing, claims, equation numbers shared with the code, and PDFs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symlstm import Cell, derive, sigmoid, tanh
from symlstm.backends.latex import ClaimError, Document, TexPrinter, cell_document, topic_documents
from symlstm.backends.latex.printer import break_sum
from symlstm.build.pdf import build_pdfs, first_error
from symlstm.cli import main

from .conftest import CELL_NAMES

ROOT = Path(__file__).resolve().parent.parent
LATEX = ROOT / "generated" / "latex"
HAVE_TEX = shutil.which("latexmk") is not None and shutil.which("pdftoppm") is not None
needs_tex = pytest.mark.skipif(not HAVE_TEX, reason="latexmk/pdftoppm not installed (scripts/setup.sh)")


def _peephole_spec():
    """A user cell with parameter vectors inside elementwise equations (Greff's peepholes)."""
    cell = Cell("user_peep", title="User cell: peepholes & a 50% title")
    x, h_prev, c_prev = cell.input("x"), cell.state("h"), cell.state("c")
    p_i, p_o = cell.param("p_i"), cell.param("p_o")
    a_i = cell.linear("a_i", {"W_xi": x, "W_hi": h_prev}, biases=["b_i"])
    a_g = cell.linear("a_g", {"W_xg": x, "W_hg": h_prev}, biases=["b_g"])
    a_o = cell.linear("a_o", {"W_xo": x, "W_ho": h_prev}, biases=["b_o"])
    i = cell.elementwise("i", sigmoid(a_i + p_i * c_prev))
    g = cell.elementwise("g", tanh(a_g))
    c = cell.elementwise("c", (1 - i) * c_prev + i * g)
    o = cell.elementwise("o", sigmoid(a_o + p_o * c))
    h = cell.elementwise("h", o * tanh(c))
    cell.update(h=h, c=c)
    return cell.build()


# -- printing ------------------------------------------------------------------------------------


def test_printer_keeps_signs_and_time_indices():
    d = derive("lstm")
    p = TexPrinter(d)
    g, f, c_prev = d.sym["g"], d.sym["f"], d.sym["c_prev"]
    assert p.doprint(1 - g**2) == "1 - g_{t}^{2}"
    assert p.doprint(f * c_prev) == r"f_{t} \odot c_{t-1}"
    assert p.doprint(-2 * f) == r"-2 f_{t}"
    assert TexPrinter(d, "s").doprint(c_prev) == "c_{s-1}"
    assert p.name("d_c_prev") == r"\delta c_{t-1}"
    assert p.name("W_hf") == "W_{hf}"
    assert p.doprint(d.sym["tanh_c"] ** 2) == r"\tanh^{2}\left(c_{t}\right)"


def test_break_sum_signs_and_lines():
    assert break_sum(["- a", "b", "- c"]) == ["-a + b - c"]
    lines = break_sum([f"x_{{{k}}}" for k in range(40)], width=20)
    assert len(lines) > 1 and all(line.startswith("+ ") for line in lines[1:])


def test_lstm_document_shows_the_derived_carry():
    tex = cell_document("lstm").render()
    assert r"\frac{\partial c_{t}}{\partial c_{t-1}} &= \operatorname{diag}\left(f_{t}\right)" in tex
    assert r"\delta c_{t-1} &= \delta c_{t} \odot f_{t} \tag{" in tex
    assert r"\frac{\partial g_{t}}{\partial a_{g,t}} &= 1 - g_{t}^{2}" in tex


# -- equation numbers shared with the generated code -------------------------------------------


@pytest.mark.parametrize("name", CELL_NAMES)
def test_equation_numbers_match_the_generated_code(name):
    d = derive(name)
    tex = (LATEX / f"{name}.tex").read_text()
    code = (ROOT / "generated" / "numpy" / f"{name}.py").read_text()
    for (kind, what), number in d.equation_numbers.items():
        assert rf"\tag{{{number}}}\label{{eq:{name}:{kind}:{what}}}" in tex, (kind, what, number)
        if kind == "fwd":
            assert f"({number}) {what} = " in code, (kind, what, number)
    tags = [int(t) for t in re.findall(r"\\tag\{(\d+)\}", tex)]
    assert sorted(tags) == sorted(d.equation_numbers.values())


def test_user_cell_with_elementwise_parameters():
    spec = _peephole_spec()
    d = derive(spec)
    tex = cell_document(d).render()
    number = d.equation_numbers[("grad", "p_i")]
    assert r"\delta p_{i} &= \sum_{t} \sum_{b}" in tex and rf"\tag{{{number}}}" in tex
    assert r"50\% title" in tex and "peepholes \\& a" in tex  # title escaped


# -- claims ----------------------------------------------------------------------------------------


def test_false_claims_raise():
    d = derive("lstm")
    doc = Document("planted", "planted", "test")
    doc.claim("true", d.jacobian("c", "c_prev"), derive("lstm").jacobian("c", "c_prev"))
    with pytest.raises(ClaimError, match="planted"):
        doc.claim("wrong carry", d.jacobian("c", "c_prev"), sp.Identity(sp.Symbol("H")))
    with pytest.raises(ClaimError):
        doc.claim("wrong scalar", 1 - d.sym["g"] ** 2, 1 + d.sym["g"] ** 2)
    with pytest.raises(ClaimError):
        doc.check("false property", False)


def test_a_false_claim_in_a_topic_stops_the_build(tmp_path):
    (tmp_path / "t9_planted.py").write_text(
        "from symlstm import Diag, derive\n"
        "TITLE = 'planted'\n"
        "def build(doc):\n"
        "    d = derive('rnn')\n"
        "    doc.claim('rnn carry is diag(h)', d.jacobian('h', 'h_prev'), Diag(d.sym['h']))\n"
    )
    with pytest.raises(ClaimError, match="rnn carry"):
        topic_documents(tmp_path)


def test_topics_are_all_present_in_order():
    names = [d.name for d in topic_documents()]
    assert names == ["t1_rnn_limitations", "t2_lstm_gates", "t3_lstm_together", "t4_lstm_gradient", "t5_gru"]


# -- figures --------------------------------------------------------------------------------------


def test_figure_curves_show_vanishing_exploding_and_the_highway():
    from symlstm.build.figures import lstm_curves, rnn_curves

    below, at, above = rnn_curves()
    assert below.norms[-1] < 1e-2 * below.norms[0]
    assert above.norms[-1] > 1e2 * above.norms[0]
    assert 0.9 < at.norms[-1] / at.norms[0] <= 1.0
    np.testing.assert_allclose(below.norms, below.bound, rtol=1e-3)  # near-linear: the bound is attained
    f0, _, f3 = lstm_curves()
    assert f3.norms[-1] > 1e6 * f0.norms[-1]


# -- PDFs ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("latex")
    files = {p.name: p.read_text() for p in sorted(LATEX.glob("*.tex"))}
    files["blank.tex"] = (
        "\\documentclass{article}\\begin{document}\\thispagestyle{empty}\\mbox{}\\end{document}\n"
    )
    files["broken.tex"] = "\\documentclass{article}\\begin{document}\n\\undefinedmacro\n\\end{document}\n"
    return out, {r.name: r for r in build_pdfs(out, files)}


@needs_tex
@pytest.mark.parametrize("name", sorted(p.stem for p in LATEX.glob("*.tex")))
def test_every_document_compiles_without_errors_or_undefined_references(built, name):
    _, results = built
    r = results[name]
    assert r.ok, f"{name}.tex: {r.error or r.undefined}"
    assert not r.undefined


@needs_tex
def test_a_latex_error_reports_the_first_error_line(built):
    out, results = built
    r = results["broken"]
    assert not r.ok and "Undefined control sequence" in r.error
    assert first_error((out / "broken.log").read_text()) == r.error


def _dark_fraction(pdf: Path, page: int, tmp_path: Path) -> float:
    """The share of non-white pixels of one page rendered by pdftoppm at 40 dpi in grey."""
    subprocess.run(
        ["pdftoppm", "-f", str(page), "-l", str(page), "-r", "40", "-gray", str(pdf), str(tmp_path / "p")],
        check=True,
    )
    pgm = next(tmp_path.glob("p*.pgm")).read_bytes()
    header = pgm.split(b"\n", 3)
    w, h = map(int, header[1].split())
    pixels = np.frombuffer(header[3][-w * h :], dtype=np.uint8)
    return float((pixels < 220).mean())


@needs_tex
@pytest.mark.parametrize(("name", "page"), [("lstm", 1), ("t4_lstm_gradient", 3)])
def test_pdf_pages_are_not_blank(built, name, page, tmp_path):
    out, _ = built
    assert _dark_fraction(out / f"{name}.pdf", page, tmp_path) > 0.02, f"{name}.pdf page {page} looks blank"


@needs_tex
def test_the_blank_page_check_can_fail(built, tmp_path):
    out, _ = built
    assert _dark_fraction(out / "blank.pdf", 1, tmp_path) < 0.001


@needs_tex
def test_figures_are_included(built):
    out, _ = built
    assert (out / "figures" / "lstm_gradient_norms.pdf").is_file()
    log = (out / "t4_lstm_gradient.log").read_text(errors="replace")
    assert "lstm_gradient_norms.pdf" in log


def test_cli_writes_tex_without_pdf(tmp_path, capsys):
    assert main(["latex", "rnn", "--no-topics", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "rnn.tex").read_text() == (LATEX / "rnn.tex").read_text()


@needs_tex
def test_no_equation_runs_far_into_the_margin(built):
    out, results = built
    for name in results:
        if name in ("broken", "blank"):
            continue
        log = (out / f"{name}.log").read_text(errors="replace")
        widths = [float(w) for w in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)]
        assert all(w < 20 for w in widths), f"{name}.tex: lines {widths} pt too wide"
