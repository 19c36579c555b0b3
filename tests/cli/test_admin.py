"""`clearbg admin`: applications, keys (secret shown once), credits and usage, on real SQLite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


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
