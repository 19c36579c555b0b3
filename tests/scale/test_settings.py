"""Bad settings stop a process at start with one line naming the setting: no stack trace."""

from __future__ import annotations

import psycopg
import pytest

from tests.scale.stack import Stack, free_port


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("CLEARBG_DATABASE__URL", "postgresql+psycopg://clearbg@127.0.0.1:{port}/x", None),
        ("CLEARBG_JOBS__HUEY_URL", "redis://127.0.0.1:{port}/0", None),
        ("CLEARBG_LIMITS__STORAGE_URL", "redis://127.0.0.1:{port}/1", None),
        ("CLEARBG_STORAGE__URL", "s3://no-such-bucket/x", None),
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret", "AWS_ACCESS_KEY_ID"),
        ("CLEARBG_CONSOLE__SECRET", "", None),
    ],
)
@pytest.mark.parametrize("command", [["worker"], ["serve", "--workers", "2"]])
def test_a_bad_setting_is_one_line_naming_it(
    stack: Stack, command: list[str], setting: str, value: str, named: str | None
) -> None:
    done = stack.clearbg(*command, **{setting: value.format(port=free_port())})
    assert done.returncode == 6, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error [bad_settings]: ")
    assert (named or setting) in lines[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_a_database_not_migrated_is_refused(stack: Stack) -> None:
    with psycopg.connect(stack.dsn(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE empty")
    url = stack.database_url.rsplit("/", 1)[0] + "/empty"
    done = stack.clearbg("worker", CLEARBG_DATABASE__URL=url)
    assert done.returncode == 6
    assert "run `clearbg migrate` first" in done.stderr
