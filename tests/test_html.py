"""--format html: the page a person looks at, opened in headless Chromium (Debian's, through Playwright) with
the network off. Each report must load without a console error, fetch nothing, show every layer and every
finding, and draw something (a screenshot that is not blank); its embedded data is checked by the golden files
(tests/golden/*/html-data.json) and here against the JSON report of the same file."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from bncheck import analysis
from bncheck.config import Settings
from bncheck.facts import ModelFile, Step, Variable
from bncheck.readers import open_with_graph
from bncheck.render import html
from bncheck.scales import with_scales

from .conftest import FIXTURES, run_cli
from .html_page import CHROMIUM, page_data

CASES = {  # name -> the CLI arguments of a report
    "no_control_deps": ("inspect", "fixtures/tf1_no_control_deps"),
    "nan_negvar": ("inspect", "fixtures/tf1_nan_negvar"),
    "value_oddities": ("inspect", "fixtures/tf1_value_oddities"),
    "k3_frozen": ("inspect", "fixtures/keras/k3_frozen/model.keras"),
    "torch_eval": ("inspect", "fixtures/torch/eval_mode.pt"),
    "many_layers": ("inspect", "fixtures/keras/tfk_many_layers/model.h5"),
    "scan": ("inspect", "fixtures/keras"),
    "diff_frozen": (
        "diff",
        "fixtures/diff/finetune_drift/a",
        "fixtures/diff/finetune_drift/b",
        "--frozen",
        "batch_normalization*",
    ),
}


def _write(tmp: Path, name: str, *args: str) -> Path:
    out = tmp / f"{name}.html"
    result = run_cli(*args, "--format", "html", "-o", str(out))
    assert result.returncode in (0, 1), result.stderr
    assert result.stdout == "" and out.stat().st_size > 0
    return out


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("html")
    return {name: _write(tmp, name, *args) for name, args in CASES.items()}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run does)"
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield launched
        launched.close()


class Opened:
    """A report loaded in a fresh offline page, with what the page said and asked for."""

    def __init__(self, browser: Any, path: Path, scheme: str = "light") -> None:
        self.context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900}, color_scheme=scheme)
        self.page = self.context.new_page()
        self.messages: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.messages.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("html[data-ready=true]", timeout=30_000)

    def cells(self, table: int = 0, column: int = 1) -> list[str]:
        """The texts of one column of a layer table, as shown."""
        return self.page.eval_on_selector_all(
            f"div.table >> nth={table} >> tbody tr", f"rows => rows.map(r => r.cells[{column}].textContent)"
        )

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def opened(browser: Any) -> Iterator[Any]:
    pages: list[Opened] = []

    def open_(path: Path, scheme: str = "light") -> Opened:
        pages.append(Opened(browser, path, scheme))
        return pages[-1]

    yield open_
    for page in pages:
        page.close()


def _not_blank(png: bytes) -> int:
    """The number of distinct colours in a screenshot."""
    from PIL import Image

    return len(Image.open(BytesIO(png)).convert("RGB").getcolors(maxcolors=1 << 20) or ())


@pytest.mark.parametrize("name", CASES)
def test_report_opens_offline_and_shows_every_layer_and_finding(name: str, reports: dict, opened: Any) -> None:
    path = reports[name]
    page = opened(path)
    assert page.messages == []
    assert [url for url in page.requests if not url.startswith(("file:", "data:"))] == []
    assert all(url == path.as_uri() for url in page.requests)  # nothing but the page itself
    data = page_data(path.read_text(encoding="utf-8"))
    tables = [data] if data["kind"] == "diff" else data["models"]
    shown = page.page.locator("div.table").count()
    assert shown == sum(1 for table in tables if table["rows"])
    for k, table in enumerate(t for t in tables if t["rows"]):
        assert page.cells(k) == [row[0] for row in table["rows"]]  # every layer, in the model's order
    # every finding is listed, under a visible rule heading, and each layer's codes link to one of them
    items = page.page.locator(".rule li")
    payload = json.loads(run_cli(*CASES[name], "--format", "json").stdout)
    findings = payload["findings"] if data["kind"] == "diff" else [f for m in payload["files"] for f in m["findings"]]
    assert items.count() == len(findings)
    for code in {f["code"] for f in findings}:
        assert page.page.locator(f".rule h4:has-text('{code}')").first.is_visible()
    for link in page.page.eval_on_selector_all("td a", "links => links.map(a => a.getAttribute('href'))"):
        assert page.page.locator(link).count() == 1
    assert _not_blank(page.page.screenshot(full_page=True)) > 20


def test_charts_mark_the_layers_with_findings(reports: dict, opened: Any) -> None:
    """tf1_nan_negvar: every layer has an error or warning; NaN and a variance <= 0 are drawn as such."""
    page = opened(reports["nan_negvar"])
    charts = page.page.locator("svg.chart")
    assert charts.count() == 4
    for k in range(4):
        chart = charts.nth(k)
        assert chart.locator("g.col").count() == 3  # one column per layer
        assert chart.locator(".mark").count() == 3
    variance = page.page.locator("svg#m0-variance")
    assert variance.locator(".clipped").count() == 2  # a negative and a zero variance: below a log scale
    amplification = page.page.locator("svg#m0-amplification")
    assert amplification.locator(".nonfinite").count() == 1  # the NaN of batch_normalization_1's sqrt(-0.5)
    # a column links to its layer's first finding, and a click shows that layer in the table
    page.page.locator("svg#m0-mean g.col").nth(1).click()
    assert page.cells() == ["batch_normalization_1"]
    assert page.page.evaluate("location.hash") == "#m0-f1"


def test_a_link_to_a_finding_behind_more_opens_it(reports: dict, opened: Any) -> None:
    """BN002 fired on every layer of tf1_no_control_deps: one example in view, the others behind '2 more'."""
    page = opened(reports["no_control_deps"])
    hidden = page.page.locator("#m0-f4")  # batch_normalization_2's BN002 (findings in layer order, BN002, BN102)
    assert page.page.locator("details").count() == 2 and not hidden.is_visible()
    page.page.locator("tbody tr").nth(2).locator("a", has_text="BN002").click()
    assert hidden.is_visible() and "batch_normalization_2" in hidden.text_content()
    page.page.locator("tbody tr").nth(2).locator("a", has_text="BN102").click()
    assert page.page.evaluate("location.hash") == "#m0-f5"  # its own finding of that code


def test_table_sorts_filters_and_pages(reports: dict, opened: Any) -> None:
    page = opened(reports["value_oddities"])
    names = page.cells()
    header = page.page.locator("th button", has_text="amp. max")
    header.click()
    shown = page.cells(column=11)
    amplification = [float(x) for x in shown if x]
    assert amplification == sorted(amplification) and len(shown) == len(names)
    assert shown[len(amplification) :] == [""]  # mismatch/batch_normalization: no amplification, last
    header.click()
    assert [float(x) for x in page.cells(column=11) if x] == sorted(amplification, reverse=True)
    page.page.fill("input[type=search]", "BN007")
    assert page.cells() == ["amplified/batch_normalization"]
    page.page.fill("input[type=search]", "copy")
    assert page.cells() == ["copy_a/batch_normalization", "copy_b/batch_normalization"]
    page.page.fill("input[type=search]", "")
    page.page.check("input[type=checkbox]")
    data = page_data(reports["value_oddities"].read_text(encoding="utf-8"))
    with_codes = [row[0] for row in data["models"][0]["rows"] if row[12]]
    assert sorted(page.cells()) == sorted(with_codes) and len(with_codes) < len(names)


def test_frozen_layers_are_marked(reports: dict, opened: Any) -> None:
    page = opened(reports["k3_frozen"])
    data = page_data(reports["k3_frozen"].read_text(encoding="utf-8"))
    frozen = [row[0] for row in data["models"][0]["rows"] if row[2]]
    assert frozen, "k3_frozen has a frozen layer"
    assert page.page.locator("tbody tr.frozen").count() == len(frozen)
    assert page.page.locator("svg#m0-mean rect.frozen").count() == len(frozen)
    diff = opened(reports["diff_frozen"])
    assert diff.page.locator("tbody tr.frozen").count() == 3  # declared with --frozen
    assert diff.page.locator("svg.chart .point").count() == 6  # moving_mean and moving_variance of 3 layers


def test_dark_mode_and_print(reports: dict, opened: Any) -> None:
    page = opened(reports["nan_negvar"], scheme="dark")
    background = page.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(22, 22, 22)"
    pdf = page.page.pdf()  # printable: Chromium renders it to PDF
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


def test_a_scan_is_one_page_with_a_section_per_model(reports: dict, opened: Any) -> None:
    page = opened(reports["scan"])
    data = page_data(reports["scan"].read_text(encoding="utf-8"))
    assert len(data["models"]) > 5
    assert page.page.locator("section.model").count() == len(data["models"])
    assert page.page.locator("nav li").count() == len(data["models"])


def test_data_agrees_with_the_json_report() -> None:
    """The page's numbers are the JSON report's (4 significant digits), for every layer of a real scan."""
    args = ("inspect", "fixtures/keras")
    page = page_data(run_cli(*args, "--format", "html").stdout)
    payload = json.loads(run_cli(*args, "--format", "json").stdout)
    assert [m["path"] for m in page["models"]] == [f["path"] for f in payload["files"]]
    columns = page["columns"]
    for model, file in zip(page["models"], payload["files"], strict=True):
        assert [row[0] for row in model["rows"]] == [layer["name"] for layer in file["layers"]]
        for row, layer in zip(model["rows"], file["layers"], strict=True):
            values = dict(zip(columns, row, strict=True))
            assert values["codes"] == layer["codes"] and values["frozen"] == layer["frozen"]
            for key, role in (("mean", "moving_mean"), ("var", "moving_variance")):
                stats = layer["variables"].get(role, {}).get("stats") or {}
                for bound in ("min", "max"):
                    expected = stats.get(bound)
                    got = values[f"{key}_{bound}"]
                    assert (got is None) == (expected is None)
                    if expected is not None:
                        assert math.isclose(got, expected, rel_tol=1e-3, abs_tol=1e-300)


@pytest.mark.parametrize("name", ["tf1_value_oddities", "tf1_nan_negvar", "tf1_correct"])
def test_scales_are_those_of_the_values(name: str) -> None:
    """|gamma| and the amplification (summarised for all layers of a chunk at once) against numpy, layer by
    layer, on the values TensorFlow wrote."""
    report = analysis.read_layers(open_with_graph(str(FIXTURES / name)))
    scaled = with_scales(report.layers, 1e-3)
    for layer in scaled:
        gamma, variance = layer.float64("gamma"), layer.float64("moving_variance")
        if gamma is None or variance is None or gamma.shape != variance.shape:
            assert "abs_gamma" not in layer.stats
            continue
        epsilon = layer.hints.epsilon if layer.hints.epsilon is not None else 1e-3
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = np.abs(gamma) / np.sqrt(variance + epsilon)
        finite = factor[np.isfinite(factor)]
        stats = layer.stats["amplification"]
        assert stats.nonfinite == factor.size - finite.size
        assert (stats.min, stats.max) == ((finite.min(), finite.max()) if finite.size else (None, None))
        assert (layer.stats["abs_gamma"].min, layer.stats["abs_gamma"].max) == (
            np.abs(gamma).min(),
            np.abs(gamma).max(),
        )


def _deep_model(layers: int, nans: tuple[int, ...] = (12345,)) -> ModelFile:
    """A model of ``layers`` BN layers (TF1 names, trained-looking values, one NaN), built in code: the page's
    scale is under test here, not a reader (the CLI's timings of such files are bench rows)."""
    rng = np.random.default_rng(0)
    values: dict[str, np.ndarray] = {}
    for i in range(layers):
        channels = (16, 32, 64)[i % 3]
        scope = f"blocks/unit_{i}/BatchNorm"
        values[f"{scope}/gamma"] = (1 + 0.1 * rng.standard_normal(channels)).astype(np.float32)
        values[f"{scope}/beta"] = (0.1 * rng.standard_normal(channels)).astype(np.float32)
        values[f"{scope}/moving_mean"] = (0.2 * rng.standard_normal(channels)).astype(np.float32)
        values[f"{scope}/moving_variance"] = (rng.random(channels) + 0.5).astype(np.float32)
    for i in nans:
        values[f"blocks/unit_{i}/BatchNorm/moving_variance"][3] = np.nan
    variables = tuple(Variable(key, key, "float32", value.shape, values.__getitem__) for key, value in values.items())
    return ModelFile("deep.ckpt", "TF1 name-based checkpoint", variables, Step(10_000, "global_step"))


def test_twenty_thousand_layers_stay_usable(tmp_path: Path, opened: Any) -> None:
    """20,000 BN layers: a few MB, binned charts, a paged table that finds any layer."""
    nans = (12345, *range(7, 20_000, 333))  # 62 layers with a NaN: more BN004 findings than the page lists
    report = analysis.analyse(_deep_model(20_000, nans), Settings(scales=True), keep_values=False)
    out = tmp_path / "deep.html"
    with out.open("w", encoding="utf-8") as stream:
        html.render([report], stream)
    size = out.stat().st_size
    assert size < 4_000_000, size
    page = opened(out)
    assert page.messages == []
    assert len(page.cells()) == 500
    assert "of 20000" in page.page.text_content(".status")
    charts = page.page.locator("svg.chart")
    assert charts.count() == 4
    for chart in range(4):
        assert charts.nth(chart).locator("g.col").count() == 477  # 42 layers a column
    assert page.page.locator(".rule li").count() == html.FINDINGS_PER_RULE
    more = len(nans) - html.FINDINGS_PER_RULE
    assert f"{more} more: type BN004 in the table's filter" in page.page.text_content(".rule")
    page.page.fill("input[type=search]", "BN004")
    assert sorted(page.cells()) == sorted(f"blocks/unit_{i}/BatchNorm" for i in nans)  # the filter finds all
    marked = page.page.locator("svg#m0-variance .mark.error").count()  # the columns holding them
    assert marked == len({i // 42 for i in nans})
    page.page.fill("input[type=search]", "#20000")
    assert page.cells() == ["blocks/unit_19999/BatchNorm"]
    assert page.page.locator("button", has_text="next").first.is_disabled()


def test_a_layer_name_that_closes_the_script_is_only_text(tmp_path: Path, opened: Any) -> None:
    """A name holding '</script><!--' and markup stays a name: in the table, the findings and the data."""
    name = 'evil</script><!--<img src=x onerror="alert(1)">'
    values = {
        f"{name}/BatchNorm/gamma": np.full(4, 1.5, np.float32),
        f"{name}/BatchNorm/beta": np.zeros(4, np.float32),
        f"{name}/BatchNorm/moving_mean": np.zeros(4, np.float32),
        f"{name}/BatchNorm/moving_variance": np.array([1, 1, np.nan, 1], np.float32),
    }
    variables = tuple(Variable(key, key, "float32", value.shape, values.__getitem__) for key, value in values.items())
    report = analysis.analyse(ModelFile("odd.ckpt", "TF1 name-based checkpoint", variables), Settings(scales=True))
    out = tmp_path / "odd.html"
    with out.open("w", encoding="utf-8") as stream:
        html.render([report], stream)
    text = out.read_text(encoding="utf-8")
    assert text.count("</script>") == 2 and "<img" not in text
    page = opened(out)
    assert page.messages == [] and page.page.locator("img").count() == 0
    assert page.cells() == [f"{name}/BatchNorm"]
    assert f"{name}/BatchNorm" in page.page.text_content(".rule li")


def test_html_to_stdout_names_no_address() -> None:
    result = run_cli("inspect", "fixtures/tf1_correct", "--format", "html")
    assert result.returncode == 0 and result.stdout.startswith("<!DOCTYPE html>")
    assert "http://" not in result.stdout.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in result.stdout
