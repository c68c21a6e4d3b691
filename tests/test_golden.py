"""Golden outputs: the expected text of ``bncheck inspect`` and ``bncheck diff`` for chosen inputs, checked in
under tests/golden/, so that every change to what users read is a reviewed diff. After an intended change:

    pytest tests/test_golden.py --update-golden      # or BNCHECK_UPDATE_GOLDEN=1 pytest tests/test_golden.py

One directory per case, one file per format: table-60.txt, table-80.txt, table-120.txt (NO_COLOR, COLUMNS
set), json.json, sarif.json, github.txt, and status.txt (exit status and stderr of each). The CLI runs in a
fresh process with relative paths, from the repository root (real-world inputs: from the corpus directory),
so the text holds no absolute path and no timing. The SARIF rule catalogue is the same in every log: it is
kept once, in sarif-rules.json, and each sarif.json holds the rest of its log.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REALWORLD, ROOT, realworld, run_cli
from .html_page import data_text

GOLDEN = Path(__file__).parent / "golden"
RULES_FILE = GOLDEN / "sarif-rules.json"
TABLES = ("table-60", "table-80", "table-120")
INSPECT = (*TABLES, "json", "sarif", "github")
DIFF = (*TABLES, "json")
WITH_HTML = ("html",)  # the data an HTML report embeds (html-data.json), for some cases
REGENERATE = "pytest tests/test_golden.py --update-golden"


@dataclass(frozen=True)
class Case:
    name: str  # its directory under tests/golden/
    args: tuple[str, ...]
    formats: tuple[str, ...]
    corpus: bool = False  # the paths are in the real-world corpus

    def run(self, fmt: str) -> tuple[str, int, str]:
        """stdout, exit status and stderr of the case in format ``fmt``."""
        if self.corpus:
            realworld(self.args[1])  # skips (or fails in CI) without the corpus
        width = fmt.removeprefix("table-") if fmt.startswith("table-") else "80"
        options = () if fmt.startswith("table-") else ("--format", fmt)
        result = run_cli(*self.args, *options, env={"COLUMNS": width}, cwd=REALWORLD if self.corpus else ROOT)
        return result.stdout, result.returncode, result.stderr


CASES = (
    Case("inspect/tf1_no_control_deps", ("inspect", "fixtures/tf1_no_control_deps"), (*INSPECT, *WITH_HTML)),
    Case("inspect/tf1_value_oddities", ("inspect", "fixtures/tf1_value_oddities"), (*INSPECT, *WITH_HTML)),
    Case("inspect/tf1_correct", ("inspect", "fixtures/tf1_correct"), INSPECT),
    Case("inspect/k3_frozen", ("inspect", "fixtures/keras/k3_frozen/model.keras"), (*INSPECT, *WITH_HTML)),
    Case("inspect/frozen_healthy", ("inspect", "fixtures/graphs/frozen_healthy"), INSPECT),
    Case("inspect/onnx_training_mode", ("inspect", "fixtures/graphs/onnx/training_mode.onnx"), INSPECT),
    Case("inspect/tf2_serving_training", ("inspect", "fixtures/exports/tf2_serving_training"), INSPECT),
    Case("inspect/frozen_default_true", ("inspect", "fixtures/exports/frozen_default_true/frozen.pb"), INSPECT),
    Case("inspect/torch_eval_mode", ("inspect", "fixtures/torch/eval_mode.pt"), (*INSPECT, *WITH_HTML)),
    Case("inspect/torch_barely", ("inspect", "fixtures/torch/barely.pt"), INSPECT),
    Case("inspect/torch_lightning", ("inspect", "fixtures/torch/lightning.ckpt"), INSPECT),
    Case("inspect/tf1_many_vars", ("inspect", "fixtures/tf1_many_vars"), (*TABLES, "github")),  # its json: 2 MB
    Case("inspect/mmd_gan", ("inspect", "denoise_bn_bug_index_meta/models/trained/mmd_gan.ckpt"), INSPECT, True),
    Case("inspect/svhn", ("inspect", "svhn_slim_index_meta/checkpoint"), INSPECT, True),
    Case("inspect/stoch_depth", ("inspect", "tf14_slim_stoch_depth/20171218-004853"), (*INSPECT, *WITH_HTML), True),
    Case("diff/no_updates", ("diff", "fixtures/diff/no_updates/a", "fixtures/diff/no_updates/b"), DIFF),
    Case("diff/bessel", ("diff", "fixtures/diff/bessel/a", "fixtures/diff/bessel/b"), DIFF),
    Case(
        "diff/finetune_drift",
        (
            "diff",
            "fixtures/diff/finetune_drift/a",
            "fixtures/diff/finetune_drift/b",
            "--frozen",
            "batch_normalization*",
        ),
        (*DIFF, *WITH_HTML),
    ),
    Case(
        "diff/torch_frozen_backbone",
        (
            "diff",
            "fixtures/torch/diff/base.pt",
            "fixtures/torch/diff/finetuned_requires_grad.pt",
            "--frozen",
            "backbone.*",
        ),
        (*DIFF, *WITH_HTML),
    ),
    Case(
        "diff/k3_center_scale",
        ("diff", "fixtures/keras/k3_center_scale/model.keras", "fixtures/keras/k3_center_scale/model.weights.h5"),
        DIFF,
    ),
)
SUFFIX = {"json": ".json", "sarif": ".json", "html": "-data.json"}


def _split_sarif(text: str) -> tuple[str, str]:
    """A SARIF log as (the log with its rule catalogue left out, the catalogue)."""
    log = json.loads(text)
    driver = log["runs"][0]["tool"]["driver"]
    rules = driver["rules"]
    driver["rules"] = f"(the same in every log: {RULES_FILE.name})"
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n", json.dumps(rules, indent=2, ensure_ascii=False) + "\n"


def _compare(path: Path, actual: str, update: bool) -> str:
    """'' when ``path`` holds ``actual`` (after writing it, when updating); else a unified diff."""
    expected = path.read_text(encoding="utf-8") if path.exists() else None
    if expected == actual:
        return ""
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return ""
    name = str(path.relative_to(GOLDEN.parent.parent))
    if expected is None:
        return f"{name}: missing (write it with {REGENERATE})"
    lines = difflib.unified_diff(
        expected.splitlines(keepends=True), actual.splitlines(keepends=True), f"{name} (golden)", f"{name} (today)"
    )
    return "".join(lines)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_golden_output(case: Case, update_golden: bool) -> None:
    directory = GOLDEN / case.name
    differences, outcomes = [], {}
    for fmt in case.formats:
        stdout, status, stderr = case.run(fmt)
        if fmt == "sarif":
            stdout, rules = _split_sarif(stdout)
            differences.append(_compare(RULES_FILE, rules, update_golden))
        if fmt == "html":
            stdout = data_text(stdout)
        differences.append(_compare(directory / f"{fmt}{SUFFIX.get(fmt, '.txt')}", stdout, update_golden))
        outcomes.setdefault((status, stderr), []).append(fmt)
    status_text = "".join(
        f"{', '.join(formats)}: exit {status}\n" + "".join(f"  {line}\n" for line in stderr.splitlines())
        for (status, stderr), formats in outcomes.items()
    )
    differences.append(_compare(directory / "status.txt", status_text, update_golden))
    if any(differences):
        pytest.fail("".join(differences) + f"\nIf these changes are intended: {REGENERATE}", pytrace=False)


def test_every_golden_file_belongs_to_a_case(update_golden: bool) -> None:
    """A case removed or renamed leaves no stale expected output behind."""
    expected = {RULES_FILE} | {
        GOLDEN / case.name / name
        for case in CASES
        for name in ("status.txt", *(f"{fmt}{SUFFIX.get(fmt, '.txt')}" for fmt in case.formats))
    }
    stale = sorted(path for path in GOLDEN.rglob("*") if path.is_file() and path not in expected)
    if update_golden:
        for path in stale:
            path.unlink()
    else:
        assert not stale, f"not written by any case (remove them, or run {REGENERATE}): {stale}"
