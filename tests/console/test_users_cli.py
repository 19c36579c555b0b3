"""`clearbg admin users`: the first admin and members, and what the password store keeps."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clearbg.accounts import users
from clearbg.errors import SignInError
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


def _sessions(data: Path) -> sessionmaker[Session]:
    """Database sessions on the data folder's SQLite file, as `clearbg admin` opens it."""
    settings = Settings().model_copy(
        update={"server": Settings().server.model_copy(update={"data_dir": data})}
    )
    return sessions(make_engine(settings.database_url))


@pytest.mark.slow
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
    factory = _sessions(data)
    with factory() as db:
        dev = db.scalar(select(User).where(User.email == "dev@example.com"))
        assert dev is not None and users.visible_applications(db, dev.id, dev.role) == []
        assert dev.password_hash.startswith("$argon2id$")  # never the password itself
        assert "another password" not in dev.password_hash
    with factory.begin() as db:
        assert users.sign_in(db, "DEV@example.com ", "another password").email == dev.email


@pytest.mark.slow
def test_set_password_replaces_a_forgotten_one_and_ends_every_session(tmp_path: Path) -> None:
    data = tmp_path / "data"
    admin(data, "users", "create", "dev@example.com", "--password-stdin", stdin="old password\n")
    factory = _sessions(data)
    lifetime = timedelta(hours=1)
    with factory.begin() as db:
        token = users.start_session(
            db, users.sign_in(db, "dev@example.com", "old password"), lifetime
        )

    done = admin(
        data, "users", "set-password", "dev@example.com", "--password-stdin", stdin="new password\n"
    )
    assert "ended" in done
    with factory.begin() as db:
        assert users.session_user(db, token) is None
        assert users.sign_in(db, "dev@example.com", "new password").email == "dev@example.com"
        with pytest.raises(SignInError):
            users.sign_in(db, "dev@example.com", "old password")
    short = admin(
        data,
        "users",
        "set-password",
        "dev@example.com",
        "--password-stdin",
        stdin="short\n",
        ok=False,
    )
    assert "at least 8" in short
    assert "no user" in admin(
        data,
        "users",
        "set-password",
        "x@example.com",
        "--password-stdin",
        stdin="long enough\n",
        ok=False,
    )


@pytest.mark.slow
def test_changing_ones_own_password_needs_the_current_one_and_keeps_this_session(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    admin(data, "users", "create", "dev@example.com", "--password-stdin", stdin="old password\n")
    factory = _sessions(data)
    lifetime = timedelta(hours=1)
    with factory.begin() as db:
        user = users.sign_in(db, "dev@example.com", "old password")
        here = users.start_session(db, user, lifetime)
        elsewhere = users.start_session(db, user, lifetime)
        user_id = user.id
    with factory.begin() as db, pytest.raises(SignInError):
        users.change_password(db, user_id, "wrong guess", "new password", here)
    with factory.begin() as db:
        users.change_password(db, user_id, "old password", "new password", here)
    with factory.begin() as db:
        assert users.session_user(db, here) is not None
        assert users.session_user(db, elsewhere) is None
