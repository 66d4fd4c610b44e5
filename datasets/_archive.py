"""Safe extraction of zip and tar archives: regular files and folders only, never through a link.

Policy (issue #12): a link target checked as text says nothing about links already on disk — a
chain such as ``b -> .``, ``b/c -> .``, ``b/c/d -> .``, ``b/c/d/e -> ../../..``, ``f -> b/c/d/e/X``
passes every textual check yet lets a later regular member ``f`` write ``X`` three folders above the
destination.  No benchmark archive needs links, so none are created:

1. *Plan* (before anything is written): every member must be a regular file or a folder with a
   relative name free of ``..``; symbolic links, hard links, devices, FIFOs and absolute names are
   refused with :class:`UnsafeArchiveError` naming the archive and the member.
2. *Write* into a fresh destination folder (it must not exist, or be empty), walking each member's
   path one folder at a time with ``O_NOFOLLOW`` file descriptors and creating files with
   ``O_EXCL | O_NOFOLLOW``, so a link that appears on disk anyway (another process) is never followed.
3. *Verify after each member*: the written path, resolved, is exactly where the member belongs and is
   a regular file (or folder) of the member's size; the first member that fails stops the extraction.

Callers extract into a staging folder and rename it into place only when every member passed (as
:func:`oodbench.datasets.download.install_archive` does), so a refused archive never looks installed.
POSIX only (``dir_fd`` support), like the rest of the data tooling.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Callable

from oodbench.errors import OodbenchError

__all__ = ["UnsafeArchiveError", "safe_extract", "archive_kind"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class UnsafeArchiveError(OodbenchError, ValueError):
    """An archive member is not a plain file or folder inside the destination (message names it)."""


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


# one planned member: (name in the archive, cleaned path, "file" | "dir", size, exec bit, opener)
_Plan = tuple[str, PurePosixPath, str, int, bool, Callable[[], IO[bytes]]]


def _plan_zip(archive: Path, zf: zipfile.ZipFile) -> list[_Plan]:
    plan = []
    for info in zf.infolist():
        rel = _clean_name(archive, info.filename)
        fmt = stat.S_IFMT(info.external_attr >> 16)  # 0 when the creator stored no Unix mode
        if fmt == stat.S_IFLNK:
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link "
                                     "(links are never extracted)")
        if info.is_dir():
            if fmt not in (0, stat.S_IFDIR):
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is not a regular file or folder")
            plan.append((info.filename, rel, "dir", 0, False, lambda: None))
        elif fmt in (0, stat.S_IFREG):
            plan.append((info.filename, rel, "file", info.file_size, False,
                         lambda info=info: zf.open(info)))
        else:
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a device, FIFO or other special file")
    return plan


def _plan_tar(archive: Path, tf: tarfile.TarFile) -> list[_Plan]:
    plan = []
    for m in tf.getmembers():
        rel = _clean_name(archive, m.name)
        if m.issym() or m.islnk():
            what = "symbolic" if m.issym() else "hard"
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a {what} link -> {m.linkname!r} "
                                     "(links are never extracted)")
        if m.isdir():
            plan.append((m.name, rel, "dir", 0, False, lambda: None))
        elif m.isfile():
            plan.append((m.name, rel, "file", m.size, bool(m.mode & 0o111),
                         lambda m=m: tf.extractfile(m)))
        else:
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device, FIFO or other special file")
    return plan


def _fresh_destination(dest: Path) -> None:
    """Refuse a destination that is a link, a file, or a folder with content."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeArchiveError(f"{dest}: the destination is a symbolic link; extract into a fresh folder")
    if not stat.S_ISDIR(st.st_mode) or any(dest.iterdir()):
        raise UnsafeArchiveError(f"{dest}: the destination exists and is not empty; extract into a fresh folder")


def _open_dir(dir_fd: int, parts: tuple[str, ...], refuse: Callable[[str], Exception]) -> int:
    """Descend ``parts`` below ``dir_fd`` (creating folders), never following a link; a new fd."""
    fd = os.dup(dir_fd)
    try:
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                # Linux answers ENOTDIR (not ELOOP) for a link when O_DIRECTORY is set: look again
                is_link = stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode)
                raise refuse(f"passes through {part!r}, " + (
                    "a symbolic link on disk (not followed)" if is_link else "a file, not a folder")) from None
            os.close(fd)
            fd = sub
        return fd
    except BaseException:
        os.close(fd)
        raise


def _write_file(dir_fd: int, name: str, src: IO[bytes], exec_bit: bool) -> None:
    """Create ``name`` in ``dir_fd`` (it must not exist; links are not followed) and copy ``src`` in."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755 if exec_bit else 0o644,
                 dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def _verify(dest_real: str, rel: PurePosixPath, kind: str, size: int, refuse: Callable[[str], Exception]) -> None:
    """After writing: the member sits exactly where it belongs, as a plain file of its size or a folder."""
    path = os.path.join(dest_real, *rel.parts)
    real = os.path.realpath(path)
    if real != path:
        raise refuse(f"was written to {real}, not {path}")
    st = os.lstat(path)
    if kind == "dir" and not stat.S_ISDIR(st.st_mode):
        raise refuse("is not a folder on disk after extraction")
    if kind == "file" and (not stat.S_ISREG(st.st_mode) or st.st_size != size):
        raise refuse(f"is not a regular file of {size} bytes on disk after extraction")


def _write(archive: Path, dest: Path, plan: list[_Plan]) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    dest_real = os.path.realpath(dest)
    root_fd = os.open(dest_real, _DIR_FLAGS)
    written = []
    try:
        for name, rel, kind, size, exec_bit, opener in plan:
            if str(rel) == ".":
                continue

            def refuse(why: str, name: str = name) -> UnsafeArchiveError:
                return UnsafeArchiveError(f"{archive}: member {name!r} {why}")

            if kind == "dir":
                os.close(_open_dir(root_fd, rel.parts, refuse))
            else:
                dir_fd = _open_dir(root_fd, rel.parts[:-1], refuse)
                try:
                    try:
                        old = os.stat(rel.name, dir_fd=dir_fd, follow_symlinks=False)
                    except FileNotFoundError:
                        old = None
                    if old is not None:
                        if not stat.S_ISREG(old.st_mode):
                            raise refuse("would replace something that is not a regular file")
                        os.unlink(rel.name, dir_fd=dir_fd)  # a later copy of a member wins (as tar -x)
                    src = opener()
                    if src is None:  # pragma: no cover - regular members always have data
                        raise refuse("has no data")
                    with src:
                        try:
                            _write_file(dir_fd, rel.name, src, exec_bit)
                        except FileExistsError:
                            raise refuse("appeared on disk while extracting (not overwritten)") from None
                        except OSError as exc:
                            if exc.errno == errno.ELOOP:
                                raise refuse("is a symbolic link on disk (not followed)") from None
                            raise
                finally:
                    os.close(dir_fd)
            _verify(dest_real, rel, kind, size, refuse)
            written.append(str(rel))
    finally:
        os.close(root_fd)
    return written


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[str]:
    """Extract ``archive`` (zip or tar, any compression tarfile reads) into the fresh folder ``dest``.

    Returns:
        The relative names of the members written (files and folders), in archive order.

    Raises:
        UnsafeArchiveError: ``dest`` is not fresh, or the first offending member (named).  Member
            kinds and names are checked before anything is written (``dest`` is then not even
            created); a member that fails while writing or its after-write verification leaves the
            members before it in ``dest``, so extract into a staging folder and discard it on error.
    """
    archive = Path(archive)
    dest = Path(dest)
    _fresh_destination(dest)
    if archive_kind(archive) == "zip":
        with zipfile.ZipFile(archive) as zf:
            return _write(archive, dest, _plan_zip(archive, zf))
    with tarfile.open(archive) as tf:
        return _write(archive, dest, _plan_tar(archive, tf))
