"""Where bulk inputs, results and idempotent replays live: one interface, two stores.

``FolderFiles`` keeps them under a local folder (the data dir's ``results``, the default);
``S3Files`` in a bucket under a prefix (``s3://bucket/prefix``), shared by every process on
every machine. Keys are ``/``-separated paths made by ClearBG itself (``jobs/<id>/in/0``),
never by a client.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from clearbg.errors import SettingsError
from clearbg.settings import Settings

__all__ = ["Files", "FolderFiles", "S3Files", "make_files"]

_CHUNK = 256 * 1024


class Files(Protocol):
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing what was there (never half-written)."""

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; ``FileNotFoundError`` when there are none."""

    def stream(self, key: str) -> Iterator[bytes]:
        """The bytes under ``key`` in chunks; ``FileNotFoundError`` (raised at once, before
        the first chunk is asked for) when there are none."""

    def delete(self, key: str) -> None:
        """Delete ``key``; nothing there is not an error."""

    def sizes(self, prefix: str) -> dict[str, int]:
        """The size of every key under ``prefix`` (one listing, not one request per key)."""

    def delete_prefix(self, prefix: str) -> None:
        """Delete every key under ``prefix``; nothing there is not an error."""

    def check(self) -> None:
        """Raise ``SettingsError`` naming the setting when the store cannot be used."""


def make_files(settings: Settings) -> Files:
    url = settings.storage.url
    if not url:
        return FolderFiles(settings.results_dir)
    if url.startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise SettingsError(
                f"CLEARBG_STORAGE__URL {url!r} names no bucket (s3://bucket/prefix)"
            )
        return S3Files(parts.netloc, parts.path.strip("/"), settings.storage.endpoint_url)
    raise SettingsError(f"CLEARBG_STORAGE__URL must be empty or s3://bucket/prefix, not {url!r}")


class FolderFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def stream(self, key: str) -> Iterator[bytes]:
        handle = self._path(key).open("rb")  # raises here, not at the first chunk

        def chunks() -> Iterator[bytes]:
            with handle:
                while block := handle.read(_CHUNK):
                    yield block

        return chunks()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def sizes(self, prefix: str) -> dict[str, int]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return {}
        return {
            p.relative_to(self.root).as_posix(): p.stat().st_size
            for p in folder.rglob("*")
            if p.is_file() and not p.name.endswith(".part")
        }

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingsError(
                f"CLEARBG_SERVER__DATA_DIR: cannot make {self.root}: {exc.strerror}"
            ) from exc


class S3Files:
    """An S3 bucket through boto3 (thread-safe client; credentials from the AWS_* variables)."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str = "") -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            config=Config(
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
                max_pool_connections=32,
            ),
        )

    def _key(self, key: str) -> str:
        return self.prefix + key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def _open(self, key: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self.client.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(key) from exc

    def get(self, key: str) -> bytes:
        body = self._open(key)
        with body:
            data: bytes = body.read()
        return data

    def stream(self, key: str) -> Iterator[bytes]:
        body = self._open(key)

        def chunks() -> Iterator[bytes]:
            with body:
                yield from body.iter_chunks(_CHUNK)

        return chunks()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def sizes(self, prefix: str) -> dict[str, int]:
        found: dict[str, int] = {}
        pages = self.client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for obj in page.get("Contents", []):
                found[obj["Key"][len(self.prefix) :]] = int(obj["Size"])
        return found

    def delete_prefix(self, prefix: str) -> None:
        keys = [self._key(k) for k in self.sizes(prefix)]
        for start in range(0, len(keys), 1000):  # S3's most per DeleteObjects
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})

    def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except NoCredentialsError as exc:
            raise SettingsError(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set for CLEARBG_STORAGE__URL"
            ) from exc
        except ClientError as exc:
            status = str(exc.response.get("Error", {}).get("Code", ""))
            if status in ("404", "NoSuchBucket"):
                raise SettingsError(
                    f"CLEARBG_STORAGE__URL: the bucket {self.bucket!r} does not exist"
                ) from exc
            if status in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise SettingsError(
                    f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: the S3 store refused them for "
                    f"the bucket {self.bucket!r} of CLEARBG_STORAGE__URL"
                ) from exc
            raise SettingsError(f"CLEARBG_STORAGE__URL: the S3 store answered {status}") from exc
        except BotoCoreError as exc:
            where = self.endpoint_url or "AWS"
            raise SettingsError(
                f"CLEARBG_STORAGE__ENDPOINT_URL: the S3 store at {where} cannot be reached: {exc}"
            ) from exc
