"""A download cache for files that are not on the hub: each file is fetched once,
checked against its SHA-256, and kept under ``course_lib.models.cache_dir()/downloads``."""
from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, sha256_hex: str, filename: str | None = None, *, timeout: float = 30) -> Path:
    """The cached copy of ``url``; downloaded only when missing or corrupt.

    Raises ``ValueError`` when the downloaded bytes do not match ``sha256_hex``
    (the bad file is deleted, so a retry downloads again).
    """
    from ..models import cache_dir

    if len(sha256_hex) != 64 or any(c not in "0123456789abcdef" for c in sha256_hex.lower()):
        raise ValueError(f"sha256_hex must be 64 hex digits, got {sha256_hex!r}")
    target = cache_dir() / "downloads" / (filename or url.rstrip("/").rsplit("/", 1)[-1])
    if target.is_file() and sha256(target) == sha256_hex.lower():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
        for block in iter(lambda: response.read(1 << 20), b""):
            out.write(block)
    got = sha256(partial)
    if got != sha256_hex.lower():
        partial.unlink()
        raise ValueError(f"checksum mismatch for {url}: expected sha256 {sha256_hex}, got {got}")
    partial.replace(target)
    return target
