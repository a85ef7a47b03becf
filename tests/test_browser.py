"""The whole catalog's report, end to end: under 5 MB, nothing fetched from anywhere, every
derivation converted to MathML, and in headless Chromium the math laid out as MathML and the
plots drawn (measured in the rendered page, and a screenshot that is not blank).

Chromium is Debian's `chromium` package, which .ci/run installs; without it the browser tests
are skipped with the reason, unless DERIVE_REQUIRE_BROWSER=1 (as in CI), where they fail.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("latex2mathml")

from derive import catalog  # noqa: E402
from derive.present.report import render_html  # noqa: E402
from derive.model.verdict import Report, Result, Symbolic  # noqa: E402

from test_report import external_references  # noqa: E402

LIMIT_BYTES = 5_000_000
MEASURE = """<script>
(() => {
  const size = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  const probe = document.createElement("span");
  probe.textContent = "x";
  document.body.appendChild(probe);
  const first = document.querySelector("math");
  const out = {
    line: probe.getBoundingClientRect().height,
    math: [...document.querySelectorAll("math")].map(size),
    fractions: [...document.querySelectorAll("mfrac")].map(size),
    isMathML: document.querySelector("mfrac") instanceof MathMLElement,
    display: first ? getComputedStyle(first).display : "",
    plots: [...document.querySelectorAll(".plots svg")].map(size),
  };
  const pre = document.createElement("pre");
  pre.id = "measure";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


@pytest.fixture(scope="module")
def catalog_page() -> tuple[str, float]:
    """The page for every catalog identity. The verdicts are placeholders (checking the whole
    catalog takes minutes; the verdict rows are a few hundred bytes each): the derivations,
    the plots and the MathML, which make the page's size, are the real ones."""
    identities = list(catalog.CATALOG.values())
    report = Report(0, tuple(Result(i.name, "inconclusive", Symbolic("not run", 0.0), (), 0.0,
                                    reason="not checked in this test") for i in identities))
    start = time.perf_counter()
    page = render_html(identities, report, title="derive: the catalog", samples=16)
    return page, time.perf_counter() - start


def test_catalog_page_is_small_and_fetches_nothing(catalog_page: tuple[str, float]) -> None:
    page, seconds = catalog_page
    print(f"catalog page: {len(page.encode()) / 1e6:.2f} MB in {seconds:.1f} s")
    assert len(page.encode("utf-8")) < LIMIT_BYTES
    assert external_references(page) == []
    assert "<script" not in page


def test_every_catalog_derivation_converts_to_mathml(catalog_page: tuple[str, float]) -> None:
    page, _ = catalog_page
    assert page.count("<section>") == len(catalog.CATALOG)
    assert page.count('<table class="derivation">') == len(catalog.CATALOG)  # none 'not typeset'
    assert '<code class="tex">' not in page  # no line fell back to LaTeX source
    assert page.count('id="himmelblau"') == 1


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("DERIVE_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed but DERIVE_REQUIRE_BROWSER is set (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return exe


def _browse(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on a local file, with every host name unresolvable: nothing can load."""
    argv = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}", *flags, page.as_uri()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _measure(page: str, script: str, tmp_path: Path) -> dict:
    """What `script`, run in headless Chromium at the end of `page`, measured (its JSON)."""
    measured = tmp_path / "measured.html"
    measured.write_text(page.replace("</body>", script + "</body>"), encoding="utf-8")
    dom = _browse(measured, tmp_path / "profile", "--dump-dom").stdout
    found = re.search(r'<pre id="measure">(.*?)</pre>', dom, flags=re.S)
    assert found, dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


def test_in_chromium_the_math_is_laid_out_and_the_plots_are_drawn(
        catalog_page: tuple[str, float], tmp_path: Path) -> None:
    page, _ = catalog_page
    m = _measure(page, MEASURE, tmp_path)
    assert m["isMathML"] and m["display"] in ("math", "inline math", "block math")
    assert len(m["math"]) == page.count("<math") > 100
    assert all(w > 0 and h > 0 for w, h in m["math"])
    # a fraction is stacked: taller than a line of text (as plain text it would be one line)
    fractions = sorted(h for _, h in m["fractions"])
    assert fractions and fractions[len(fractions) // 2] > 1.5 * m["line"]
    assert len(m["plots"]) == page.count("<svg") > len(catalog.CATALOG)
    assert all(w > 200 and h > 150 for w, h in m["plots"])


STABILITY_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "stability.derive.toml"
MEASURE_STABILITY = """<script>
(() => {
  const size = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  const pre = document.createElement("pre");
  pre.id = "measure";
  pre.textContent = JSON.stringify({
    plots: [...document.querySelectorAll(".plots.stability svg")].map(size),
    lines: [...document.querySelectorAll(".plots.stability svg path")].length,
    rows: document.querySelectorAll("table.stability tr").length,
  });
  document.body.appendChild(pre);
})();
</script>"""


@pytest.fixture(scope="module")
def stability_page() -> str:
    """Two identities that lose bits (the seeds' BCE, softmax without the shift) and one that
    does not, with their real stability entries (placeholder verdicts)."""
    from derive.numeric.stability import analyse
    from derive.run.loader import resolve

    chosen = ("bce_logits", "softmax_unshifted", "bce_with_logits")
    identities = [i for i in resolve(str(STABILITY_EXAMPLE)) if i.name in chosen]
    report = Report(0, tuple(Result(i.name, "proved", Symbolic("not run", 0.0), (), 0.0,
                                    stability=analyse(i).entries()) for i in identities))
    return render_html(identities, report, title="derive: stability", samples=16)


def test_in_chromium_the_stability_plots_are_drawn(stability_page: str, tmp_path: Path) -> None:
    page = stability_page
    assert external_references(page) == [] and "<script" not in page
    assert page.count('<div class="plots stability">') == 2 and page.count("<h3>Stability</h3>") == 2
    assert "softplus(z) - y*z" in page and "softmax(z)" in page
    m = _measure(page, MEASURE_STABILITY, tmp_path)
    assert len(m["plots"]) == 2 and all(w > 300 and h > 200 for w, h in m["plots"])
    assert m["lines"] > 20 and m["rows"] > 6  # curves drawn, the table's rows laid out


def test_in_chromium_the_screenshot_is_not_blank(catalog_page: tuple[str, float], tmp_path: Path) -> None:
    import matplotlib.image

    page, _ = catalog_page
    path = tmp_path / "catalog.html"
    path.write_text(page, encoding="utf-8")
    shot = tmp_path / "shot.png"
    _browse(path, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2400")
    pixels = matplotlib.image.imread(io.BytesIO(shot.read_bytes()), format="png")[..., :3]
    assert pixels.shape[:2] == (2400, 1280)
    ink = (pixels.mean(axis=2) < 0.9).mean()  # the share of pixels that are not (near) white
    assert 0.01 < ink < 0.9 and pixels.std() > 0.05
    amber = (abs(pixels - [0x9a / 255, 0x67 / 255, 0]) < 0.06).all(axis=2).sum()
    assert amber > 200  # the inline CSS applied: the placeholders' 'inconclusive' badges are drawn
    if os.environ.get("DERIVE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["DERIVE_KEEP_SCREENSHOT"])
