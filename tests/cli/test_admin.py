"""`clearbg admin`: applications, keys (secret shown once), credits and usage, on real SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from clearbg.accounts import audit
from clearbg.store.db import make_engine


def admin(data: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "clearbg.cli", "admin", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


@pytest.mark.slow
def test_admin_manages_applications_keys_and_credits(tmp_path: Path) -> None:
    assert "application shop" in admin(tmp_path, "apps", "create", "shop", "--rate", "30")
    assert "shop" in admin(tmp_path, "apps", "list")
    created = admin(tmp_path, "keys", "create", "shop", "--label", "web", "--credits", "5")
    secret = created.strip().splitlines()[-1]
    prefix = secret[:12]
    assert secret.startswith("cbg_") and len(secret) > 40
    listing = admin(tmp_path, "keys", "list", "shop")
    assert prefix in listing and secret not in listing and "5" in listing
    assert "12.5 credits" in admin(tmp_path, "credits", prefix, "7.5")
    assert "revoked" in admin(tmp_path, "keys", "revoke", prefix)
    assert "revoked" in admin(tmp_path, "keys", "list")
    assert "requests" in admin(tmp_path, "usage")
    with Session(make_engine(f"sqlite:///{tmp_path / 'clearbg.db'}")) as db:
        logged = [(e.actor, e.action, e.target) for e in reversed(audit.events(db))]
    assert logged == [
        ("command line", "app.created", "shop"),
        ("command line", "key.created", prefix),
        ("command line", "credits.added", prefix),
        ("command line", "key.revoked", prefix),
    ]
    failed = subprocess.run(
        [
            sys.executable,
            "-m",
            "clearbg.cli",
            "admin",
            "--data-dir",
            str(tmp_path),
            "keys",
            "create",
            "nope",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 3 and "not_found" in failed.stderr


def test_admin_names_its_database_and_reads_none_that_is_missing(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARBG_SERVER__")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clearbg.cli", "admin", *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=elsewhere,
            env=env,
        )

    for read_only in (["apps", "list"], ["keys", "list"], ["usage"], ["apps", "show", "x"]):
        refused = run(*read_only)
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert f"data folder {elsewhere / 'data'}" in refused.stderr
        assert "no database at" in refused.stderr and "--data-dir" in refused.stderr
    assert not (elsewhere / "data").exists()  # nothing made in the wrong directory

    data = tmp_path / "data"
    created = run("--data-dir", str(data), "apps", "create", "shop")
    assert created.returncode == 0 and "application shop" in created.stdout
    assert f"database sqlite:///{data / 'clearbg.db'}" in created.stderr
    listed = run("--data-dir", str(data), "apps", "list")
    assert listed.returncode == 0 and "shop" in listed.stdout
    assert f"data folder {data}" in listed.stderr
