"""The scale-out stack on this machine: PostgreSQL, Redis and SeaweedFS (S3) on free ports, then
``clearbg migrate``, API processes and workers against them. Used by tests/scale and
bench/scale_bench.py; everything it starts stops when the ``with`` block ends, even on failure.

PostgreSQL refuses to run as root: as root its server runs as ``nobody`` in a folder of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def _pg_bin() -> Path:
    """CLEARBG_PG_BIN, or the newest of Debian's PostgreSQL server folders."""
    if os.environ.get("CLEARBG_PG_BIN"):
        return Path(os.environ["CLEARBG_PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3])
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
BIN = Path(sys.executable).parent
ACCESS_KEY, SECRET_KEY, BUCKET = "clearbg-test", "clearbg-test-secret", "clearbg"
ADMIN_TOKEN = "scale-admin-token"


def free_port() -> int:
    """A free port whose +10000 twin (SeaweedFS's gRPC port) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 55000 and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not start within {timeout:g} s")


@dataclass
class Stack:
    root: Path
    pg_port: int = 0
    redis_port: int = 0
    s3_port: int = 0
    api_port: int = 0
    worker_metrics: int = 0  # a worker's metrics port, 0: none
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    # servers -------------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg://clearbg@127.0.0.1:{self.pg_port}/clearbg"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = self.root / f"{name}.log"
        self.logs[name] = log
        with log.open("ab") as out:
            self.procs[name] = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def start_postgres(self) -> None:
        self.pg_port = free_port()
        folder = Path(tempfile.mkdtemp(prefix="clearbg-pg-"))
        folder.chmod(0o755)
        data = folder / "data"
        as_user: list[str] = []
        if os.geteuid() == 0:
            data.mkdir()
            shutil.chown(data, "nobody", "nogroup")
            shutil.chown(folder, "nobody", "nogroup")
            as_user = ["runuser", "-u", "nobody", "--"]
        subprocess.run(
            [*as_user, str(PG_BIN / "initdb"), "-D", str(data), "-U", "clearbg", "-A", "trust",
             "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip
        self._spawn(
            "postgres",
            [*as_user, str(PG_BIN / "postgres"), "-D", str(data), "-p", str(self.pg_port),
             "-h", "127.0.0.1", "-k", str(folder), "-c", "fsync=off",
             "-c", "shared_preload_libraries=pg_stat_statements", "-c", "max_connections=200"],
        )  # fmt: skip
        self._pg_folder = folder

        import psycopg

        def ready() -> bool:
            with psycopg.connect(
                f"host=127.0.0.1 port={self.pg_port} user=clearbg dbname=postgres",
                autocommit=True,
                connect_timeout=2,
            ) as conn:
                conn.execute("CREATE DATABASE clearbg")
            return True

        wait_for(ready, "PostgreSQL")
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")

    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.pg_port} user=clearbg dbname=clearbg"

    def start_redis(self) -> None:
        self.redis_port = free_port()
        self._spawn(
            "redis",
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.root)],
        )  # fmt: skip
        import redis

        wait_for(lambda: redis.Redis(port=self.redis_port).ping(), "Redis")

    def start_s3(self) -> None:
        ports = {k: free_port() for k in ("master", "volume", "filer", "s3", "admin", "metrics")}
        self.s3_port = ports["s3"]
        config = self.root / "s3.json"
        config.write_text(
            '{"identities": [{"name": "clearbg", "credentials": [{"accessKey": "'
            + ACCESS_KEY
            + '", "secretKey": "'
            + SECRET_KEY
            + '"}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}'
        )
        (self.root / "weed").mkdir()
        self._spawn(
            "seaweedfs",
            [str(BIN / "weed"), "mini", f"-dir={self.root / 'weed'}", "-ip=127.0.0.1",
             "-ip.bind=127.0.0.1", f"-master.port={ports['master']}",
             f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}",
             f"-s3.port={ports['s3']}", f"-s3.config={config}", f"-admin.port={ports['admin']}",
             f"-metricsPort={ports['metrics']}", f"-s3.port.iceberg={free_port()}",
             "-webdav=false", "-admin.ui=false", "-master.telemetry=false"],
        )  # fmt: skip
        client = self.s3_client()
        wait_for(lambda: client.create_bucket(Bucket=BUCKET), "SeaweedFS", timeout=90)

    def s3_client(self, secret: str = SECRET_KEY) -> object:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )

    # ClearBG --------------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEARBG_", "AWS_"))}
        env.update(
            CLEARBG_DATABASE__URL=self.database_url,
            CLEARBG_JOBS__HUEY_URL=f"{self.redis_url}/0",
            CLEARBG_LIMITS__STORAGE_URL=f"{self.redis_url}/1",
            CLEARBG_STORAGE__URL=f"s3://{BUCKET}/clearbg",
            CLEARBG_STORAGE__ENDPOINT_URL=self.s3_endpoint,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            CLEARBG_CONSOLE__SECRET="scale-console-secret",
            CLEARBG_JOBS__CALLBACK_SECRET="scale-callback-secret",
            CLEARBG_GATEWAY__IP_HASH_SECRET="scale-ip-secret",
            CLEARBG_ADMIN__TOKEN=ADMIN_TOKEN,
            CLEARBG_ENGINE__DEFAULT_MODEL="u2netp",
            CLEARBG_ENGINE__COMBINE="false",
            CLEARBG_ENGINE__THREADS="1",
            CLEARBG_JOBS__CONSUMER="false",
            CLEARBG_JOBS__LEASE_SECONDS="4",
            CLEARBG_JOBS__SIDE_BY_SIDE="1",
            CLEARBG_SERVER__DATA_DIR=str(self.root / "data"),
            CLEARBG_SERVER__QUEUE_LIMIT="256",
        )
        env.update(extra)
        return env

    def clearbg(
        self, *args: str, input_text: str = "", **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "clearbg"), *args], env=self.env(**extra), capture_output=True, text=True,
            timeout=120, check=False, input=input_text,
        )  # fmt: skip

    def start_api(self, workers: int = 2) -> None:
        self.api_port = free_port()
        self._spawn(
            "api",
            [str(BIN / "clearbg"), "serve", "--workers", str(workers), "--port",
             str(self.api_port)],
            self.env(),
        )  # fmt: skip

        def ready() -> bool:  # several answers in a row: each process has loaded its model
            return all(
                httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200 for _ in range(20)
            )

        wait_for(ready, "the API processes", timeout=120)

    def start_worker(self, name: str, threads: int = 1, metrics_port: int = 0) -> None:
        args = ["worker", "--threads", str(threads), "--metrics-port", str(metrics_port)]
        self._spawn(name, [str(BIN / "clearbg"), *args], self.env())
        wait_for(lambda: "worker:" in self.logs[name].read_text(), name, timeout=120)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for name in list(self.procs)[::-1]:
            proc = self.procs[name]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
            del self.procs[name]
        folder = getattr(self, "_pg_folder", None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def servers(root: Path) -> Iterator[Stack]:
    """PostgreSQL, Redis and S3 started (schema migrated), stopped at the end."""
    stack = Stack(root)
    try:
        stack.start_postgres()
        stack.start_redis()
        stack.start_s3()
        done = stack.clearbg("migrate")
        if done.returncode != 0:
            raise RuntimeError(f"clearbg migrate failed: {done.stderr}")
        yield stack
    finally:
        stack.stop()
