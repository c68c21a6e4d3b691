"""Models read from servers on 127.0.0.1: an HTTP server with Range support (counting what it sends), moto's
S3 server and gcp-storage-emulator's GCS JSON API. A URL gives the report of the same file on disk; what goes
wrong is exit 2 naming the URL and the reason; a Report pickles and a registry scan maps on a Dask cluster."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

import bncheck
from bncheck.config import Settings
from bncheck.errors import InputError
from bncheck.stores import Options

from .conftest import FIXTURES, ROOT, run_cli
from .servers import GCS_ENV, S3_ENV, RangeServer, free_port, gcs_server, range_server, s3_server, upload, upload_gcs

# One model of every format bncheck reads, as fixtures/ holds it (the last is a scan of a directory).
MODELS = [
    "tf2_fit/ckpt-1",  # TF2 checkpoint prefix
    "tf1_no_control_deps",  # a directory with a checkpoint state file; the .meta graph beside it (BN101)
    "tf1_two_shards",  # two data shards
    "tf1_partitioned",  # partitioned variables, read slice by slice
    "exports/tfk_savedmodel",  # SavedModel with keras_metadata.pb
    "exports/tf2_serving_training",  # SavedModel whose signature normalises with batch statistics (BN013)
    "keras/k3_fit/model.keras",
    "keras/tfk_fit/model.h5",
    "keras/k3_fit/model.weights.h5",
    "exports/frozen_training/frozen.pb",
    "graphs/onnx/training_mode.onnx",
    "torch/eval_mode.pt",  # zip
    "torch/healthy_legacy.pt",  # legacy stream
    "torch/views.pt",  # statistics as views of larger storages
    "torch/healthy.safetensors",
    "torch/sharded/model.safetensors.index.json",
    "torch/imagenet/checkpoint.pth.tar",
    "torch",  # a scan
]
BUCKET = "models"
SECRET = "sEcReT-never-printed"


@pytest.fixture(scope="module")
def http() -> Iterator[RangeServer]:
    with range_server(FIXTURES) as server:
        yield server


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """moto's S3 server with fixtures/ uploaded under s3://models/fixtures/; the environment a user sets."""
    with s3_server() as endpoint:
        env = {**S3_ENV, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL": endpoint}
        upload(endpoint, BUCKET, FIXTURES, "fixtures")
        yield env


@pytest.fixture(scope="module")
def gcs() -> Iterator[dict[str, str]]:
    """gcp-storage-emulator with fixtures/ uploaded under gs://models/fixtures/; the environment a user sets."""
    with gcs_server(BUCKET) as endpoint:
        upload_gcs(endpoint, BUCKET, FIXTURES, "fixtures")
        yield {**GCS_ENV, "STORAGE_EMULATOR_HOST": endpoint}


@cache
def _on_disk(model: str) -> tuple[int, dict]:
    result = run_cli("inspect", f"fixtures/{model}", "--format", "json")
    return result.returncode, json.loads(result.stdout)


def _inspect(url: str, base: str, env: dict[str, str] | None = None, *args: str) -> tuple[int, dict, str]:
    """Exit status, the json report with ``base`` read as ``fixtures/`` (as the disk report names files), stderr."""
    result = run_cli("inspect", url, "--format", "json", *args, env=env)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout.replace(base, "fixtures/")), result.stderr


@pytest.mark.parametrize("model", MODELS)
def test_a_url_over_http_gives_the_report_of_the_file_on_disk(http: RangeServer, model: str) -> None:
    http.traffic.reset()
    status, report, stderr = _inspect(f"{http.url}/{model}", f"{http.url}/")
    assert (status, report) == _on_disk(model), stderr
    size = sum(p.stat().st_size for p in (FIXTURES / model).parent.rglob("*") if p.is_file())
    assert http.traffic.bytes <= size  # never more than the files hold, though each is probed by several readers


@pytest.mark.parametrize("model", MODELS)
def test_a_url_on_s3_gives_the_report_of_the_file_on_disk(s3: dict[str, str], model: str) -> None:
    status, report, stderr = _inspect(f"s3://{BUCKET}/fixtures/{model}", f"s3://{BUCKET}/fixtures/", s3)
    assert (status, report) == _on_disk(model), stderr
    assert SECRET not in json.dumps(report) + stderr


@pytest.mark.parametrize("model", MODELS)
def test_a_url_on_gcs_gives_the_report_of_the_file_on_disk(gcs: dict[str, str], model: str) -> None:
    status, report, stderr = _inspect(f"gs://{BUCKET}/fixtures/{model}", f"gs://{BUCKET}/fixtures/", gcs)
    assert (status, report) == _on_disk(model), stderr


def test_gcs_failures_name_the_url(gcs: dict[str, str]) -> None:
    for url in (f"gs://{BUCKET}/fixtures/nothing.keras", "gs://no-such-bucket/model.keras"):
        result = run_cli("inspect", url, env=gcs)
        assert result.returncode == 2 and result.stderr.startswith(f"bncheck: error: {url}: "), result.stderr
        assert "Traceback" not in result.stderr


def test_diff_takes_urls(s3: dict[str, str], http: RangeServer) -> None:
    a, b = "torch/diff/base.pt", "torch/diff/finetuned_eval.pt"
    disk = run_cli("diff", f"fixtures/{a}", f"fixtures/{b}", "--format", "json", "--frozen", "*")
    remote = run_cli(
        "diff", f"s3://{BUCKET}/fixtures/{a}", f"{http.url}/{b}", "--format", "json", "--frozen", "*", env=s3
    )
    assert remote.returncode == disk.returncode == 1, remote.stderr  # BN202: a frozen layer changed
    text = remote.stdout.replace(f"s3://{BUCKET}/fixtures/", "fixtures/").replace(f"{http.url}/", "fixtures/")
    assert json.loads(text) == json.loads(disk.stdout)


@pytest.fixture(scope="module")
def big_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 14 MB TF2 checkpoint of six 3x3x256x256 convolutions, each with a BN layer, trained a step (TensorFlow);
    the same model as .keras and .weights.h5, and a state dict of that shape from torch (.pt, .safetensors)."""
    directory = tmp_path_factory.mktemp("big")
    script = textwrap.dedent(
        """
        import sys
        import numpy as np, tensorflow as tf, keras
        layers = [keras.Input((8, 8, 256))]
        for _ in range(6):
            layers += [keras.layers.Conv2D(256, 3, padding="same", use_bias=False), keras.layers.BatchNormalization()]
        model = keras.Sequential(layers + [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        rng = np.random.default_rng(0)
        model.fit(rng.normal(size=(16, 8, 8, 256)), rng.normal(size=(16, 1)), epochs=1, verbose=0)
        tf.train.Checkpoint(model=model).write(sys.argv[1])
        model.save(sys.argv[1] + ".keras")
        model.save_weights(sys.argv[1] + ".weights.h5")
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-c", script, str(directory / "ckpt")], check=True, env=env, timeout=300)
    torch_script = textwrap.dedent(
        """
        import sys, torch
        from safetensors.torch import save_file
        layers = []
        for _ in range(6):
            layers += [torch.nn.Conv2d(256, 256, 3, padding=1, bias=False), torch.nn.BatchNorm2d(256)]
        model = torch.nn.Sequential(*layers)
        model(torch.randn(4, 256, 8, 8))  # train mode: the statistics move
        torch.save(model.state_dict(), sys.argv[1] + ".pt")
        save_file(model.state_dict(), sys.argv[1] + ".safetensors")
        """
    )
    subprocess.run([sys.executable, "-c", torch_script, str(directory / "torch")], check=True, timeout=300)
    return directory


def test_a_checkpoint_is_read_by_range(big_checkpoint: Path) -> None:
    """The index, the object graph and the BN tensors: a few percent of the bytes, in few requests."""
    files = sum(p.stat().st_size for p in big_checkpoint.iterdir())
    disk = run_cli("inspect", str(big_checkpoint / "ckpt"), "--format", "json")
    with range_server(big_checkpoint) as server:
        status, report, stderr = _inspect(f"{server.url}/ckpt", f"{server.url}/")
        traffic = server.traffic
    assert status == disk.returncode == 0, stderr
    assert report["files"][0]["layers"] == json.loads(disk.stdout)["files"][0]["layers"]
    assert len(report["files"][0]["layers"]) == 6
    assert traffic.bytes < 0.03 * files, (traffic.bytes, files)
    assert traffic.requests <= 40, traffic.paths


# --------------------------------------------------------------------------- what goes wrong: exit 2, URL and reason


@contextlib.contextmanager
def _misbehaving(paths: set[str], path: str) -> Iterator[None]:
    """The shared server answers ``path`` the way ``paths`` (one of its sets of odd paths) says, for a while."""
    paths.add(path)
    try:
        yield
    finally:
        paths.discard(path)


def _refused(url: str, reason: str, env: dict[str, str] | None = None, *args: str, within: float = 30) -> str:
    start = time.monotonic()
    result = run_cli("inspect", url, *args, env=env)
    elapsed = time.monotonic() - start
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"bncheck: error: {url}" in result.stderr and reason in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < within, elapsed
    return result.stderr


def test_a_missing_file_is_named(http: RangeServer) -> None:
    _refused(f"{http.url}/torch/missing.pt", "no such file, directory or checkpoint prefix")


def test_a_forbidden_file_says_access_denied(http: RangeServer) -> None:
    with _misbehaving(http.forbidden, "/torch/eval_mode.pt"):
        _refused(f"{http.url}/torch/eval_mode.pt", "access denied (HTTP 403")


def test_a_server_that_is_not_there_is_unreachable() -> None:
    _refused(f"http://127.0.0.1:{free_port()}/model.pt", "unreachable")


@pytest.mark.parametrize(
    ("misbehaviour", "path", "url"),
    [("stall", "/torch/eval_mode.pt", "torch/eval_mode.pt"), ("trickle", "/tf2_fit/ckpt-1.index", "tf2_fit/ckpt-1")],
)
def test_a_server_that_does_not_answer_or_trickles_times_out(
    http: RangeServer, tmp_path: Path, misbehaviour: str, path: str, url: str
) -> None:
    """No answer at all, or a byte every 0.2 s (which never trips a timeout between reads: a read's whole
    deadline does, timeout + 4 s per MiB): exit 2 within the timeout, not after the server gives up."""
    config = tmp_path / "bncheck.toml"
    config.write_text("[remote]\ntimeout = 1\n")
    with _misbehaving(getattr(http, misbehaviour), path):
        _refused(f"{http.url}/{url}", "no answer within 1 s", None, "--config", str(config), within=15)


def test_a_server_that_ignores_range_is_refused_unless_a_download_limit_allows(
    big_checkpoint: Path, tmp_path: Path
) -> None:
    """Reading the BN tensors would download the whole data file: refused; a download limit allows it."""
    disk = run_cli("inspect", str(big_checkpoint / "ckpt"), "--format", "json")
    config = tmp_path / "bncheck.toml"
    config.write_text("[remote]\ndownload-limit = 100_000_000\n")
    with range_server(big_checkpoint) as server:
        server.ignore_range = True
        _refused(f"{server.url}/ckpt", "the server ignores Range requests")
        status, report, stderr = _inspect(f"{server.url}/ckpt", f"{server.url}/", None, "--config", str(config))
        with pytest.raises(InputError, match="ignores Range"):  # the API too, and its Settings
            bncheck.inspect(f"{server.url}/ckpt")
        api = bncheck.inspect(f"{server.url}/ckpt", Settings(remote=Options(download_limit=100_000_000)))
    assert status == disk.returncode == 0, stderr
    assert report["files"][0]["layers"] == json.loads(disk.stdout)["files"][0]["layers"]
    assert [layer.name for layer in api.layers] == [layer["name"] for layer in report["files"][0]["layers"]]


def test_a_url_without_the_remote_extra_says_what_to_install() -> None:
    """As if fsspec were not installed: exit 2 naming the extra."""
    code = "import sys; sys.modules['fsspec'] = None; from bncheck.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "inspect", "s3://bucket/model.pt"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "s3://bucket/model.pt: reading s3:// URLs needs s3fs and fsspec: pip install 'bncheck[remote]'" in (
        result.stderr
    )


def test_s3_failures_name_the_url_and_never_the_credentials(s3: dict[str, str]) -> None:
    for url, reason, env in [
        (f"s3://{BUCKET}/fixtures/torch/missing.pt", "no such file", s3),
        ("s3://no-such-bucket/model.pt", "not found", s3),
        (f"s3://{BUCKET}/model.pt", "unreachable", {**s3, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}),
    ]:
        assert SECRET not in _refused(url, reason, env)


def test_remote_settings_are_checked(tmp_path: Path) -> None:
    for text, message in [
        ("[remote]\nretries = 3\n", "unknown key 'retries' in [tool.bncheck.remote]"),
        ("[remote]\ntimeout = -1\n", "remote timeout must be a number of seconds"),
        ("[remote.storage-options.ftp]\nhost = 'x'\n", "storage-options for unknown scheme 'ftp'"),
    ]:
        config = tmp_path / "bncheck.toml"
        config.write_text(text)
        result = run_cli("inspect", "fixtures/torch/eval_mode.pt", "--config", str(config))
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_storage_options_reach_the_store(s3: dict[str, str], tmp_path: Path) -> None:
    """The endpoint given in [tool.bncheck.remote.storage-options.s3], not in the environment."""
    env = {key: value for key, value in s3.items() if key != "AWS_ENDPOINT_URL"}
    config = tmp_path / "bncheck.toml"
    config.write_text(f"[remote.storage-options.s3]\nendpoint_url = '{s3['AWS_ENDPOINT_URL']}'\n")
    status, report, stderr = _inspect(
        f"s3://{BUCKET}/fixtures/torch/eval_mode.pt", f"s3://{BUCKET}/fixtures/", env, "--config", str(config)
    )
    assert (status, report) == _on_disk("torch/eval_mode.pt"), stderr


# --------------------------------------------------------------------------- scale out


def test_a_report_pickles(http: RangeServer) -> None:
    """No open file or closure inside: a report made from a URL crosses a process boundary whole."""
    for model in MODELS[:-1]:
        report = bncheck.inspect(f"{http.url}/{model}")
        copy = pickle.loads(pickle.dumps(report))
        assert copy.findings == report.findings and copy.notes == report.notes and copy.step == report.step
        assert [(layer.name, layer.stats) for layer in copy.layers] == [(la.name, la.stats) for la in report.layers]


def test_a_registry_scan_maps_on_a_dask_cluster(s3: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``client.map(bncheck.inspect, urls)`` on a LocalCluster of worker processes, credentials from the
    environment the workers inherit: the reports of the files on disk."""
    distributed = pytest.importorskip("distributed")
    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    models = ["torch/eval_mode.pt", "torch/healthy.safetensors", "keras/k3_fit/model.keras", "tf2_fit/ckpt-1"]
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        futures = client.map(bncheck.inspect, [f"s3://{BUCKET}/fixtures/{m}" for m in models], settings=Settings())
        reports = client.gather(futures)
    for model, report in zip(models, reports, strict=True):
        local = bncheck.inspect(str(FIXTURES / model))
        assert [(f.code, f.layer, f.message) for f in report.findings] == [
            (f.code, f.layer, f.message) for f in local.findings
        ]


_FORKED_BESIDE_THE_LOOP = """
import json, sys, threading
from bncheck.config import Settings
from bncheck.scanning import found_at, report_of, reports_of
from bncheck.supervisor import FSSPEC_LOOP, _context

settings = Settings()
models = found_at(sys.argv[1], settings)
loop = [thread.name == FSSPEC_LOOP for thread in threading.enumerate()]
alone = [(r.path, r.errors, r.findings) for r in (report_of(model, settings) for model in models)]
same = [[(r.path, r.errors, r.findings) for r in reports_of(models, settings, jobs=jobs)] == alone for jobs in (1, 2)]
print(json.dumps([len(models), loop, _context().get_start_method(), same]))
"""


def test_workers_are_forked_beside_fsspecs_event_loop(http: RangeServer) -> None:
    """A remote scan starts fsspec's event-loop thread; fsspec makes a new loop in a forked child, so the workers
    are still forked, not started fresh (which imports bncheck, numpy and aiohttp again: 0.3 s a run), and read
    as this process does."""
    result = subprocess.run(
        [sys.executable, "-c", _FORKED_BESIDE_THE_LOOP, f"{http.url}/keras"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    models, threads, method, same = json.loads(result.stdout)
    assert models > 3 and sorted(threads) == [False, True]  # this thread and fsspec's loop
    assert (method, same) == ("fork", [True, True])


def test_jobs_give_the_output_of_one_process() -> None:
    one = run_cli("inspect", "fixtures", "--format", "json")
    two = run_cli("inspect", "fixtures", "--format", "json", "--jobs", "2")
    assert (two.returncode, two.stdout) == (one.returncode, one.stdout)
    assert one.returncode == 1 and len(json.loads(one.stdout)["files"]) > 100


def _on_a_terminal(command: list[str], env: dict[str, str]) -> tuple[bytes, bytes]:
    """What ``command`` shows on stderr when that is a terminal (a pty), and its stdout."""
    import pty
    import tempfile

    controller, terminal = pty.openpty()
    with (
        tempfile.TemporaryFile() as stdout,
        subprocess.Popen(command, stdout=stdout, stderr=terminal, env=env, cwd=ROOT) as process,
    ):
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            shown += chunk
        process.wait(timeout=120)
        stdout.seek(0)
        out = stdout.read()
    os.close(controller)
    return shown, out


def test_a_long_scan_shows_progress_on_a_terminal_only(http: RangeServer) -> None:
    """Rich's progress bar on stderr when it is a terminal, not when piped, not under CI; for a remote model
    even alone, for local ones from 20 models."""
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env.update(NO_COLOR="1", COLUMNS="100")
    command = [sys.executable, "-m", "bncheck", "inspect", "fixtures/torch", "--format", "json"]
    shown, out = _on_a_terminal(command, env)
    assert b"inspecting 26 models" in shown
    assert json.loads(out)["summary"]["errors"] > 0  # the report itself is untouched, on stdout
    piped = subprocess.run(command, capture_output=True, env=env, cwd=ROOT, timeout=120)
    in_ci = subprocess.run(command, capture_output=True, env={**env, "CI": "true"}, cwd=ROOT, timeout=120)
    assert b"inspecting" not in piped.stderr and b"inspecting" not in in_ci.stderr
    remote, _ = _on_a_terminal([*command[:4], f"{http.url}/torch/eval_mode.pt"], env)
    local, _ = _on_a_terminal([*command[:4], "fixtures/torch/eval_mode.pt"], env)
    assert b"inspecting 1 model" in remote and b"1 models" not in remote and b"inspecting" not in local


# --------------------------------------------------------------------------- hostile and odd servers (a review's finds)


def test_a_shard_named_with_encoded_dots_is_refused(tmp_path: Path) -> None:
    """A URL decodes %2e%2e to '..': a shard so named would be read from outside the model's directory."""
    import shutil

    repo, private = tmp_path / "repo", tmp_path / "private"
    shutil.copytree(FIXTURES / "torch" / "sharded", private)
    repo.mkdir()
    index = json.loads((private / "model.safetensors.index.json").read_text())
    index["weight_map"] = {key: f"%2e%2e/private/{name}" for key, name in index["weight_map"].items()}
    (repo / "model.safetensors.index.json").write_text(json.dumps(index))
    with range_server(tmp_path) as server:
        stderr = _refused(f"{server.url}/repo/model.safetensors.index.json", "outside its directory: refused")
        assert not any("/private/" in line for line in server.traffic.paths), server.traffic.paths
    assert "%2e%2e" in stderr


def test_a_damaged_header_of_any_storage_is_refused_on_disk(tmp_path: Path) -> None:
    """On disk every storage's zip header is checked at once, as before remote reading made it lazy."""
    import zipfile

    damaged = tmp_path / "eval_mode.pt"
    data = bytearray((FIXTURES / "torch" / "eval_mode.pt").read_bytes())
    with zipfile.ZipFile(FIXTURES / "torch" / "eval_mode.pt") as archive:
        member = next(info for info in archive.infolist() if info.filename.endswith("/data/0"))
    data[member.header_offset : member.header_offset + 4] = b"XXXX"
    damaged.write_bytes(bytes(data))
    result = run_cli("inspect", str(damaged))
    assert result.returncode == 2 and "bad local file header" in result.stderr, result.stderr


def test_a_server_that_gives_no_size_is_refused(http: RangeServer) -> None:
    with _misbehaving(http.no_length, "/graphs/onnx/training_mode.onnx"):
        _refused(f"{http.url}/graphs/onnx/training_mode.onnx", "does not say the size of the file")


def test_a_url_with_credentials_is_refused_and_never_printed(http: RangeServer) -> None:
    host = http.url.removeprefix("http://")
    for url in (f"http://user:hunter2@{host}/torch/eval_mode.pt", f"{http.url}/torch/eval_mode.pt?Signature=hunter2"):
        for args in ((), ("--format", "json"), ("--format", "sarif")):
            result = run_cli("inspect", url, *args)
            assert result.returncode == 2 and "presigned URL?" in result.stderr
            assert "hunter2" not in result.stdout + result.stderr
        diff = run_cli("diff", url, "fixtures/torch/healthy.pt")
        assert diff.returncode == 2 and "hunter2" not in diff.stdout + diff.stderr


def test_threads_share_the_block_cache_safely(http: RangeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several threads of one process (a Dask worker's) read through one block cache, here made tiny."""
    from concurrent.futures import ThreadPoolExecutor

    from bncheck.readers import remote

    monkeypatch.setattr(remote, "CACHED_BLOCKS", 2)
    models = ["torch/eval_mode.pt", "keras/k3_fit/model.keras", "keras/tfk_fit/model.h5", "tf2_fit/ckpt-1"] * 4
    with ThreadPoolExecutor(8) as pool:
        reports = list(pool.map(lambda m: bncheck.inspect(f"{http.url}/{m}"), models))
    for model, report in zip(models, reports, strict=True):
        assert report.findings == bncheck.inspect(str(FIXTURES / model)).findings, model


def test_a_link_loop_on_a_server_ends(tmp_path: Path) -> None:
    import shutil

    shutil.copy(FIXTURES / "torch" / "eval_mode.pt", tmp_path)
    (tmp_path / "loop").symlink_to(tmp_path)
    with range_server(tmp_path) as server:
        result = run_cli("inspect", server.url, "--format", "json")
        requests = server.traffic.requests
    assert result.returncode == 1, result.stderr  # the model is inspected: BN002
    names = [file["path"] for file in json.loads(result.stdout)["files"]]
    assert names[0].endswith("/eval_mode.pt") and requests < 1000


def test_a_missing_file_beside_a_directory_without_pages_is_named(http: RangeServer) -> None:
    with _misbehaving(http.forbidden, "/torch"):  # a server without directory pages
        _refused(f"{http.url}/torch/missing.pt", "no such file, directory or checkpoint prefix")


def test_a_directory_with_a_space_is_scanned(tmp_path: Path) -> None:
    import shutil

    (tmp_path / "sp ace").mkdir()
    shutil.copy(FIXTURES / "torch" / "eval_mode.pt", tmp_path / "sp ace")
    with range_server(tmp_path) as server:
        result = run_cli("inspect", f"{server.url}/sp ace", "--format", "json")
    assert result.returncode == 1, result.stderr
    assert [f["path"].rsplit("/", 1)[1] for f in json.loads(result.stdout)["files"]] == ["eval_mode.pt"]


def test_a_copied_variable_still_reads_its_file() -> None:
    import copy

    report = bncheck.inspect(str(FIXTURES / "torch" / "eval_mode.pt"))
    variable = report.layers[0].variables["moving_mean"]
    assert (copy.copy(variable).load() == variable.load()).all()
    assert (copy.deepcopy(variable).load() == variable.load()).all()
    with pytest.raises(InputError, match="pickled"):
        pickle.loads(pickle.dumps(variable)).load()


def test_a_damaged_bn_tensor_is_reported_remotely_as_on_disk(tmp_path: Path) -> None:
    """A flipped byte in a BN tensor: the checksum error of the disk read, through the concurrent range reads."""
    import shutil

    from bncheck.readers.bundle import Bundle

    shutil.copytree(FIXTURES / "tf1_many_vars", tmp_path / "model")
    prefix = str(next((tmp_path / "model").glob("*.index")))[: -len(".index")]
    bundle = Bundle(prefix)
    name = next(n for n in bundle.names() if n.endswith("moving_mean") and "_7" in n)
    entry, shard = bundle._entry(name), bundle.shard_path(0)
    bundle.close()
    data = bytearray(Path(shard).read_bytes())
    data[entry.offset + 1] ^= 0xFF
    Path(shard).write_bytes(bytes(data))
    disk = run_cli("inspect", str(tmp_path / "model"), "--format", "json")
    with range_server(tmp_path) as server:
        status, report, stderr = _inspect(f"{server.url}/model", f"{server.url}/")
    expected = json.loads(disk.stdout.replace(f"{tmp_path}/", "fixtures/"))
    assert status == disk.returncode == 2 and "checksum mismatch" in stderr
    assert report["files"][0]["errors"] == expected["files"][0]["errors"]


@pytest.mark.parametrize("name", ["ckpt.keras", "ckpt.weights.h5", "torch.pt", "torch.safetensors"])
def test_the_other_formats_are_read_by_range_too(big_checkpoint: Path, name: str) -> None:
    """A zip's central directory and members, HDF5 through a file-like object, a safetensors header: only the
    parts the BN tensors need, a few percent of a 14 MB file."""
    disk = run_cli("inspect", str(big_checkpoint / name), "--format", "json")
    with range_server(big_checkpoint) as server:
        status, report, stderr = _inspect(f"{server.url}/{name}", f"{server.url}/")
        sent = server.traffic.bytes
    assert status == disk.returncode, stderr
    assert report["files"][0]["layers"] == json.loads(disk.stdout)["files"][0]["layers"]
    assert len(report["files"][0]["layers"]) == 6
    assert sent < 0.05 * (big_checkpoint / name).stat().st_size, sent
