"""rembg for ``bench/bench.py``: its own throw-away venv, its weights, and a worker to talk to.

rembg is not a dependency of ClearBG. It is installed with its ordinary client into
``bench/out/rembg-venv`` and finds our u2net weights through ``U2NET_HOME`` (a folder holding a
symlink), so it never downloads anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import selectors
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

HERE = Path(__file__).resolve().parent
INSTALL_TIMEOUT = 900.0
REPLY_TIMEOUT = 300.0


class BenchError(RuntimeError):
    """Something the benchmark needs is missing or broken; the message says what to do."""


@dataclass(frozen=True)
class RembgEnv:
    venv: Path
    home: Path  # U2NET_HOME

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def cli(self) -> Path:
        return self.venv / "bin" / "rembg"

    def environ(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        env["U2NET_HOME"] = str(self.home)
        env.pop("REMBG_HOME", None)
        env.pop("MODEL_CHECKSUM_DISABLED", None)  # rembg must accept the file as it is
        return env


def _importable(python: Path) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", "import rembg, rembg.cli, click, onnxruntime"],
        capture_output=True,
        check=False,
        timeout=120,
    )
    return probe.returncode == 0


def install(venv: Path, spec: str) -> None:
    """Create ``venv`` and pip-install ``spec`` into it, unless rembg already imports there."""
    python = venv / "bin" / "python"
    if _importable(python):
        return
    print(f"installing {spec} into {venv} (once; about 2 minutes) ...", flush=True)
    log = venv.parent / "rembg-install.log"
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        ["python3", "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", spec],
    ]
    with log.open("w") as out:
        for cmd in steps:
            try:
                done = subprocess.run(
                    cmd, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise BenchError(f"cannot install rembg: {' '.join(cmd)}: {exc}") from exc
            if done.returncode != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-15:]
                raise BenchError(
                    f"cannot install rembg ({' '.join(cmd)} exited {done.returncode}); "
                    f"last lines of {log}:\n  " + "\n  ".join(tail)
                )
    if not _importable(python):
        raise BenchError(f"rembg was installed into {venv} but does not import; see {log}")


def make_home(home: Path, model: str, weights: Path) -> None:
    """A U2NET_HOME folder holding ``<model>.onnx`` as a symlink to our cached weights."""
    home.mkdir(parents=True, exist_ok=True)
    link = home / f"{model}.onnx"
    if link.is_symlink() or link.exists():
        if link.resolve() == weights.resolve():
            return
        link.unlink()
    link.symlink_to(weights.resolve())


def expected_md5(env: RembgEnv, model: str) -> str | None:
    """The md5 rembg's session file pins for ``model`` (it checks it only when it downloads)."""
    found = subprocess.run(
        [str(env.python), "-c", f"import inspect, rembg.sessions.{model} as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if found.returncode != 0:
        return None
    source = Path(found.stdout.strip()).read_text()
    match = re.search(r"md5:([0-9a-f]{32})", source)
    return match.group(1) if match else None


def md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Worker:
    """``bench/rembg_side.py`` running in rembg's venv; one JSON request and reply per line."""

    def __init__(self, env: RembgEnv, log: Path) -> None:
        self._log = log.open("w")
        self._proc = subprocess.Popen(
            [str(env.python), str(HERE / "rembg_side.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env.environ(dict(os.environ)),
        )
        self._sel = selectors.DefaultSelector()
        assert self._proc.stdout is not None
        self._sel.register(self._proc.stdout, selectors.EVENT_READ)

    def ask(self, **request: Any) -> dict[str, Any]:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        deadline = time.monotonic() + REPLY_TIMEOUT
        while not self._sel.select(timeout=max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise BenchError(f"rembg worker gave no answer to {request} in {REPLY_TIMEOUT} s")
        line = proc.stdout.readline()
        if not line:
            raise BenchError(f"rembg worker died; see {self._log.name}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise BenchError(f"rembg worker: {request['op']}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self._proc.poll() is None and self._proc.stdin is not None:
            try:
                self._proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._log.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
