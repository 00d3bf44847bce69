"""Download the corpus of other people's files: pinned sdists from PyPI, unpacked into a git-ignored cache.

Run by ``make corpus`` (which ``make setup`` and so ``make test`` run); idempotent, so a second run with
the cache in place costs nothing. Only the package registry is contacted, through ``pip download``, and
every archive is checked against its pinned SHA-256 before a byte of it is unpacked. The unpacked
trees are never committed (``tests/corpus/.cache`` is in ``.gitignore``).

Usage: ``python tests/corpus/fetch.py [--cache DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

#: Where the corpus lives unless ``--cache`` says otherwise.
DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"

#: name -> (version, file name, SHA-256). Projects whose sdists ship their test media.
SDISTS: dict[str, tuple[str, str, str]] = {
    "pillow": ("13.0.0", "pillow-13.0.0.tar.gz", "cdcd1ba258178f7356d74170c9a81ba4eab6a5d55748bc402a5a2a6fe6be3510"),
    "mutagen": ("1.48.1", "mutagen-1.48.1.tar.gz", "8f95637ab9f6f305cec6bd1294e197debe207998e3e068596563c74f86b0a173"),
    "tinytag": ("2.3.2", "tinytag-2.3.2.tar.gz", "021d711cdbdbf840d3b67b976cb34dadc58d2fcfd490eb74ef9602b37b991414"),
    "pypdf": ("7.1.1", "pypdf-7.1.1.tar.gz", "2eff4e2fc5fb22a6d6711e6f1166cdc9ab5765d90cd0d77dfea3f4aa91a27b1d"),
    "pikepdf": (
        "10.18.0",
        "pikepdf-10.18.0.tar.gz",
        "cb555ebff93482e8a6eb55881488b469bbb2b5675161c1b93a0510a8642d98d0",
    ),
    "openpyxl": ("3.1.5", "openpyxl-3.1.5.tar.gz", "cf0e3cf56142039133628b5acffe8ef0c12bc902d2aadd3e0fe5878dc08d1050"),
    "python-docx": (
        "1.2.0",
        "python_docx-1.2.0.tar.gz",
        "7bc9d7b7d8a69c9c02ca09216118c86552704edc23bac179283f2e38f86220ce",
    ),
    "python-pptx": (
        "1.0.2",
        "python_pptx-1.0.2.tar.gz",
        "479a8af0eaf0f0d76b6f00b0887732874ad2e3188230315290cd1f9dd9cc7095",
    ),
    "ebooklib": ("0.20", "ebooklib-0.20.tar.gz", "35e2f9d7d39907be8d39ae2deb261b19848945903ae3dbb6577b187ead69e985"),
    # Photos of two people (tests/test_images: obama*.jpg, biden.jpg) for the face matcher: never committed here.
    "face_recognition": (
        "1.3.0",
        "face_recognition-1.3.0.tar.gz",
        "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
    ),
}

#: Sdists whose test data holds human speech, for the voice matcher (tests/test_likeness_voice.py,
#: bench/likeness.py): name -> (version, file name, SHA-256, members kept). Unpacked under ``voices``, apart
#: from ``files``, so the container corpus does not label them. pocketsphinx (BSD-2-Clause) ships a LibriVox
#: reader (public domain; 5 clips), one speaker's "cards" (5 clips) and single clips of other speakers.
VOICE_SDISTS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "pocketsphinx": (
        "5.1.1",
        "pocketsphinx-5.1.1.tar.gz",
        "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
        (
            "LICENSE",
            "test/data/librivox/",
            "test/data/cards/",
            "test/data/forever/",
            "test/regression/chan3.wav",
            "test/data/vad/leak-test.wav",
            "test/data/goforward.raw",
            "test/data/numbers.raw",
            "test/data/something.raw",
            "test/data/tidigits/dhd.2934z.raw",
        ),
    ),
}

#: Members not worth unpacking: source code and build files are never a container we label.
_SKIP_SUFFIXES = frozenset({".py", ".pyi", ".c", ".h", ".cpp", ".hpp", ".cfg", ".toml", ".in", ".yml", ".yaml"})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(name: str, version: str, archive: Path, sha256: str) -> None:
    """``pip download`` the sdist into ``archive``'s folder; refuse it unless the hash matches."""
    if archive.exists() and _sha256(archive) == sha256:
        return
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-binary",
                name,  # the sdist of this package; its build tools as wheels (pocketsphinx builds with CMake)
                f"{name}=={version}",
                "-d",
                scratch,
            ],
            check=True,
        )
        fetched = Path(scratch) / archive.name
        if not fetched.exists() or _sha256(fetched) != sha256:
            raise SystemExit(f"{name} {version}: the downloaded sdist does not match the pinned SHA-256")
        archive.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(fetched, archive)


def _inside(name: str) -> bool:
    """True for a relative member path without ``..``: it cannot land outside the extraction folder."""
    path = Path(name)
    return not path.is_absolute() and ".." not in path.parts


def _unpack(archive: Path, target: Path, keep: tuple[str, ...] = ()) -> None:
    """Regular files only, with tarfile's ``data`` filter (no links, devices or paths outside ``target``);
    with ``keep``, only members whose path inside the sdist's top folder starts with one of those."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(archive) as tar:
        members = [
            m
            for m in tar.getmembers()
            if m.isfile()
            and Path(m.name).suffix.lower() not in _SKIP_SUFFIXES
            and _inside(m.name)
            and (not keep or m.name.partition("/")[2].startswith(keep))
        ]
        # Extraction filters came with Python 3.11.4; Debian 12's python3 is 3.11.2. The member list above
        # already holds only regular files with relative paths that stay inside ``partial``.
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(partial, members=members, **safe)  # type: ignore[arg-type]
    tops = list(partial.iterdir())
    shutil.rmtree(target, ignore_errors=True)
    if len(tops) == 1 and tops[0].is_dir():  # an sdist holds one NAME-VERSION folder: drop that level
        tops[0].rename(target)
        partial.rmdir()
    else:
        partial.rename(target)


def fetch(cache: Path = DEFAULT_CACHE) -> Path:
    """Make sure every pinned sdist is unpacked under ``cache/files``; returns that folder."""
    files = cache / "files"
    for name, (version, file_name, sha256) in SDISTS.items():
        target = files / f"{name}-{version}"
        if target.is_dir():
            continue
        archive = cache / "sdist" / file_name
        _download(name, version, archive, sha256)
        _unpack(archive, target)
        print(f"corpus: {name} {version} unpacked", file=sys.stderr)
    return files


def fetch_voices(cache: Path = DEFAULT_CACHE) -> Path:
    """Make sure the speech of :data:`VOICE_SDISTS` is unpacked under ``cache/voices``; returns that folder."""
    voices = cache / "voices"
    for name, (version, file_name, sha256, keep) in VOICE_SDISTS.items():
        target = voices / f"{name}-{version}"
        if target.is_dir():
            continue
        archive = cache / "sdist" / file_name
        _download(name, version, archive, sha256)
        _unpack(archive, target, keep)
        print(f"corpus: {name} {version} speech unpacked", file=sys.stderr)
    return voices


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    cache = parser.parse_args().cache
    fetch(cache)
    fetch_voices(cache)


if __name__ == "__main__":
    main()
