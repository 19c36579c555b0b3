"""The model cache: missing, corrupt, registered and downloaded models, with real files and HTTP."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clearbg.engine import Engine, RemoveOptions
from clearbg.engine.models import MODELS, ModelSpec, ModelStore, UrlSource
from clearbg.errors import (
    InvalidOptionError,
    ModelChecksumError,
    ModelDownloadError,
    ModelLoadError,
    ModelMissingError,
    UnknownModelError,
)
from clearbg.settings import EngineSettings
from tests.conftest import PHOTOS

U2NETP = MODELS["u2netp"]


@pytest.fixture(scope="session")
def u2netp_file(engine_settings: EngineSettings) -> Path:
    """The real u2netp weights in the user's cache (read only)."""
    path = ModelStore.from_settings(engine_settings).ensure("u2netp")
    assert path.stat().st_size == U2NETP.size
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.part")) if folder.exists() else []


# -- missing and corrupt -----------------------------------------------------------------------


def test_a_missing_model_says_how_to_get_it(model_dir: Path) -> None:
    store = ModelStore(model_dir)
    assert not store.state(U2NETP).present
    with pytest.raises(ModelMissingError, match="clearbg models pull u2netp") as info:
        store.ensure("u2netp")
    assert (info.value.status, info.value.code, info.value.exit_code) == (503, "model_missing", 4)


def test_the_engine_refuses_a_photo_when_its_model_is_missing(
    engine_settings: EngineSettings, model_dir: Path
) -> None:
    engine = Engine(engine_settings.model_copy(update={"model_dir": model_dir}))
    try:
        with pytest.raises(ModelMissingError):
            engine.remove((PHOTOS / "car-1.jpg").read_bytes(), RemoveOptions(model="u2netp"))
    finally:
        engine.close()


def test_an_unknown_model_name_lists_the_known_ones(engine: Engine, photo_bytes: bytes) -> None:
    with pytest.raises(UnknownModelError, match="u2netp") as info:
        engine.remove(photo_bytes, RemoveOptions(model="u3net"))
    assert (info.value.status, info.value.code, info.value.exit_code) == (400, "unknown_model", 3)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_a_corrupt_model_file_is_refused_before_loading(
    u2netp_file: Path, model_dir: Path, damage: str
) -> None:
    model_dir.mkdir()
    target = model_dir / "u2netp.onnx"
    data = bytearray(u2netp_file.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        del data[len(data) // 2 :]
    else:
        data.clear()
    target.write_bytes(bytes(data))
    store = ModelStore(model_dir)
    with pytest.raises(ModelChecksumError, match="expected 309c8469258d") as info:
        store.ensure("u2netp")
    assert info.value.code == "model_corrupt"
    with pytest.raises(ModelChecksumError):
        store.verify("u2netp")
    assert not store.state(U2NETP).verified


def test_a_file_changed_after_its_check_is_hashed_again(u2netp_file: Path, model_dir: Path) -> None:
    model_dir.mkdir()
    target = model_dir / "u2netp.onnx"
    shutil.copyfile(u2netp_file, target)
    store = ModelStore(model_dir)
    assert store.ensure("u2netp") == target
    assert store.state(U2NETP).verified
    with target.open("r+b") as f:  # same size, new mtime
        f.seek(1000)
        f.write(b"\0" * 16)
    assert not store.state(U2NETP).verified
    with pytest.raises(ModelChecksumError):
        store.ensure("u2netp")


# -- the user's own models ---------------------------------------------------------------------


def test_register_a_users_own_onnx_file_and_use_it(
    engine_settings: EngineSettings, u2netp_file: Path, model_dir: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "my-weights.onnx"
    shutil.copyfile(u2netp_file, mine)
    spec = ModelStore(model_dir).register("my-model", "u2net", mine)
    assert (spec.name, spec.family, spec.user) == ("my-model", "u2net", True)
    assert (spec.sha256, spec.size) == (U2NETP.sha256, U2NETP.size)
    assert spec.input_name == "input.1"
    assert (model_dir / "my-model.onnx").is_file()
    assert stat.S_IMODE((model_dir / "my-model.onnx").stat().st_mode) == 0o644
    assert leftovers(model_dir) == []

    # a new store (another process) finds it in the registry file
    again = ModelStore(model_dir)
    assert again.spec("my-model") == spec
    assert "my-model" in [s.name for s in again.specs()]
    assert again.verify("my-model") == model_dir / "my-model.onnx"

    # the same weights under another name give the same mask as u2netp
    engine = Engine(engine_settings.model_copy(update={"model_dir": model_dir}))
    try:
        rgb = np.asarray(Image.open(PHOTOS / "car-1.jpg").convert("RGB").resize((320, 320)))
        mask, _ = engine.session("my-model").predict(rgb)
    finally:
        engine.close()
    shutil.copyfile(u2netp_file, model_dir / "u2netp.onnx")
    reference = Engine(engine_settings.model_copy(update={"model_dir": model_dir}))
    try:
        expected, _ = reference.session("u2netp").predict(rgb)
    finally:
        reference.close()
    assert np.allclose(mask, expected, atol=1e-5)


@pytest.mark.parametrize(
    "registry",
    [
        "{not json",
        '{"a": "dict"}',
        '["a string"]',
        '[{"name": "nosum", "family": "u2net", "size": 1}]',
        '[{"name": "../../etc/evil", "family": "u2net", "sha256": "00", "size": 1}]',
        '[{"name": "big", "family": "u2net", "sha256": "00", "size": "huge"}]',
    ],
)
def test_a_damaged_user_registry_is_skipped_not_fatal(model_dir: Path, registry: str) -> None:
    model_dir.mkdir()
    good = {"name": "good", "family": "u2net", "sha256": "ab" * 32, "size": 5}
    rows = json.loads(registry) if registry.startswith("[") else None
    text = json.dumps([*rows, good]) if rows is not None else registry
    (model_dir / "user-models.json").write_text(text)
    store = ModelStore(model_dir)
    names = [s.name for s in store.specs()]
    assert names[: len(MODELS)] == list(MODELS)
    assert names[len(MODELS) :] == (["good"] if rows is not None else [])


@pytest.mark.parametrize(
    ("name", "family", "option"),
    [
        ("u2netp", "u2net", "name"),  # a built-in name
        ("mine", "yolo", "family"),
        ("../escape", "u2net", "name"),
        ("a/b", "u2net", "name"),
        ("", "u2net", "name"),
    ],
)
def test_register_refuses_bad_names_and_families(
    u2netp_file: Path, model_dir: Path, name: str, family: str, option: str
) -> None:
    with pytest.raises(InvalidOptionError) as info:
        ModelStore(model_dir).register(name, family, u2netp_file)
    assert info.value.option == option
    assert not (model_dir.parent / "escape.onnx").exists()


def test_register_refuses_a_missing_file(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="not a file"):
        ModelStore(model_dir).register("mine", "u2net", tmp_path / "nowhere.onnx")


def test_register_refuses_a_file_that_is_not_onnx_and_leaves_nothing(
    model_dir: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model at all" * 100)
    store = ModelStore(model_dir)
    with pytest.raises(ModelLoadError):
        store.register("junk", "u2net", junk)
    assert sorted(p.name for p in model_dir.iterdir()) == []
    with pytest.raises(UnknownModelError):
        ModelStore(model_dir).spec("junk")


# -- pulling -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves /good (the weights), /wrong (other bytes) and /cut (drops half way)."""

    weights = b""

    def do_GET(self) -> None:
        body = {"/good": self.weights, "/wrong": b"x" * 1000, "/cut": self.weights}.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/cut":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(u2netp_file: Path) -> Iterator[str]:
    _Files.weights = u2netp_file.read_bytes()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def remote_spec(*urls: str) -> ModelSpec:
    return ModelSpec(
        name="remote",
        family="u2net",
        sha256=U2NETP.sha256,
        size=U2NETP.size,
        licence="Apache-2.0",
        description="u2netp over HTTP",
        sources=tuple(UrlSource(u) for u in urls),
    )


def test_pull_from_a_dead_port_fails_and_leaves_no_partial_file(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}/u2netp.onnx"
    monkeypatch.setitem(MODELS, "remote", remote_spec(url))
    store = ModelStore(model_dir)
    messages: list[str] = []
    with pytest.raises(ModelDownloadError, match=r"127\.0\.0\.1") as info:
        store.pull("remote", progress=messages.append)
    assert (info.value.status, info.value.code, info.value.exit_code) == (
        503,
        "model_download_failed",
        4,
    )
    assert messages == [f"remote: fetching {url}"]
    assert leftovers(model_dir) == []
    assert not (model_dir / "remote.onnx").exists()


@pytest.mark.parametrize("bad", ["/wrong", "/cut", "/missing"])
def test_pull_moves_on_from_a_bad_source_to_a_good_one(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, server: str, bad: str
) -> None:
    monkeypatch.setitem(MODELS, "remote", remote_spec(server + bad, server + "/good"))
    store = ModelStore(model_dir)
    path = store.pull("remote")
    assert path == model_dir / "remote.onnx"
    assert path.stat().st_size == U2NETP.size
    assert store.state(store.spec("remote")).verified
    # readable by the service's user, not only by whoever pulled it
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert leftovers(model_dir) == []


@pytest.mark.parametrize("bad", ["/wrong", "/cut", "/missing"])
def test_pull_with_only_bad_sources_fails_atomically(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, server: str, bad: str
) -> None:
    monkeypatch.setitem(MODELS, "remote", remote_spec(server + bad))
    with pytest.raises(ModelDownloadError):
        ModelStore(model_dir).pull("remote")
    assert sorted(p.name for p in model_dir.iterdir()) == []


def test_pull_replaces_a_corrupt_cached_file(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    monkeypatch.setitem(MODELS, "remote", remote_spec(server + "/good"))
    model_dir.mkdir()
    (model_dir / "remote.onnx").write_bytes(b"garbage")
    messages: list[str] = []
    ModelStore(model_dir).pull("remote", progress=messages.append)
    assert messages[0] == "remote: cached file is corrupt, fetching again"
    assert ModelStore(model_dir).verify("remote").stat().st_size == U2NETP.size
