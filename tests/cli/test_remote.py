"""``clearbg remove --server URL --api-key KEY``: the console script in a subprocess sends the
photos to a real server on 127.0.0.1 (one call, or a bulk job with a progress bar for a folder);
its own model cache is empty, so nothing runs locally."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from clearbg.engine import Engine
from tests.api.conftest import Server, start_server
from tests.conftest import PHOTOS

CLEARBG = Path(sys.executable).with_name("clearbg")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[Server]:
    server, stop = start_server(tmp_path_factory.mktemp("remote"), engine)
    yield server
    stop()


@pytest.fixture
def laptop(tmp_path: Path) -> dict[str, str]:
    """The environment of a machine without any model."""
    empty = tmp_path / "no-models"
    empty.mkdir()
    return {"CLEARBG_ENGINE__MODEL_DIR": str(empty), "PATH": "/usr/bin:/bin"}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLEARBG), "remove", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def small(folder: Path, name: str, width: int = 160) -> Path:
    with Image.open(PHOTOS / name) as im:
        path = folder / name
        im.resize((width, width * im.height // im.width)).save(path)
    return path


def test_one_photo_through_the_server(srv: Server, laptop: dict[str, str], tmp_path: Path) -> None:
    key = srv.make_key(credits_=5)
    photo = small(tmp_path, "car-1.jpg")
    out = tmp_path / "car.webp"
    done = run([str(photo), "-o", str(out), "--server", srv.url, "--api-key", key], laptop)
    assert done.returncode == 0, done.stderr
    with Image.open(out) as im:
        assert im.format == "WEBP"
    assert srv.balance(key) == 4


def test_a_folder_is_a_bulk_job_with_a_bad_file_reported(
    srv: Server, laptop: dict[str, str], tmp_path: Path
) -> None:
    key = srv.make_key(credits_=5)
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("car-1.jpg", "girl-1.jpg", "animal-1.jpg"):
        small(folder, name)
    (folder / "broken.jpg").write_bytes(b"not a photo")
    out = tmp_path / "out"
    done = run(
        [str(folder), "-o", str(out), "-s", "preview", "--server", srv.url, "--api-key", key],
        laptop,
    )
    assert done.returncode == 3, done.stderr  # the broken one: bad input
    assert sorted(p.name for p in out.iterdir()) == ["animal-1.png", "car-1.png", "girl-1.png"]
    assert "broken.jpg" in done.stderr
    assert "removing backgrounds on the server" in done.stderr
    assert srv.balance(key) == 5 - 3 * 0.25


def test_typed_errors_and_usage(srv: Server, laptop: dict[str, str], tmp_path: Path) -> None:
    photo = small(tmp_path, "car-1.jpg")
    short = run([str(photo), "--server", srv.url, "--api-key", srv.make_key(credits_=0)], laptop)
    assert short.returncode == 1
    assert "insufficient_credits" in short.stderr
    assert run([str(photo), "--server", srv.url], laptop).returncode == 2
    flip = run([str(photo), "--server", srv.url, "--api-key", "k", "--flip"], laptop)
    assert flip.returncode == 2
    assert "--flip" in flip.stderr
