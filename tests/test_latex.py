"""The derivation documents: printing, claims, equation numbers shared with the code, and the PDFs.

The PDF tests compile every committed `.tex` once per session (the `built` fixture, about a minute
on two cores; it says so when it starts) and check the logs and pages: no LaTeX error, no undefined
reference, no overfull line beyond `OVERFULL_PT`, no missing glyph, no inverted punctuation (the glyph
OT1 puts where T1 has `<`), no blank page. Each of those checks is shown to fail on a planted document.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symlstm import Cell, derive, sigmoid, tanh
from symlstm.backends.latex import ClaimError, Document, TexPrinter, cell_document, topic_documents
from symlstm.backends.latex.printer import break_sum
from symlstm.build.figures import FIGURES
from symlstm.build.pdf import LOGS, build_pdfs, first_error
from symlstm.cli import main

from .conftest import CELL_NAMES

ROOT = Path(__file__).resolve().parent.parent
LATEX = ROOT / "generated" / "latex"
HAVE_TEX = shutil.which("latexmk") is not None and shutil.which("pdftoppm") is not None
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_tex = pytest.mark.skipif(not HAVE_TEX, reason="latexmk/pdftoppm not installed (scripts/setup.sh)")
needs_matplotlib = pytest.mark.skipif(
    not HAVE_MATPLOTLIB,
    reason="matplotlib not installed: the figures need the docs extra, pip install '.[docs]'",
)
OVERFULL_PT = 1.0  # widest overfull line a document may have (pt)


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
    g, f, c_prev, o = d.sym["g"], d.sym["f"], d.sym["c_prev"], d.sym["o"]
    assert p.doprint(1 - g**2) == "1 - g_{t}^{2}"
    assert p.doprint(f * c_prev) == r"f_{t} \odot c_{t-1}"
    assert p.doprint(-2 * f) == r"-2 f_{t}"
    assert TexPrinter(d, "s").doprint(c_prev) == "c_{s-1}"
    assert p.name("d_c_prev") == r"\delta c_{t-1}"
    assert p.name("W_hf") == "W_{hf}"
    assert p.doprint(d.sym["tanh_c"] ** 2) == r"\tanh^{2}\left(c_{t}\right)"
    # a sigmoid slope o (1 - o) stays in one piece, whatever else the product holds
    assert (
        p.doprint(d.sym["tanh_c"] * o * (1 - o))
        == r"o_{t} \odot \left(1 - o_{t}\right) \odot \tanh\left(c_{t}\right)"
    )


def test_break_sum_signs_and_lines():
    assert break_sum(["- a", "b", "- c"]) == ["-a + b - c"]
    lines = break_sum([f"x_{{{k}}}" for k in range(40)], width=20)
    assert len(lines) > 1 and all(line.startswith("+ ") for line in lines[1:])


def test_lstm_document_shows_the_derived_carry():
    tex = cell_document("lstm").render()
    assert r"\frac{\partial c_{t}}{\partial c_{t-1}} &= \operatorname{diag}\left(f_{t}\right)" in tex
    assert r"\delta c_{t-1} &= \delta c_{t} \odot f_{t} \tag{" in tex
    assert r"\frac{\partial g_{t}}{\partial a_{g,t}} &= 1 - g_{t}^{2}" in tex


def test_cell_documents_name_pytorch_only_where_the_cell_has_a_pytorch_counterpart():
    for name in CELL_NAMES:
        doc = cell_document(name)
        stored = [
            b["statement"] for b in doc.blocks if b["kind"] == "claim" and "Parameter count" in b["statement"]
        ]
        assert len(stored) == 1, name
        assert ("torch.nn" in stored[0]) == bool(derive(name).spec.torch), (name, stored[0])


def test_cell_documents_have_no_ascii_formula_line_and_cite_their_sources():
    from symlstm.naming import tex_escape

    for name in CELL_NAMES:
        spec = derive(name).spec
        doc = cell_document(name)
        tex = doc.render()
        assert tex_escape(spec.doc) not in tex, name  # the declaration's ASCII summary is not printed
        assert "generated/numpy" not in tex, name  # no pointer to a file of the source tree
        assert doc.cited and [k for k, _ in doc.bibliography] == doc.cited, name


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
    doc = cell_document(d)
    tex = doc.render()
    number = d.equation_numbers[("grad", "p_i")]
    assert r"\delta p_{i} &= \sum_{t} \sum_{b}" in tex and rf"\tag{{{number}}}" in tex
    assert r"50\% title" in tex and "peepholes \\& a" in tex  # title escaped
    assert tex.count(r"\begin{tikzpicture}") == 2  # the cell's graph and the unrolled steps, drawn for it too
    assert "d = derive(spec)" in doc.prelude


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


def test_an_unknown_citation_is_refused():
    with pytest.raises(KeyError, match="nosuch2099"):
        Document("planted", "planted", "test").cite("nosuch2099")


# -- figures --------------------------------------------------------------------------------------


def test_figure_curves_show_vanishing_exploding_and_the_highway():
    from symlstm.build.figures import lstm_curves, memory_path_curves, rnn_curves

    below, at, above = rnn_curves()
    assert below.norms[-1] < 1e-2 * below.norms[0]
    assert above.norms[-1] > 1e2 * above.norms[0]
    assert 0.9 < at.norms[-1] / at.norms[0] <= 1.0
    np.testing.assert_allclose(below.norms, below.bound, rtol=1e-3)  # near-linear: the bound is attained
    f0, _, f3 = lstm_curves()
    assert f3.norms[-1] > 1e6 * f0.norms[-1]
    full1, alone1, full3, alone3 = memory_path_curves()
    # at k = 1 the cell-state path is the whole gradient: c_{T-1} enters step T only through c_T
    np.testing.assert_allclose(
        [full1.norms[0], full3.norms[0]], [alone1.norms[0], alone3.norms[0]], rtol=1e-12
    )
    assert alone3.norms[-1] < 0.1 * alone3.norms[0] < full3.norms[-1]


def test_figures_are_only_those_the_documents_use():
    used = {f for doc in topic_documents() for f in doc.figures}
    assert used == set(FIGURES)
    assert all(not cell_document(n).figures for n in ("lstm", "gru"))


# -- PDFs ------------------------------------------------------------------------------------------


PLANTED = {
    "blank.tex": "\\documentclass{article}\\begin{document}\\thispagestyle{empty}\\mbox{}\\end{document}\n",
    "broken.tex": "\\documentclass{article}\\begin{document}\n\\undefinedmacro\n\\end{document}\n",
    "overfull.tex": "\\documentclass{article}\\begin{document}\n"
    + "\\texttt{" + "x" * 120 + "}\n\\end{document}\n",
    "ot1.tex": "\\documentclass{article}\\begin{document}\nR\\_<from><to>\n\\end{document}\n",
    "missing.tex": "\\documentclass{article}\\begin{document}\n\\tracinglostchars=2 \\char200\n"
    "\\end{document}\n",
}  # fmt: skip


@pytest.fixture(scope="session")
def built(tmp_path_factory, request):
    if not HAVE_TEX:
        pytest.skip("latexmk/pdftoppm not installed (scripts/setup.sh)")
    out = tmp_path_factory.mktemp("latex")
    files = {p.name: p.read_text() for p in sorted(LATEX.glob("*.tex"))}
    figures = sorted(f for f in FIGURES if any(f"figures/{f}" in text for text in files.values()))
    files.update(PLANTED)
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def say(line: str) -> None:  # shown while the tests run, not captured with a test's output
        with capture.global_and_fixture_disabled():
            print(line, flush=True)

    drawn = len(figures) if HAVE_MATPLOTLIB else 0
    say(f"\ntests/test_latex.py: drawing {drawn} figure(s) and compiling {len(files)} documents with latexmk "
        "(about a minute on two cores) ...")  # fmt: skip
    start = time.perf_counter()
    results = {r.name: r for r in build_pdfs(out, files, figures=figures)}
    say(f"tests/test_latex.py: documents compiled in {time.perf_counter() - start:.0f} s")
    return out, results


DOCUMENTS = sorted(p.stem for p in LATEX.glob("*.tex"))


@needs_tex
@pytest.mark.parametrize("name", DOCUMENTS)
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
    assert r.log == out / LOGS / "broken.log"
    assert first_error(r.log.read_text()) == r.error


@needs_tex
def test_latex_files_go_to_the_logs_folder_not_beside_the_pdfs(built):
    out, _ = built
    beside = {p.suffix for p in out.iterdir() if p.is_file()}
    assert beside <= {".tex", ".pdf"}, beside
    assert (out / LOGS / "lstm.aux").is_file() and (out / LOGS / "lstm.log").is_file()


def _overfull(log: str) -> list[float]:
    return [float(w) for w in re.findall(r"Overfull \\[hv]box \(([\d.]+)pt too (?:wide|high)\)", log)]


def _missing_glyphs(log: str) -> list[str]:
    return re.findall(r"Missing character: There is no .*", log)


def _text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


@needs_tex
@pytest.mark.parametrize("name", DOCUMENTS)
def test_no_overfull_line_and_no_missing_or_wrong_glyph(built, name):
    out, _ = built
    log = (out / LOGS / f"{name}.log").read_text(errors="replace")
    wide = [w for w in _overfull(log) if w > OVERFULL_PT]
    assert not wide, f"{name}.tex: lines {wide} pt too wide (limit {OVERFULL_PT} pt)"
    assert not _missing_glyphs(log), f"{name}.tex: {_missing_glyphs(log)}"
    text = _text(out / f"{name}.pdf")
    assert "¡" not in text and "¿" not in text, f"{name}.pdf prints inverted punctuation (OT1 for < >)"


@needs_tex
def test_the_typesetting_checks_catch_planted_faults(built):
    out, _ = built
    assert max(_overfull((out / LOGS / "overfull.log").read_text(errors="replace"))) > OVERFULL_PT
    assert _missing_glyphs((out / LOGS / "missing.log").read_text(errors="replace"))
    assert "¡" in _text(out / "ot1.pdf")


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
@needs_matplotlib
def test_figures_are_drawn_and_included(built):
    out, _ = built
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(FIGURES)
    log = (out / LOGS / "t4_lstm_gradient.log").read_text(errors="replace")
    assert "lstm_gradient_norms.pdf" in log and "lstm_memory_path.pdf" in log


def test_cli_writes_tex_without_pdf(tmp_path, capsys):
    assert main(["latex", "rnn", "--no-topics", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "rnn.tex").read_text() == (LATEX / "rnn.tex").read_text()


def _figure_document() -> Document:
    doc = Document("with_figure", "A document with one figure", "test")
    doc.text("Text before the figure.")
    doc.figure("rnn_gradient_norms.pdf", "The vanilla RNN's gradient norms.")
    return doc


@needs_tex
def test_without_matplotlib_a_boxed_note_replaces_the_figure_and_one_line_names_the_extra(
    tmp_path, capsys, monkeypatch
):
    import symlstm.build.figures as figures
    import symlstm.build.pdf as pdf

    monkeypatch.setattr(figures, "can_draw", lambda: False)
    monkeypatch.setattr(pdf, "documents", lambda names, topics: [_figure_document()])
    assert main(["latex", "--pdf", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "matplotlib" in err[0] and "symlstm[docs]" in err[0], err
    assert not (tmp_path / "figures").exists()
    text = " ".join(_text(tmp_path / "with_figure.pdf").split())
    assert "was not drawn" in text and "pip install 'symlstm[docs]'" in text and "latex --pdf" in text


@needs_tex
@needs_matplotlib
def test_only_the_figures_a_built_document_uses_are_drawn(tmp_path, monkeypatch):
    import symlstm.build.pdf as pdf

    monkeypatch.setattr(pdf, "documents", lambda names, topics: [_figure_document()])
    assert main(["latex", "--pdf", "--out", str(tmp_path)]) == 0
    assert [p.name for p in (tmp_path / "figures").iterdir()] == ["rnn_gradient_norms.pdf"]
