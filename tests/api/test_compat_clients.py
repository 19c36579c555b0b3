"""Real remove.bg clients against a running ClearBG: the PyPI packages ``removebg`` and
``remove-bg`` (each in a throw-away venv, pointed at the server by changing its endpoint
constant in a small driver script, their files untouched), and remove.bg's documented curl and
Python (requests) examples with only the base URL changed."""

from __future__ import annotations

import io
import subprocess
import venv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from clearbg.engine import Engine
from tests.api.conftest import Server, start_server
from tests.conftest import PHOTOS

pytestmark = pytest.mark.slow

PHOTO = PHOTOS / "car-1.jpg"

# brilam/remove-bg 0.4: ``removebg.removebg.API_ENDPOINT`` is the whole URL
REMOVEBG = """
import base64, sys
import removebg.removebg as module
module.API_ENDPOINT = sys.argv[1] + "/v1.0/removebg"
from removebg import RemoveBg
client = RemoveBg(sys.argv[2], sys.argv[4] + "/error.log")
client.remove_background_from_img_file(sys.argv[3])
with open(sys.argv[3], "rb") as f:
    b64 = base64.b64encode(f.read()).decode()
client.remove_background_from_base64_img(b64, new_file_name=sys.argv[4] + "/from-b64.png")
"""

# remove-bg 0.2.1: ``removebg.constants.API_ENDPOINT`` is the base of every API call. The
# package imports ``Callable`` from ``collections`` (gone in Python 3.10): put it back first.
REMOVE_BG = """
import collections, collections.abc, sys
collections.Callable = collections.abc.Callable
import removebg.constants as constants
constants.API_ENDPOINT = sys.argv[1] + "/v1.0/"
from removebg import RemoveBg
from removebg.exceptions import AuthenticationFailed
data = RemoveBg(api_token=sys.argv[2]).remove_background_from_file(sys.argv[3], size="auto")
with open(sys.argv[4] + "/remove-bg.png", "wb") as out:
    out.write(data)
try:
    RemoveBg(api_token="cbg_wrong").remove_background_from_file(sys.argv[3])
except AuthenticationFailed as exc:
    print("AuthenticationFailed:", exc)
"""


def client_venv(root: Path, package: str) -> Path:
    """A venv holding ``package`` from the registry; its python."""
    home = root / package
    python = home / "bin" / "python"
    if not python.exists():
        venv.create(home, with_pip=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", package],
            check=True,
            timeout=600,
        )
    return python


def drive(python: Path, script: str, *args: str) -> str:
    done = subprocess.run(
        [str(python), "-c", script, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_cutout(path: Path) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG"
        alpha = np.asarray(im.convert("RGBA"))[:, :, 3]
    assert (alpha == 0).mean() > 0.05  # background removed
    assert (alpha == 255).mean() > 0.05  # a subject kept


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("client-venvs")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, api_engine: Engine) -> Iterator[Server]:
    server, stop = start_server(tmp_path_factory.mktemp("clients"), api_engine)
    yield server
    stop()


def test_pypi_removebg(srv: Server, venvs: Path, tmp_path: Path) -> None:
    key = srv.make_key(credits_=5)
    photo = tmp_path / "car.jpg"
    photo.write_bytes(PHOTO.read_bytes())
    drive(client_venv(venvs, "removebg"), REMOVEBG, srv.url, key, str(photo), str(tmp_path))
    assert_cutout(tmp_path / "car.jpg_no_bg.png")
    assert_cutout(tmp_path / "from-b64.png")
    assert srv.balance(key) == 4.5  # two previews ("regular")


def test_pypi_remove_bg(srv: Server, venvs: Path, tmp_path: Path) -> None:
    key = srv.make_key(credits_=5)
    python = client_venv(venvs, "remove-bg")
    out = drive(python, REMOVE_BG, srv.url, key, str(PHOTO), str(tmp_path))
    assert_cutout(tmp_path / "remove-bg.png")
    assert "AuthenticationFailed:" in out
    assert srv.balance(key) == 4  # "auto": full size


def test_documented_curl_example(srv: Server, tmp_path: Path) -> None:
    key = srv.make_key()
    out = tmp_path / "no-bg.png"
    subprocess.run(
        [
            "curl",
            "-s",
            "-H",
            f"X-API-Key: {key}",
            "-F",
            f"image_file=@{PHOTO}",
            "-F",
            "size=auto",
            "-f",
            f"{srv.url}/v1.0/removebg",
            "-o",
            str(out),
        ],
        check=True,
        timeout=120,
    )
    assert_cutout(out)


def test_documented_python_example(srv: Server, tmp_path: Path) -> None:
    key = srv.make_key()
    with PHOTO.open("rb") as photo:
        response = requests.post(
            f"{srv.url}/v1.0/removebg",
            files={"image_file": photo},
            data={"size": "auto"},
            headers={"X-Api-Key": key},
            timeout=120,
        )
    assert response.status_code == requests.codes.ok, response.text
    (tmp_path / "no-bg.png").write_bytes(response.content)
    assert_cutout(tmp_path / "no-bg.png")
    with Image.open(io.BytesIO(response.content)) as im, Image.open(PHOTO) as src:
        assert im.size == src.size  # auto: the photo's own size
