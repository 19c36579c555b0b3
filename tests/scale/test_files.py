"""One contract for both file stores: the data folder and the S3 bucket (SeaweedFS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearbg.store.files import Files, FolderFiles, S3Files
from tests.scale.stack import ACCESS_KEY, BUCKET, SECRET_KEY, Stack


@pytest.fixture(params=["folder", "s3"])
def files(
    request: pytest.FixtureRequest, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Files:
    if request.param == "folder":
        return FolderFiles(tmp_path / "results")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return S3Files(BUCKET, f"contract-{tmp_path.name}", stack.s3_endpoint)


def test_put_get_stream_sizes_and_delete(files: Files) -> None:
    files.check()
    files.put("jobs/a/in/0", b"x" * 300_000)
    files.put("jobs/a/in/1", b"yy")
    files.put("jobs/b/in/0", b"z")
    files.put("jobs/a/in/1", b"yyy")  # replaced, never appended
    assert files.get("jobs/a/in/1") == b"yyy"
    assert b"".join(files.stream("jobs/a/in/0")) == b"x" * 300_000
    assert files.sizes("jobs/a/") == {"jobs/a/in/0": 300_000, "jobs/a/in/1": 3}
    files.delete("jobs/a/in/1")
    files.delete("jobs/a/in/9")  # nothing there: no error
    assert files.sizes("jobs/a/") == {"jobs/a/in/0": 300_000}
    files.delete_prefix("jobs/a/")
    assert files.sizes("jobs/a/") == {}
    assert files.get("jobs/b/in/0") == b"z"
    with pytest.raises(FileNotFoundError):
        files.get("jobs/a/in/0")
    with pytest.raises(FileNotFoundError):
        files.stream("jobs/a/in/0")
