"""The HTML report: LaTeX lines to MathML, escaping of user text, the page for catalog names
and spec files, exit codes, and colour in the terminal table only where it belongs."""

from __future__ import annotations

import dataclasses
import html
import io
import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("latex2mathml")

from derive import catalog  # noqa: E402
from derive.present.cli import main, render_table  # noqa: E402
from derive.errors import DeriveError  # noqa: E402
from derive.present.report import Cell, cell, derivation_table, mathml, split_columns  # noqa: E402
from derive.model.verdict import Report, Result, Symbolic  # noqa: E402

HOSTILE = '''
[[identity]]
name = "sigmoid_wrong"
description = "<script>alert(1)</script> & <img src=x onerror=alert(2)>"
variables = { x = "real" }
define = { s = "sigmoid(x)" }
wrt = "x"
claim = "1 - s"

[[identity]]
name = "tanh_right"
description = "fine"
variables = { x = "real" }
define = { a = "tanh(x)" }
wrt = "x"
claim = "1 - a**2"
'''


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def external_references(page: str) -> list[str]:
    """Everything in the page's markup and CSS that would make a browser fetch something."""
    found = []
    for tag in re.findall(r"<[^>]+>", page):
        found += re.findall(r'\b(?:src|href|action|poster|data|srcset)\s*=\s*["\']?(?!#|data:)([^"\'\s>]+)', tag)
        found += re.findall(r"^<(?:link|iframe|object|embed|script\b[^>]*\bsrc)\b.*", tag, flags=re.I)
    found += re.findall(r"url\(\s*['\"]?(?!#)([^)'\"]+)|@import[^;]*", page)
    return found


# --- LaTeX -> MathML ------------------------------------------------------------------------

def test_align_lines_split_at_their_alignment_points_only() -> None:
    line = r"&\text{claimed: } \begin{cases} 1 & \text{for}\: x > 0 \\0 & \text{otherwise} \end{cases}"
    assert split_columns(line) == ["", r"\text{claimed: } \begin{cases} 1 & \text{for}\: x > 0 \\0 & "
                                       r"\text{otherwise} \end{cases}"]
    assert split_columns(r"a &= \{b\&c\} && \text{note}") == ["a ", r"= \{b\&c\} ", "", r" \text{note}"]


def test_text_pieces_become_escaped_html_and_math_becomes_mathml() -> None:
    c = cell(r"\text{tanh: tanh' = 1 - tanh\^{}2 \& <b>} \frac{a}{b}")
    assert not c.fallback
    assert "<span class=\"text\">tanh: tanh&#x27; = 1 - tanh^2 &amp; &lt;b&gt;</span>" in c.html
    assert "<math" in c.html and "<mfrac>" in c.html and "xmlns" not in c.html


@pytest.mark.parametrize("tex", [r"\nosuchcommand{x}", r"\frac{a}{", r"\text{<script>alert(1)</script>}"])
def test_what_latex2mathml_cannot_convert_safely_is_rejected(tex: str) -> None:
    assert mathml(tex) is None  # (latex2mathml copies \text contents unescaped: that is rejected too)
    if not tex.startswith(r"\text"):
        assert cell(tex) == Cell(f'<code class="tex">{html.escape(tex)}</code>', True)


@pytest.mark.parametrize("tex", [r"\text{<script>alert(1)</script>}", r"x + \text{<script>alert(1)</script>",
                                 r"\begin{cases} 1 & \text{<b>} \end{cases}", r"\frac{<b>}{2}"])
def test_markup_inside_latex_never_reaches_the_page(tex: str) -> None:
    shown = cell(tex).html
    assert "<script" not in shown and "<b>" not in shown


def test_a_derivation_becomes_a_table_without_fallbacks() -> None:
    from derive.symbolic.explain import explain
    from derive.present.latex import derivation_lines

    table, fallbacks = derivation_table(derivation_lines(explain(catalog.get("relu_derivative"))))
    assert fallbacks == 0
    assert table.count("<tr>") == 5 and "<mtable>" in table  # the claimed cases, as a MathML table
    assert "relu: 1 where x &gt; 0" in table


def test_catalog_descriptions_are_mathml_and_a_users_stay_escaped_text() -> None:
    from derive.language.specfile import loads_spec
    from derive.present.report import _description

    for identity in catalog.CATALOG.values():
        shown = _description(identity)
        assert '<code class="tex">' not in shown and "$" not in shown and "\\" not in shown, identity.name
        assert ("<math" in shown) == ("$" in identity.description), identity.name
    assert "<mi>&#x003B4;</mi><mrow><mi>i</mi><mi>j</mi>" in _description(catalog.get("softmax_jacobian"))
    assert "nn.BCELoss" in _description(catalog.get("bce_definition"))
    assert "F.binary_cross_entropy" in _description(catalog.get("bce_definition"))  # \_ shown as _
    mine = loads_spec(HOSTILE.replace("sigmoid_wrong", "softmax_jacobian").replace(
        "<script>", "$x$ <script>"))[0]  # a catalog name, a user's text: plain
    assert _description(mine) == ("$x$ &lt;script&gt;alert(1)&lt;/script&gt; &amp; "
                                  "&lt;img src=x onerror=alert(2)&gt;")


# --- the page -------------------------------------------------------------------------------

def test_report_for_catalog_names(tmp_path: Path) -> None:
    path = tmp_path / "r.html"
    code, out, err = run("report", "softmax_jacobian", "relu_derivative", "-o", str(path),
                         "--samples", "16", "--no-progress")
    assert code == 0, err
    page = path.read_text(encoding="utf-8")
    assert f"wrote {path}" in err and "softmax_jacobian" in out  # the terminal table too
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count('<section>') == 2 and page.count('class="verdict proved"') == 4
    # fd + errors per identity, and a stability plot where a formula loses more than half its
    # float32 bits (softmax_jacobian's claim, past |z| of 15); no Himmelblau identity here
    assert page.count("<svg") == 4 + page.count('<div class="plots stability">')
    assert "<mfrac>" in page and '<code class="tex">' not in page
    assert external_references(page) == []
    assert "<script" not in page and not (tmp_path / ".r.html.tmp").exists()


def test_report_of_a_spec_file_shows_the_counterexample_and_escapes_user_text(tmp_path: Path) -> None:
    spec = tmp_path / "mine.derive.toml"
    spec.write_text(HOSTILE)
    path = tmp_path / "r.html"
    code, out, err = run("report", str(spec), "-o", str(path), "--samples", "16", "--no-progress",
                         "--no-plots")
    assert code == 1, err  # a refuted identity: exit code as for `derive check`
    page = path.read_text(encoding="utf-8")
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(2)&gt;" in page
    assert 'class="counterexample"' in page and f"derive check {spec} --seed 0" in page
    assert page.count("<svg") == 0 and page.count("<section>") == 2 and "<math" in page
    assert "<code>s = sigmoid(x)</code>" in page and "1 - s" in page
    assert external_references(page) == []


def test_report_needs_names_and_an_output(tmp_path: Path) -> None:
    code, _, err = run("report", "-o", str(tmp_path / "r.html"))
    assert code == 2 and "nothing to do" in err
    code, _, err = run("report", "softmax_jacobian")
    assert code == 2 and "-o/--output" in err and len(err.strip().splitlines()) == 1


def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    code, _, err = run("report", "relu_derivative", "-o", str(tmp_path / "no" / "r.html"), "--no-plots",
                       "--samples", "4", "--no-progress")
    assert code == 2 and err.strip().splitlines()[-1].startswith("derive: error: cannot write")


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "latex2mathml.converter", None)  # import fails as if not installed
    code, out, err = run("report", "relu_derivative", "-o", str(tmp_path / "r.html"))
    assert code == 2 and out == ""
    assert err == "derive: error: the HTML report needs latex2mathml: pip install 'derive-checker[report]'\n"
    with pytest.raises(DeriveError, match=r"pip install 'derive-checker\[report\]'"):
        mathml("x")


# --- colour in the terminal -----------------------------------------------------------------

class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _report() -> Report:
    sym = Symbolic("proved", 0.1)
    return Report(0, (Result("a", "proved", sym, (), 0.1), Result("b", "refuted", sym, (), 0.1, reason="off")))


def test_table_is_coloured_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = FakeTTY()
    render_table(_report(), out)
    text = out.getvalue()
    assert "\033[1;32mproved \033[0m" in text and "\033[1;31mrefuted\033[0m" in text
    assert "b: \033[1;31mrefuted\033[0m" in text


@pytest.mark.parametrize("stream, no_color, env", [(FakeTTY, True, None), (FakeTTY, None, "1"),
                                                   (io.StringIO, None, None)])
def test_table_is_plain_otherwise(monkeypatch: pytest.MonkeyPatch, stream: type, no_color: bool | None,
                                  env: str | None) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    if env:
        monkeypatch.setenv("NO_COLOR", env)
    out = stream()
    render_table(_report(), out, color=False if no_color else None)
    assert "\033" not in out.getvalue() and "refuted" in out.getvalue()


def test_check_no_color_flag_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    for flags, coloured in (([], True), (["--no-color"], False)):
        out, err = FakeTTY(), io.StringIO()
        code = main(["check", "relu_derivative", "--samples", "4", "--no-progress", *flags],
                    out=out, err=err)
        assert code == 0, err.getvalue()
        assert ("\033[1;32m" in out.getvalue()) is coloured


def test_the_reference_scanner_finds_what_a_browser_would_fetch() -> None:
    page = ('<img src="https://cdn.example/x.png"><link rel="stylesheet" href="a.css">'
            '<style>@import "b.css"; p { background: url(c.png) }</style><script src=d.js></script>'
            '<svg><use href="#local"/><image xlink:href="data:image/png;base64,AAAA"/></svg>'
            '<p>src=x in text</p>')
    found = external_references(page)
    assert {"https://cdn.example/x.png", "a.css", "c.png", "d.js"} <= set(found)
    assert not any("local" in f or "data:" in f or f == "x" for f in found)


def test_progress_line_shows_the_elapsed_time_on_a_terminal_only() -> None:
    from derive.present.cli import _Progress

    tty, plain = FakeTTY(), io.StringIO()
    for stream in (tty, plain):
        progress = _Progress(stream, True)
        progress(0, 2, "a", None)
        progress(1, 2, "a", _report().results[0])
        progress.close()
    assert re.search(r"\[0/2 \d+\.\ds\] checking a \.\.\..*\[1/2 \d+\.\ds\] a: proved", tty.getvalue())
    assert plain.getvalue() == ""


def test_elapsed_is_short() -> None:
    from derive.present.terminal import elapsed

    assert (elapsed(4.21), elapsed(65.2), elapsed(3600)) == ("4.2s", "1m05s", "60m00s")


def test_catalog_claims_are_typeset_and_spec_file_formulas_stay_source() -> None:
    from derive import catalog
    from derive.present.report import _claim

    softmax = _claim(catalog.get("softmax_jacobian"))
    assert softmax.count("<math") == 2 and "<code>" not in softmax  # definition and claim
    assert "<mfrac>" in softmax  # d p / d z as a fraction
    spec = dataclasses.replace(catalog.get("softmax_jacobian"), name="mine")  # not the catalog's
    assert "<math" not in _claim(spec) and "<code>p = " in _claim(spec)
