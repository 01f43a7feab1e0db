"""Recommendation packet files: a dated orders CSV and a JSON (manifest + summary + orders).

Written to the outbox folder by the orders asset and by ``quant-pipeline orders`` alike::

    outbox/2024-04-01_my_portfolio_orders.csv    the order table, one row per ticker
    outbox/2024-04-01_my_portfolio_packet.json   {"manifest": ..., "summary": ..., "orders": [...]}

The content is built by the pure :mod:`quant_pipeline.core.accounts.packet`; this module names
the files, writes them and asks git for the code version. Each file is written to a temporary
name in the same folder and renamed into place, so a reader (or a person watching the folder)
never sees half a file. Writing the same portfolio and date again replaces both files.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl

from quant_pipeline.core.accounts.changes import book_frame
from quant_pipeline.core.accounts.packet import packet_csv, packet_id, packet_json

PACKAGE = "quant_pipeline"


@dataclass(frozen=True)
class PacketFiles:
    """Where a packet was written."""

    csv: Path
    json: Path


def packet_paths(outbox: str | Path, portfolio: str, as_of: date) -> PacketFiles:
    """``<outbox>/<as_of>_<portfolio>_orders.csv`` and ``..._packet.json``."""
    stem = f"{as_of.isoformat()}_{portfolio}"
    folder = Path(outbox)
    return PacketFiles(csv=folder / f"{stem}_orders.csv", json=folder / f"{stem}_packet.json")


def _git(args: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=folder, capture_output=True, text=True, timeout=5, check=False
    )


def code_version(repo_dir: str | Path | None = None) -> dict[str, str | bool | None]:
    """Package version, git commit and whether tracked files differ from it.

    ``git_commit`` and ``git_dirty`` are ``None`` when git or the repository is absent. Never
    raises: a missing ``git`` executable, a tarball install or a slow disk all give
    ``git_commit: None`` rather than a failed run.
    """
    try:
        version: str | None = metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        version = None
    folder = Path(repo_dir) if repo_dir else Path(__file__).resolve().parent
    commit: str | None = None
    dirty: bool | None = None
    try:
        out = _git(["rev-parse", "HEAD"], folder)
        if out.returncode == 0 and out.stdout.strip():
            commit = out.stdout.strip()
            status = _git(["status", "--porcelain", "--untracked-files=no"], folder)
            dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"package_version": version, "git_commit": commit, "git_dirty": dirty}


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a packet is for people to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_packet(
    outbox: str | Path,
    portfolio: str,
    as_of: date,
    orders: pl.DataFrame,
    manifest: dict[str, Any],
    summary: dict[str, Any],
    sections: dict[str, Any] | None = None,
) -> PacketFiles:
    """Write the orders CSV and the packet JSON for ``portfolio`` on ``as_of``; return the paths.

    ``manifest`` gains ``files`` (the two paths) before it is written; ``sections`` (target,
    changes) follow the orders in the JSON.
    """
    files = packet_paths(outbox, portfolio, as_of)
    manifest = {**manifest, "files": {"csv": str(files.csv), "json": str(files.json)}}
    text = packet_json(
        orders, manifest, summary, sections
    )  # serialise first: a bad value writes nothing
    _atomic_write(files.csv, packet_csv(orders).encode())
    _atomic_write(files.json, text.encode())
    return files


def read_packet(path: str | Path) -> dict[str, Any]:
    """A packet JSON as a dict (for tests and scripts)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class PreviousPacket:
    """The latest earlier packet of a portfolio: its id and the book it traded to."""

    packet_id: str
    path: Path
    target: pl.DataFrame


def previous_packet(outbox: str | Path, portfolio: str, as_of: date) -> PreviousPacket | None:
    """The packet of ``portfolio`` in ``outbox`` with the latest as-of date before ``as_of``.

    Its book is the JSON's ``target`` section; a packet from before that section existed gives
    its orders' positive ``target_weight`` (sector kept, score and rank null). A file that
    cannot be read as a packet raises ValueError naming it.
    """
    dated = []
    for path in Path(outbox).glob(f"????-??-??_{portfolio}_packet.json"):
        try:
            day = date.fromisoformat(path.name[:10])
        except ValueError:
            continue
        if path.name == packet_paths(outbox, portfolio, day).json.name and day < as_of:
            dated.append((day, path))
    if not dated:
        return None
    day, path = max(dated)
    try:
        doc = read_packet(path)
        if "target" in doc:
            rows = doc["target"]
        else:
            rows = [
                {"ticker": o["ticker"], "sector": o.get("sector"), "weight": o["target_weight"]}
                for o in doc["orders"]
                if (o.get("target_weight") or 0) > 0
            ]
        target = book_frame(rows)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: cannot be read as a packet (ticker/target_weight): {exc}"
        ) from exc
    packet = doc.get("manifest", {}).get("packet_id") or packet_id(portfolio, day)
    return PreviousPacket(packet_id=packet, path=path, target=target)
