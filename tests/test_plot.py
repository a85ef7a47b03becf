"""Plots: the finite-difference V, the per-sample errors (the same numbers `derive check`
reports), Adam on Himmelblau (the example's end points), and the files `derive plot` writes."""

from __future__ import annotations

import dataclasses
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from derive import Claim, catalog, check
from derive.model import ops
from derive.present import plot  # noqa: E402
from derive.present.cli import main  # noqa: E402
from derive.errors import DeriveError, UnsupportedError  # noqa: E402

EXAMPLE_ENDS = {(-4.0, 0.0): (-3.7793, -3.2832), (1.0, 0.0): (3.0, 2.0)}  # examples/himmelblau_adam.py


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_central_differences_make_a_v_and_the_complex_step_stays_flat() -> None:
    sweep = plot.step_sweep(catalog.get("sigmoid_derivative"))
    h, central = sweep.steps, sweep.central
    at = lambda step: central[np.argmin(np.abs(np.log10(h / step)))]  # noqa: E731
    assert at(sweep.chosen) < 1e-9                       # the chosen step is near the bottom
    assert at(1e-15) > 100 * at(sweep.chosen)            # rounding error on the left arm
    assert at(1.0) > 100 * at(sweep.chosen)              # truncation error on the right arm
    assert abs(np.log10(h[np.nanargmin(central)] / sweep.chosen)) <= 2
    assert sweep.complex_step is not None and np.all(sweep.complex_step[h <= 1e-8] < 1e-14)
    assert sweep.claim_error < 1e-14 and sweep.chosen == pytest.approx(2.220446049250313e-16 ** (1 / 3))


def test_a_wrong_claim_shows_its_error_and_a_kinked_forward_has_no_complex_step() -> None:
    sigmoid = catalog.get("sigmoid_derivative")
    wrong = dataclasses.replace(sigmoid, name="sigmoid_wrong",
                                claims=(Claim(lambda v: 1 - v.s, wrt="x"),))
    assert plot.step_sweep(wrong).claim_error > 0.1
    assert plot.step_sweep(catalog.get("relu_derivative")).complex_step is None


def test_value_claims_have_no_step_sweep() -> None:
    with pytest.raises(UnsupportedError, match="claims only a value"):
        plot.step_sweep(catalog.get("bce_definition"))


@pytest.mark.parametrize("name, wrong", [("softmax_jacobian", False), ("softmax_jacobian", True)])
def test_sample_errors_are_the_errors_check_reports(name: str, wrong: bool) -> None:
    identity = catalog.get(name)
    if wrong:
        identity = dataclasses.replace(identity, name="softmax_plus", claims=(
            Claim(lambda v: ops.diag(v.p) + ops.outer(v.p, v.p), wrt="z"),))
    errors = plot.sample_errors(identity, samples=16)
    result = check(identity, samples=16)
    assert result.verdict == ("refuted" if wrong else "proved")
    for n in result.numeric:
        assert errors.errors[n.backend].size == 16 * len(identity.sizes)
        assert errors.errors[n.backend].max() == pytest.approx(n.max_rel_error, rel=1e-9, abs=1e-300)


def test_adam_is_torch_adam() -> None:
    torch = pytest.importorskip("torch")
    start = np.array([[-4.0, 0.0], [1.0, 0.5]])
    p = torch.tensor(start, requires_grad=True)
    optimizer = torch.optim.Adam([p], lr=plot.ADAM_LR)
    for _ in range(300):
        optimizer.zero_grad()
        (p**4 - 3 * p).sum().backward()
        optimizer.step()
    ends, path = plot.adam(lambda q: 4 * q**3 - 3, start, steps=300, record_every=100)
    assert np.abs(ends - p.detach().numpy()).max() < 1e-12
    assert path.shape == (4, 2, 2) and np.array_equal(path[0], start) and np.array_equal(path[-1], ends)


def test_himmelblau_descent_reproduces_the_example() -> None:
    descent = plot.himmelblau_descent(catalog.get("himmelblau_gradient"))
    ends = {tuple(s): tuple(np.round(e, 4)) for s, e in zip(descent.starts.tolist(), descent.ends)}
    for start, want in EXAMPLE_ENDS.items():
        assert ends[start] == want
    X, Y, Z = descent.grid
    assert Z.shape == X.shape and Z.min() >= 0 and descent.minima.shape == (4, 2)


def test_himmelblau_plot_needs_himmelblau() -> None:
    with pytest.raises(UnsupportedError, match="not Himmelblau's function"):
        plot.himmelblau_descent(catalog.get("square_sum_gradient"))
    with pytest.raises(UnsupportedError, match="two scalars"):
        plot.himmelblau_descent(catalog.get("softmax_jacobian"))


def test_inline_svg_has_private_ids_and_no_urls() -> None:
    sweep = plot.step_sweep(catalog.get("tanh_derivative"))
    a = plot.inline_svg(plot.fd_figure(sweep), "one")
    b = plot.inline_svg(plot.fd_figure(sweep), "two")
    for svg, prefix in ((a, "one"), (b, "two")):
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
        assert "http" not in svg and "<metadata" not in svg
        ids = re.findall(r'\bid="([^"]+)"', svg)
        assert ids and all(i.startswith(prefix + "-") for i in ids)
        refs = re.findall(r'(?:url\(#|href="#)([^)"]+)', svg)
        assert refs and set(refs) <= set(ids)
        assert re.search(r"fill: #[0-9a-f]{6}", svg)  # colours untouched by the renaming
    assert len(a) < 40_000


@pytest.mark.parametrize("kind, name, suffix", [("fd", "tanh_derivative", "png"),
                                                ("errors", "mse_gradient", "svg"),
                                                ("himmelblau", "himmelblau_gradient", "png")])
def test_derive_plot_writes_one_image(tmp_path: Path, kind: str, name: str, suffix: str) -> None:
    path = tmp_path / f"p.{suffix}"
    code, _, err = run("plot", name, "--kind", kind, "-o", str(path), "--samples", "16")
    assert code == 0, err
    data = path.read_bytes()
    if suffix == "png":
        import matplotlib.image

        pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert pixels.shape[0] > 200 and pixels.shape[1] > 300 and pixels.std() > 0.05
    else:
        assert b"<svg" in data and b"</svg>" in data


def test_derive_plot_of_a_spec_file_needs_one_identity(tmp_path: Path) -> None:
    wrong = str(Path(__file__).parent.parent / "examples" / "wrong.derive.toml")
    code, _, err = run("plot", wrong, "-o", str(tmp_path / "p.svg"))
    assert code == 2 and "defines 10 identities; choose one with --identity" in err
    code, _, err = run("plot", wrong, "--identity", "tanh_derivative_sign", "-o", str(tmp_path / "p.svg"))
    assert code == 0, err
    assert (tmp_path / "p.svg").read_bytes().count(b"the claim's error") == 1


@pytest.mark.parametrize("argv, message", [
    (["plot", "softmax_jacobian", "--kind", "himmelblau", "-o", "x.png"], "two scalars x and y"),
    (["plot", "bce_definition", "-o", "x.png"], "claims only a value"),
    (["plot", "softmax_jacobian", "-o", "x.pdf"], "name the file FILE.svg or FILE.png"),
    (["plot", "softmax_jacobain", "-o", "x.png"], "did you mean softmax_jacobian"),
    (["plot", "softmax_jacobian", "--kind", "contour", "-o", "x.png"], "invalid choice: 'contour'"),
])
def test_plot_errors_are_one_line(argv: list[str], message: str, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(*argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_missing_matplotlib_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    code, _, err = run("plot", "tanh_derivative", "-o", str(tmp_path / "p.png"))
    assert code == 2 and err == "derive: error: plots need matplotlib: pip install 'derive-checker[report]'\n"
    with pytest.raises(DeriveError, match=r"derive-checker\[report\]"):
        plot.figure("fd", catalog.get("tanh_derivative"))
