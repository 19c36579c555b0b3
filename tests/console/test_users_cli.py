"""`clearbg admin users`: the first admin and members, and what the password store keeps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from clearbg.gateway import users
from clearbg.settings import Settings
from clearbg.store.db import make_engine, sessions
from clearbg.store.models import User


def admin(data: Path, *args: str, stdin: str = "", ok: bool = True) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "clearbg.cli", "admin", "--data-dir", str(data), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert (out.returncode == 0) is ok, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_users_create_list_and_membership(tmp_path: Path) -> None:
    data = tmp_path / "data"
    admin(data, "apps", "create", "shop")
    made = admin(
        data,
        "users",
        "create",
        "Root@Example.com",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long password\n",
    )
    assert "created admin root@example.com" in made
    admin(
        data,
        "users",
        "create",
        "dev@example.com",
        "--password-stdin",
        "--app",
        "shop",
        stdin="another password\n",
    )
    listed = admin(data, "users", "list")
    assert "root@example.com" in listed and "dev@example.com" in listed and "shop" in listed

    # refused: the same email again, a short password, a bad role
    again = admin(
        data,
        "users",
        "create",
        "dev@example.com",
        "--password-stdin",
        stdin="another password\n",
        ok=False,
    )
    assert "exists" in again
    short = admin(
        data, "users", "create", "x@example.com", "--password-stdin", stdin="short\n", ok=False
    )
    assert "at least 8" in short
    assert "not an email" in admin(
        data, "users", "create", "nobody", "--password-stdin", stdin="long enough\n", ok=False
    )

    admin(data, "users", "remove-member", "dev@example.com", "shop")
    settings = Settings().model_copy(
        update={"server": Settings().server.model_copy(update={"data_dir": data})}
    )
    factory = sessions(make_engine(settings.database_url))
    with factory() as db:
        dev = db.scalar(select(User).where(User.email == "dev@example.com"))
        assert dev is not None and users.visible_applications(db, dev.id, dev.role) == []
        assert dev.password_hash.startswith("$argon2id$")  # never the password itself
        assert "another password" not in dev.password_hash
    with factory.begin() as db:
        assert users.sign_in(db, "DEV@example.com ", "another password").email == dev.email
