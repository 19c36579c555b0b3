"""The ``clearbg`` command line, run for real: the console script in a subprocess, or click's
runner in-process where stdin and stdout bytes are easier to handle. Always ``-m u2netp``."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from clearbg.cli import main
from clearbg.engine.models import ModelStore
from clearbg.settings import EngineSettings
from tests.conftest import PHOTOS

CLEARBG = Path(sys.executable).with_name("clearbg")


@pytest.fixture(scope="module")
def env(engine_settings: EngineSettings) -> dict[str, str]:
    """The environment of a user whose model cache holds u2netp."""
    return {"CLEARBG_ENGINE__MODEL_DIR": str(engine_settings.model_dir)}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder with two small photos (JPEG and PNG) made from the shared ones."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(PHOTOS / "car-1.jpg").resize((160, 120)).save(folder / "car.jpg", quality=90)
    Image.open(PHOTOS / "girl-1.jpg").resize((150, 100)).save(folder / "girl.png")
    return folder


def run(args: Sequence[str], env: Mapping[str, str], stdin: bytes = b"") -> Result:
    result = CliRunner().invoke(main, list(args), env=dict(env), input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def script(
    args: Sequence[str], env: Mapping[str, str], stdin: bytes = b"", cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The installed console script, as a user runs it."""
    return subprocess.run(
        [str(CLEARBG), *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, **env},
        cwd=cwd,
        timeout=120,
        check=False,
    )


def image(data_or_path: bytes | Path) -> Image.Image:
    if isinstance(data_or_path, Path):
        data_or_path = data_or_path.read_bytes()
    im = Image.open(io.BytesIO(data_or_path))
    im.load()
    return im


# -- help --------------------------------------------------------------------------------------


def test_help_lists_the_commands(env: dict[str, str]) -> None:
    proc = script(["--help"], env)
    assert proc.returncode == 0
    out = proc.stdout.decode()
    for command in ("remove", "models"):
        assert f"  {command} " in out
    assert "Remove the background of photos." in out
    assert script(["--version"], env).stdout.decode().startswith("clearbg, version ")
    remove_help = run(["remove", "--help"], env)
    assert remove_help.exit_code == 0
    for option in ("--output", "--model", "--size", "--format", "--bg-color", "--crop-margin"):
        assert option in remove_help.output


# -- inputs and outputs ------------------------------------------------------------------------


def test_one_file_is_written_beside_it(env: dict[str, str], photos: Path) -> None:
    proc = script(["remove", "car.jpg", "-m", "u2netp"], env, cwd=photos)
    assert proc.returncode == 0, proc.stderr.decode()
    out = image(photos / "car-nobg.png")
    assert (out.format, out.mode, out.size) == ("PNG", "RGBA", (160, 120))
    # the user's usual permissions, like any file they make (not a private temp file's 0600)
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((photos / "car-nobg.png").stat().st_mode) == 0o666 & ~umask
    assert sorted(p.name for p in photos.iterdir()) == ["car-nobg.png", "car.jpg", "girl.png"]
    alpha = out.getchannel("A")
    assert alpha.getpixel((0, 0)) == 0  # the background is gone
    assert alpha.getpixel((80, 70)) == pytest.approx(255, abs=5)  # the car is kept


def test_stdin_to_stdout(env: dict[str, str], photos: Path) -> None:
    proc = script(
        ["remove", "-", "-m", "u2netp", "-f", "jpg"], env, (photos / "car.jpg").read_bytes()
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out = image(proc.stdout)
    assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (160, 120))
    corner = out.getpixel((0, 0))
    assert isinstance(corner, tuple)
    assert min(corner) >= 245  # JPEG's background is white


def test_the_output_files_extension_chooses_the_format(env: dict[str, str], photos: Path) -> None:
    out = photos / "cut.JPG"
    result = run(["remove", str(photos / "car.jpg"), "-o", str(out), "-m", "u2netp"], env)
    assert result.exit_code == 0, result.output
    assert (image(out).format, image(out).mode) == ("JPEG", "RGB")


def test_options_are_passed_through_to_the_engine(
    env: dict[str, str], photos: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = run(
        [
            "remove",
            str(photos / "car.jpg"),
            "-o",
            str(out_dir),  # an existing folder: <stem>.<format> in it
            "-m",
            "u2netp",
            "-f",
            "webp",
            "-b",
            "#00ff0080",
            "--crop",
            "--crop-margin",
            "4px",
            "--no-refine",
            "--no-foreground",
        ],
        env,
    )
    assert result.exit_code == 0, result.output
    out = image(out_dir / "car.webp")
    assert (out.format, out.mode) == ("WEBP", "RGBA")
    assert out.width < 160 and out.height < 120  # cropped to the car
    corner = out.getpixel((0, 0))  # the margin is the translucent green background
    assert isinstance(corner, tuple)
    r, g, b, a = corner
    assert g > 200 and r < 40 and b < 40 and 110 <= a <= 145


def test_channels_alpha_and_size(env: dict[str, str], tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.open(PHOTOS / "car-1.jpg").resize((1600, 1200)).save(big)
    asks = ["--channels", "alpha", "-s", "720p", "--no-refine"]
    result = run(["remove", str(big), "-o", str(tmp_path / "mask.png"), "-m", "u2netp", *asks], env)
    assert result.exit_code == 0, result.output
    out = image(tmp_path / "mask.png")
    assert (out.mode, out.size) == ("L", (960, 720))


def test_several_files_go_to_a_folder_and_a_bad_one_does_not_stop_the_others(
    env: dict[str, str], photos: Path, tmp_path: Path
) -> None:
    bad = photos / "notes.jpg"
    bad.write_text("not a photo")
    out_dir = tmp_path / "results"
    inputs = [str(photos / "car.jpg"), str(bad), str(photos / "girl.png")]
    result = run(["remove", *inputs, "-o", str(out_dir), "-m", "u2netp", "-q"], env)
    assert result.exit_code == 3
    assert sorted(p.name for p in out_dir.iterdir()) == ["car.png", "girl.png"]
    assert image(out_dir / "girl.png").size == (150, 100)
    assert "notes.jpg" in result.stderr and "not_an_image" in result.stderr


def test_a_folder_takes_its_images_and_names_never_clash(
    env: dict[str, str], photos: Path, tmp_path: Path
) -> None:
    (photos / "girl.png").rename(photos / "car.png")  # the same stem as car.jpg
    (photos / "readme.txt").write_text("skip me")
    (photos / "._car.jpg").write_bytes(b"\0\5\26\7 macOS AppleDouble, not a photo")
    out_dir = tmp_path / "out"
    result = run(["remove", str(photos), "-o", str(out_dir), "-m", "u2netp"], env)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # the progress bar goes to stderr
    assert "2/2" in result.stderr
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["car-2.png", "car.png"]
    sizes = {image(out_dir / n).size for n in ("car.png", "car-2.png")}
    assert sizes == {(160, 120), (150, 100)}  # both cars were kept, neither overwritten


def test_a_glob_pattern(env: dict[str, str], photos: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    result = run(["remove", str(photos / "*.png"), "-o", str(out_dir), "-m", "u2netp"], env)
    assert result.exit_code == 0, result.output
    assert [p.name for p in out_dir.iterdir()] == ["girl.png"]


# -- exit codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{photos}/missing.jpg"], "no such file"),
        (["{photos}/car.jpg", "{photos}/girl.png"], "give -o FOLDER"),
        (["{photos}/car.jpg", "-", "-o", "{photos}/out"], "can only be the only input"),
        (["{photos}/car.jpg", "-f", "gif"], "'gif' is not one of"),
        (["{photos}/car.jpg", "-s", "8k"], "'8k' is not one of"),
        (["{photos}/*.bmp", "-o", "{photos}/out"], "no images found"),
        ([], "Missing argument"),
    ],
)
def test_usage_errors_exit_2(
    env: dict[str, str], photos: Path, args: list[str], message: str
) -> None:
    result = run(["remove", *(a.format(photos=photos) for a in args), "-m", "u2netp"], env)
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    ("extra", "data", "code"),
    [
        ([], b"", "empty_image"),
        ([], b"%PDF-1.4 not really", "not_an_image"),
        (["-b", "blurple"], None, "invalid_option"),
        (["--crop-margin", "-3"], None, "invalid_option"),
        (["-m", "u9net"], None, "unknown_model"),
    ],
)
def test_bad_input_exits_3(
    env: dict[str, str], photos: Path, extra: list[str], data: bytes | None, code: str
) -> None:
    target = photos / "car.jpg"
    if data is not None:
        target.write_bytes(data)
    result = run(["remove", str(target), "-o", str(photos / "x.png"), "-m", "u2netp", *extra], env)
    assert result.exit_code == 3
    assert f"[{code}]" in result.stderr
    assert not (photos / "x.png").exists()


def test_a_missing_model_exits_4(photos: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    proc = script(
        ["remove", "car.jpg", "-m", "u2netp"], {"CLEARBG_ENGINE__MODEL_DIR": str(empty)}, cwd=photos
    )
    assert proc.returncode == 4
    assert "clearbg models pull u2netp" in proc.stderr.decode()
    assert not (photos / "car-nobg.png").exists()


def test_an_unwritable_output_exits_5(env: dict[str, str], photos: Path) -> None:
    blocker = photos / "file"
    blocker.write_text("a file, not a folder")
    result = run(
        ["remove", str(photos / "car.jpg"), "-o", str(blocker / "out.png"), "-m", "u2netp"], env
    )
    assert result.exit_code == 5
    assert "[output_failed]" in result.stderr


def test_a_result_that_cannot_replace_its_target_leaves_no_temporary_file(
    env: dict[str, str], photos: Path, tmp_path: Path
) -> None:
    (photos / "girl.png").unlink()  # the folder holds car.jpg only
    out_dir = tmp_path / "out"
    (out_dir / "car.png").mkdir(parents=True)  # a folder where car's result should go
    result = run(["remove", str(photos), "-o", str(out_dir), "-m", "u2netp", "-q"], env)
    assert result.exit_code == 5
    assert "[output_failed]" in result.stderr
    assert [p.name for p in out_dir.iterdir()] == ["car.png"]
    assert (out_dir / "car.png").is_dir()


# -- models ------------------------------------------------------------------------------------


@pytest.fixture
def model_env(engine_settings: EngineSettings, tmp_path: Path) -> dict[str, str]:
    """A model cache of its own holding a copy of u2netp."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copyfile(engine_settings.model_dir / "u2netp.onnx", folder / "u2netp.onnx")
    return {"CLEARBG_ENGINE__MODEL_DIR": str(folder)}


def test_models_list_shows_every_model_and_its_state(model_env: dict[str, str]) -> None:
    result = run(["models", "list"], model_env)
    assert result.exit_code == 0
    lines = {line.split()[1]: line for line in result.output.splitlines() if "│" in line[:3]}
    assert set(lines) >= {"u2netp", "u2net", "isnet", "isnet-quint8"}
    assert "downloaded" in lines["u2netp"]
    assert "downloaded" not in lines["u2net"] and "verified" not in lines["u2net"]
    assert f"cache: {model_env['CLEARBG_ENGINE__MODEL_DIR']}" in result.output


def test_models_verify_checks_the_files(
    model_env: dict[str, str], engine_settings: EngineSettings
) -> None:
    ok = run(["models", "verify"], model_env)
    assert (ok.exit_code, ok.output) == (0, "u2netp: ok\n")
    listed = run(["models", "list"], model_env)
    assert "verified" in next(line for line in listed.output.splitlines() if "u2netp" in line)

    path = Path(model_env["CLEARBG_ENGINE__MODEL_DIR"]) / "u2netp.onnx"
    with path.open("r+b") as f:
        f.seek(2000)
        f.write(b"\xff" * 8)
    bad = run(["models", "verify", "u2netp"], model_env)
    assert bad.exit_code == 4
    assert "[model_corrupt]" in bad.stderr

    # one corrupt model does not stop the others from being checked
    own = Path(model_env["CLEARBG_ENGINE__MODEL_DIR"]).parent / "own.onnx"
    shutil.copyfile(engine_settings.model_dir / "u2netp.onnx", own)
    assert run(["models", "add", "mine", str(own), "--family", "u2net"], model_env).exit_code == 0
    both = run(["models", "verify"], model_env)
    assert both.exit_code == 4
    assert both.stdout == "mine: ok\n"
    assert both.stderr.startswith("u2netp: [model_corrupt]")

    missing = run(["models", "verify", "u2net"], model_env)
    assert missing.exit_code == 4
    assert "[model_missing]" in missing.stderr
    unknown = run(["models", "verify", "nope"], model_env)
    assert unknown.exit_code == 3


def test_models_pull_of_a_cached_model_only_verifies_it(model_env: dict[str, str]) -> None:
    result = run(["models", "pull", "u2netp"], model_env)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("u2netp: ")
    assert result.stdout.strip().endswith("u2netp.onnx")


def test_models_add_registers_a_users_file_and_remove_uses_it(
    model_env: dict[str, str], photos: Path, tmp_path: Path
) -> None:
    own = tmp_path / "my-net.onnx"
    shutil.copyfile(Path(model_env["CLEARBG_ENGINE__MODEL_DIR"]) / "u2netp.onnx", own)
    added = run(["models", "add", "mine", str(own), "--family", "u2net"], model_env)
    assert added.exit_code == 0, added.output
    assert added.output.startswith("mine: registered (u2net, sha256 309c8469258d")
    assert "mine" in run(["models", "list"], model_env).output
    assert run(["models", "verify", "mine"], model_env).output == "mine: ok\n"

    again = run(["models", "add", "u2netp", str(own), "--family", "u2net"], model_env)
    assert again.exit_code == 3 and "built-in" in again.stderr
    family = run(["models", "add", "x", str(own), "--family", "yolo"], model_env)
    assert family.exit_code == 2
    companion = ["--family", "u2net", "--companion", "u2netp"]
    assert run(["models", "add", "theirs", str(own), *companion], model_env).exit_code == 0
    folder = Path(model_env["CLEARBG_ENGINE__MODEL_DIR"])
    assert ModelStore(folder).spec("theirs").companion == "u2netp"
    bad = run(["models", "add", "x", str(own), "--family", "u2net", "--companion", "no"], model_env)
    assert bad.exit_code == 3 and "companion" in bad.stderr
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a network" * 50)
    not_onnx = run(["models", "add", "junk", str(junk), "--family", "u2net"], model_env)
    assert not_onnx.exit_code == 4
    assert "[model_load_failed]" in not_onnx.stderr

    out = photos / "mine.png"
    result = run(["remove", str(photos / "car.jpg"), "-o", str(out), "-m", "mine"], model_env)
    assert result.exit_code == 0, result.output
    assert image(out).size == (160, 120)

    # a registered model has no source to pull it from again
    (Path(model_env["CLEARBG_ENGINE__MODEL_DIR"]) / "mine.onnx").unlink()
    pulled = run(["models", "pull", "mine"], model_env)
    assert pulled.exit_code == 4
    assert "[model_missing]" in pulled.stderr and "register" in pulled.stderr
