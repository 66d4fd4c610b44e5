"""Safe extraction of zip and tar archives.

Every member is checked *before* anything is written: absolute paths (``/x``, ``C:\\x``, ``\\\\host``),
``..`` components, symbolic or hard links whose target would leave the destination, and device /
FIFO members are refused with :class:`UnsafeArchiveError` naming the archive and the member.  While
writing, each path is resolved again (``os.path.realpath``) so a link created by an earlier member
cannot redirect a later one outside the destination.  Extraction goes into a fresh directory the
caller supplies (normally a staging directory that is renamed into place afterwards).
"""
from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["UnsafeArchiveError", "safe_extract", "archive_kind"]


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the destination, or is not a regular file/dir/link."""


def archive_kind(path: str | os.PathLike) -> str:
    """``"zip"`` or ``"tar"`` from the file's content (not its name)."""
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise UnsafeArchiveError(f"{path}: neither a zip nor a tar archive")


def _clean_name(archive: Path, name: str) -> PurePosixPath:
    """Validate a member name; return it as a relative POSIX path (``PurePosixPath('.')`` for the root)."""
    raw = name.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":") or "\x00" in raw:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains '..'")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _inside(base: str, path: str) -> bool:
    return path == base or path.startswith(base + os.sep)


def _check_link(archive: Path, dest_real: str, member: PurePosixPath, target: str, hard: bool) -> None:
    t = target.replace("\\", "/")
    if t.startswith("/") or (len(t) > 1 and t[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: link {member} -> {target!r} is absolute")
    # hard links are relative to the archive root, symlinks to the link's folder
    start = dest_real if hard else os.path.join(dest_real, *member.parent.parts)
    resolved = os.path.normpath(os.path.join(start, *t.split("/")))
    if not _inside(dest_real, resolved):
        raise UnsafeArchiveError(f"{archive}: link {member} -> {target!r} points outside the destination")


def _target(dest_real: str, archive: Path, rel: PurePosixPath) -> str:
    """Destination path of a member, re-checked through any links already on disk."""
    path = os.path.join(dest_real, *rel.parts)
    parent_real = os.path.realpath(os.path.dirname(path))
    if not _inside(dest_real, parent_real):
        raise UnsafeArchiveError(f"{archive}: member {rel} would be written outside the destination (via a link)")
    return os.path.join(parent_real, os.path.basename(path))


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Extract ``archive`` (zip or tar, any compression tarfile reads) into the directory ``dest``.

    Returns:
        The relative member names written (files, directories, links).

    Raises:
        UnsafeArchiveError: the first offending member.  Name and link-target checks run before
            anything is written; the write-time and final link checks (links chained through
            other links) may leave partial output, so extract into a staging folder and discard it
            on error (as :func:`oodbench.datasets.download.install_archive` does).
    """
    archive = Path(archive)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest_real = os.path.realpath(dest)
    kind = archive_kind(archive)
    written = _extract_zip(archive, dest_real) if kind == "zip" else _extract_tar(archive, dest_real)
    for rel in written:  # every link, followed through all other links, must stay inside
        path = os.path.join(dest_real, *PurePosixPath(rel).parts)
        if os.path.islink(path) and not _inside(dest_real, os.path.realpath(path)):
            raise UnsafeArchiveError(f"{archive}: link {rel} resolves outside the destination")
    return written


def _extract_zip(archive: Path, dest_real: str) -> list[str]:
    with zipfile.ZipFile(archive) as zf:
        plan = []
        for info in zf.infolist():
            rel = _clean_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8", "surrogateescape")
                _check_link(archive, dest_real, rel, target, hard=False)
                plan.append((rel, "link", info, target))
            elif info.is_dir():
                plan.append((rel, "dir", info, None))
            elif mode and not stat.S_ISREG(mode) and stat.S_IFMT(mode) != 0:
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is not a regular file")
            else:
                plan.append((rel, "file", info, None))
        written = []
        for rel, kind, info, target in plan:
            if str(rel) == ".":
                continue
            path = _target(dest_real, archive, rel)
            if kind == "dir":
                os.makedirs(path, exist_ok=True)
            elif kind == "link":
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.symlink(target, path)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with zf.open(info) as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            written.append(str(rel))
    return written


def _extract_tar(archive: Path, dest_real: str) -> list[str]:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        plan = []
        for m in members:
            rel = _clean_name(archive, m.name)
            if m.issym() or m.islnk():
                _check_link(archive, dest_real, rel, m.linkname, hard=m.islnk())
            elif not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device, FIFO or other special file")
            plan.append((rel, m))
        written = []
        for rel, m in plan:
            if str(rel) == ".":
                continue
            path = _target(dest_real, archive, rel)
            if m.isdir():
                os.makedirs(path, exist_ok=True)
            elif m.issym():
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.symlink(m.linkname, path)
            elif m.islnk():
                src = _target(dest_real, archive, _clean_name(archive, m.linkname))
                if not os.path.isfile(src) or os.path.islink(src):
                    raise UnsafeArchiveError(f"{archive}: hard link {m.name!r} -> {m.linkname!r} has no regular target")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                shutil.copyfile(src, path)  # a copy: never a real hard link to anything
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                src = tf.extractfile(m)
                if src is None:  # pragma: no cover - isfile() members always have data
                    raise UnsafeArchiveError(f"{archive}: cannot read member {m.name!r}")
                with src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                os.chmod(path, 0o644 | (0o111 if m.mode & 0o111 else 0))
            written.append(str(rel))
    return written
