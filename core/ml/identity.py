"""Which model, exactly: a name for pages and raters, and a revision that changes when the
weights do. No Django; ``huggingface_hub`` is imported only for a hub id.

* A local folder is identified by a digest of its files (small files by content, large ones
  by size plus their first and last MiB, so gigabytes of weights are never read whole).
* A hub id by the commit its ``config.json`` resolves to (offline: the cached one).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelIdentity:
    short_name: str  # for raters and pages: "all-minilm-l6-v2"
    revision: str  # hub commit, or a digest of the local folder's files

    @property
    def key(self) -> str:
        return f"{self.short_name}@{self.revision}"


_SMALL_FILE = 1 << 20


def folder_digest(folder: Path) -> str:
    """A digest of a model folder that changes when any file changes: small files (configs,
    tokenizer) by content; large ones (weights) by size plus their first and last MiB, which
    never requires reading gigabytes of weights."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative.startswith(".") or "/." in relative:
            continue  # .cache, .git and other tool state
        digest_file_sample(digest, path, relative)
    return digest.hexdigest()


def digest_file_sample(digest, path: Path, name: str) -> None:
    """Feed ``digest`` with a file's name, size and content: whole when it is small, else its
    first and last MiB (a changed weight file changes its size or its ends in practice, and a
    multi-GB file is never read whole)."""
    size = path.stat().st_size
    digest.update(f"{name}\0{size}\0".encode())
    with path.open("rb") as f:
        if size <= 2 * _SMALL_FILE:
            digest.update(f.read())
        else:
            digest.update(f.read(_SMALL_FILE))
            f.seek(-_SMALL_FILE, os.SEEK_END)
            digest.update(f.read(_SMALL_FILE))


def _readme_title(folder: Path) -> str | None:
    readme = folder / "README.md"
    if not readme.is_file():
        return None
    with readme.open(encoding="utf-8", errors="replace") as f:
        for _, line in zip(range(200), f, strict=False):
            match = re.match(r"^#\s+(\S{1,80})\s*$", line)
            if match:
                return match.group(1)
    return None


_GENERIC_FOLDER_NAMES = {"model", "models", "checkpoint", "final", "output", "best"}


def _short_name(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-") or "model"


def model_identity(model: str) -> ModelIdentity:
    """Name and exact revision of ``model``: a local folder is identified by a digest of its
    files; a hub id by the commit it resolves to (offline: the cached one)."""
    path = Path(model).expanduser()
    if path.is_dir():
        name = path.resolve().name
        if name.lower() in _GENERIC_FOLDER_NAMES or re.fullmatch(r"[0-9a-f]{40}", name):
            # A package's "model/" folder or a hub cache snapshot: the README's title names it.
            name = _readme_title(path) or path.resolve().parent.name
        return ModelIdentity(_short_name(name), folder_digest(path))
    from huggingface_hub import hf_hub_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    repo, _, revision = str(model).partition("@")
    config = hf_hub_download(
        repo, "config.json", revision=revision or None, local_files_only=offline
    )
    # .../models--org--name/snapshots/<commit>/config.json
    commit = Path(config).parent.name
    return ModelIdentity(_short_name(repo.rsplit("/", 1)[-1]), commit)
