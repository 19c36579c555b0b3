"""Settings a process cannot use end `serve`, `worker` and `migrate` with one line naming the
setting (exit 6), before anything starts. No server is needed to see it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    base["CLEARBG_SERVER__DATA_DIR"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "clearbg.cli", *args],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SECRETS = {
    "CLEARBG_CONSOLE__SECRET": "c",
    "CLEARBG_JOBS__CALLBACK_SECRET": "j",
    "CLEARBG_GATEWAY__IP_HASH_SECRET": "g",
    "CLEARBG_LIMITS__STORAGE_URL": "redis://127.0.0.1:9/1",
}


@pytest.mark.parametrize("command", [["migrate"], ["worker"], ["serve"]])
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    url = f"postgresql+psycopg://clearbg@127.0.0.1:{_closed_port()}/clearbg"
    done = _run(tmp_path, *command, CLEARBG_DATABASE__URL=url, **SECRETS)
    assert done.returncode == 6, done.stderr
    assert done.stderr.startswith("Error [bad_settings]: CLEARBG_DATABASE__URL")
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_a_shared_store_needs_its_secrets_set(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://clearbg@127.0.0.1:{_closed_port()}/clearbg"
    done = _run(tmp_path, "worker", CLEARBG_DATABASE__URL=url)
    assert done.returncode == 6
    assert done.stderr.strip() == (
        "Error [bad_settings]: CLEARBG_CONSOLE__SECRET must be set when CLEARBG_DATABASE__URL "
        "is not SQLite"
    )


def test_an_unreachable_redis_queue_is_one_line(tmp_path: Path) -> None:
    done = _run(tmp_path, "worker", CLEARBG_JOBS__HUEY_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    assert done.returncode == 6, done.stderr
    assert done.stderr.startswith("Error [bad_settings]: CLEARBG_JOBS__HUEY_URL")


def test_several_api_processes_cannot_share_the_sqlite_queue(tmp_path: Path) -> None:
    done = _run(tmp_path, "serve", "--workers", "2")
    assert done.returncode == 6
    assert "CLEARBG_JOBS__CONSUMER" in done.stderr


def test_several_api_processes_cannot_count_limits_in_memory(tmp_path: Path) -> None:
    done = _run(tmp_path, "serve", "--workers", "2", CLEARBG_JOBS__CONSUMER="false")
    assert done.returncode == 6
    assert done.stderr.startswith("Error [bad_settings]: CLEARBG_LIMITS__STORAGE_URL")
