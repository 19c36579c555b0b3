"""The samples of ../shared/spec/ai-api.txt, run verbatim but for the URL, the key and the
photo's path: curl, Python requests, and Node.js fetch with this machine's node."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.api.conftest import Server
from tests.conftest import DATA, PHOTOS

SPEC = (DATA.parent / "spec" / "ai-api.txt").read_text()
SPEC_URL = "https://api.clearbg.ai/v1/removebg"


def _section(start: str, end: str) -> str:
    return SPEC[SPEC.index(start) : SPEC.index(end, SPEC.index(start))]


def _assert_cutout(path: Path) -> None:
    im = Image.open(io.BytesIO(path.read_bytes()))
    assert im.format == "PNG" and im.mode == "RGBA"


def test_curl_sample(server: Server, tmp_path: Path) -> None:
    line = next(ln for ln in SPEC.splitlines() if ln.startswith("curl -X POST") and "-F" in ln)
    command = (
        line.replace(" \\ ", " ")
        .replace(SPEC_URL, server.url + "/v1/removebg")
        .replace("YOUR_API_KEY", server.make_key())
        .replace("/path/to/your/image.jpg", str(PHOTOS / "car-1.jpg"))
    )
    subprocess.run(command, shell=True, cwd=tmp_path, check=True, capture_output=True)
    _assert_cutout(tmp_path / "result.png")


def test_python_requests_sample(server: Server, tmp_path: Path) -> None:
    code = _indent_python(SPEC[SPEC.index("import requests") :])
    code = code.replace(SPEC_URL, server.url + "/v1/removebg").replace(
        "YOUR_API_KEY", server.make_key()
    )
    shutil.copy(PHOTOS / "car-1.jpg", tmp_path / "input.jpg")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True)
    _assert_cutout(tmp_path / "output.png")


def _indent_python(code: str) -> str:
    """The spec's page lost its indentation; put back the two blocks it has."""
    out, depth = [], 0
    for raw in code.strip().splitlines():
        line = raw.strip()
        if line.startswith("with open("):
            depth = 0
        if line.startswith(("'", "headers=", "files=", ")")):
            out.append("        " + line)
            continue
        out.append("    " * depth + line)
        if line.endswith(":"):
            depth = 1
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node is not installed")
    folder = tmp_path_factory.mktemp("node")
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "node-fetch@3"],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    return folder


def _node(folder: Path, script: str, key: str) -> subprocess.CompletedProcess[str]:
    (folder / "sample.mjs").write_text(script)
    env = {**os.environ, "CLEARBG_API_KEY": key}
    return subprocess.run(
        ["node", "sample.mjs"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_node_fetch_sample_runs_and_is_told_what_is_wrong(
    server: Server, node_modules: Path
) -> None:
    """The spec's Node.js sample appends a ReadStream to a WHATWG FormData, which keeps only
    Blobs: Node sends the text "[object Object]". It runs; the answer is a 400 that says so."""
    code = _section("import fetch from 'node-fetch';", "Python")
    code = code.replace(SPEC_URL, server.url + "/v1/removebg")
    shutil.copy(PHOTOS / "car-1.jpg", node_modules / "input.jpg")
    probe = code + "\nconsole.log(response.status, await imageBlob.text());\n"
    result = _node(node_modules, probe, server.make_key())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("400 ") and "not text" in result.stdout


def test_node_fetch_sample_with_a_blob_gives_a_cutout(server: Server, node_modules: Path) -> None:
    code = _section("import fetch from 'node-fetch';", "Python")
    code = code.replace(SPEC_URL, server.url + "/v1/removebg").replace(
        "fs.createReadStream('input.jpg')", "await fs.openAsBlob('input.jpg'), 'input.jpg'"
    )
    code += "\nfs.writeFileSync('output.png', Buffer.from(await imageBlob.arrayBuffer()));\n"
    shutil.copy(PHOTOS / "car-1.jpg", node_modules / "input.jpg")
    result = _node(node_modules, code, server.make_key())
    assert result.returncode == 0, result.stderr
    _assert_cutout(node_modules / "output.png")
