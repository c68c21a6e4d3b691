"""``az://`` against Azurite's Blob service on 127.0.0.1 (adlfs, credentials from AZURE_STORAGE_CONNECTION_STRING):
a URL gives the report of the same file on disk; what goes wrong is exit 2 naming the URL; the key is never shown."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .conftest import FIXTURES, run_cli
from .servers import AZURE_KEY, azure_connection, azurite_server, upload_azure
from .test_remote import BUCKET, MODELS, _inspect, _on_disk


@pytest.fixture(scope="module")
def azurite() -> Iterator[str]:
    """Azurite with fixtures/ uploaded under az://models/fixtures/: its endpoint."""
    with azurite_server() as endpoint:
        upload_azure(azure_connection(endpoint), BUCKET, FIXTURES, "fixtures")
        yield endpoint


@pytest.fixture(scope="module")
def azure(azurite: str) -> dict[str, str]:
    """The environment a user sets for it."""
    return {"AZURE_STORAGE_CONNECTION_STRING": azure_connection(azurite)}


@pytest.mark.parametrize("model", MODELS)
def test_a_url_on_azure_gives_the_report_of_the_file_on_disk(azure: dict[str, str], model: str) -> None:
    status, report, stderr = _inspect(f"az://{BUCKET}/fixtures/{model}", f"az://{BUCKET}/fixtures/", azure)
    assert (status, report) == _on_disk(model), stderr
    assert AZURE_KEY not in json.dumps(report) + stderr


def test_azure_failures_name_the_url_and_never_the_key(azurite: str, azure: dict[str, str]) -> None:
    cases = {
        f"az://{BUCKET}/fixtures/nothing.keras": ("no such file", azure),
        "az://no-such-container/model.keras": ("no such file", azure),
        f"abfs://{BUCKET}/fixtures/tf1_no_control_deps": (
            "access denied (HTTP 403",
            {"AZURE_STORAGE_CONNECTION_STRING": azure_connection(azurite, "d3Jvbmc=" * 11)},
        ),
    }
    for url, (reason, env) in cases.items():
        result = run_cli("inspect", url, env=env)
        assert result.returncode == 2 and result.stderr.startswith(f"bncheck: error: {url}: {reason}"), result.stderr
        assert "Traceback" not in result.stderr and AZURE_KEY not in result.stderr and "d3Jvbmc=" not in result.stderr


def test_a_diff_of_a_blob_and_a_file(azure: dict[str, str]) -> None:
    a, b = "torch/diff/base.pt", "torch/diff/finetuned_eval.pt"
    disk = run_cli("diff", f"fixtures/{a}", f"fixtures/{b}", "--format", "json", "--frozen", "*")
    remote = run_cli(
        "diff", f"az://{BUCKET}/fixtures/{a}", f"fixtures/{b}", "--format", "json", "--frozen", "*", env=azure
    )
    assert remote.returncode == disk.returncode == 1, remote.stderr  # BN202: a frozen layer changed
    assert json.loads(remote.stdout.replace(f"az://{BUCKET}/fixtures/", "fixtures/")) == json.loads(disk.stdout)
