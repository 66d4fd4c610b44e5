"""Downloads against a local HTTP server on 127.0.0.1 (random port) serving archives built here:
resume after an interrupted transfer (HTTP Range), servers that ignore Range, wrong checksums,
path-traversal / absolute / link-escape archives, idempotent installs, nothing left half-written."""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from oodbench.cli import main as cli_main
from oodbench.datasets import _archive as _archive_mod
from oodbench.datasets import download as dl
from oodbench.datasets._archive import UnsafeArchiveError, safe_extract


class _Server:
    """Serves ``files``; ``cut[name] = n`` closes the first response for ``name`` after n body bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):  # the http.server API name
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                outer.requests.append((name, rng))
                if name not in outer.files:
                    self.send_error(404)
                    return
                data = outer.files[name]
                start = 0
                if rng and not outer.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                n = outer.cut.pop(name, None)
                if n is not None:  # an interrupted transfer: part of the body, then a dead connection
                    self.wfile.write(body[:n])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = _Server()
    yield s
    s.close()


def _zip(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def _tar(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def _archive(name: str, data: bytes, dest: str, **kw) -> dl.Archive:
    return dl.Archive(name, (), dest, size=len(data), sha256=hashlib.sha256(data).hexdigest(), **kw)


def _leftovers(root: Path) -> list[str]:
    """Temporary files/folders that must not survive a finished or failed install."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.startswith((".extract-", ".tmp-")) or p.name.endswith(".part"))


def _quiet(_msg: str) -> None:
    pass


# ------------------------------------------------------------------------------------ transfers
def test_resume_after_interrupted_transfer(server, tmp_path):
    data = os.urandom(300_000)
    server.files["big.bin"] = data
    server.cut["big.bin"] = 100_000
    out = dl.fetch(f"{server.url}/big.bin", tmp_path / "big.bin", size=len(data),
                   sha256=hashlib.sha256(data).hexdigest(), retries=2, backoff=0, progress=False, log=_quiet)
    assert out.read_bytes() == data
    assert server.requests[0] == ("big.bin", None)
    # the retry asked only for the missing tail
    name, rng = server.requests[1]
    start = int(rng.removeprefix("bytes=").removesuffix("-"))
    assert name == "big.bin" and start == 100_000 and len(server.requests) == 2
    assert not (tmp_path / "big.bin.part").exists()


def test_server_ignoring_range_restarts_the_file(server, tmp_path):
    data = os.urandom(50_000)
    server.files["f.bin"] = data
    server.cut["f.bin"] = 20_000
    server.ignore_range = True
    out = dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", size=len(data),
                   md5=hashlib.md5(data).hexdigest(), retries=1, backoff=0, progress=False, log=_quiet)
    assert out.read_bytes() == data  # not 20 kB of old bytes + the full file appended


def test_complete_part_file_is_not_fetched_again(server, tmp_path):
    data = b"x" * 1000
    server.files["f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data)
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", size=len(data), retries=0, progress=False, log=_quiet)
    assert server.requests == [("f.bin", "bytes=1000-")]
    assert (tmp_path / "f.bin").read_bytes() == data


def test_wrong_checksum_is_rejected_and_deleted(server, tmp_path):
    server.files["f.bin"] = b"payload"
    with pytest.raises(dl.ChecksumError, match="sha256"):
        dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256="0" * 64, retries=0, progress=False, log=_quiet)
    assert list(tmp_path.iterdir()) == []


def test_not_found_fails_without_retrying(server, tmp_path):
    with pytest.raises(dl.DownloadError, match="404"):
        dl.fetch(f"{server.url}/missing.zip", tmp_path / "m.zip", retries=3, backoff=0, progress=False, log=_quiet)
    assert len(server.requests) == 1


def test_retries_exhausted_keeps_part_for_later_resume(server, tmp_path):
    data = os.urandom(10_000)
    server.files["f.bin"] = data
    server.cut["f.bin"] = 4_000
    with pytest.raises(dl.DownloadError, match="giving up"):
        dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", size=len(data), retries=0, progress=False, log=_quiet)
    assert not (tmp_path / "f.bin").exists()
    assert (tmp_path / "f.bin.part").stat().st_size == 4_000
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", size=len(data), retries=0, progress=False, log=_quiet)
    assert (tmp_path / "f.bin").read_bytes() == data


# ------------------------------------------------------------------------------------ installs
def test_install_zip_strips_own_top_folder_and_is_idempotent(server, tmp_path):
    data = _zip({"dataset_X/images/a.jpg": b"A", "dataset_X/labels/a.png": b"L"})
    server.files["x.zip"] = data
    arch = _archive("x.zip", data, "dataset_X")
    dest = dl.install_archive(arch, tmp_path, base_url=server.url, progress=False, backoff=0, log=_quiet)
    assert dest == tmp_path / "dataset_X"
    assert (dest / "images" / "a.jpg").read_bytes() == b"A"
    assert not (tmp_path / ".downloads" / "x.zip").exists()  # archive removed after install
    n = len(server.requests)
    dl.install_archive(arch, tmp_path, base_url=server.url, log=_quiet)
    assert len(server.requests) == n  # marker present: nothing fetched again
    assert _leftovers(tmp_path) == []


def test_install_tar_without_top_folder_merges_into_dest(server, tmp_path):
    test_tar = _tar([("test/images/test/t5/0000.png", b"i"), ("test/annotations/test/t5/0000.png", b"a")])
    train_tar = _tar([("train/images/training/t1/0.png", b"t")])
    server.files["sh_test.tar"], server.files["sh_train.tar"] = test_tar, train_tar
    for name, data in (("sh_test.tar", test_tar), ("sh_train.tar", train_tar)):
        dl.install_archive(_archive(name, data, "StreetHazards"), tmp_path, base_url=server.url,
                           progress=False, log=_quiet)
    root = tmp_path / "StreetHazards"
    assert (root / "test/images/test/t5/0000.png").read_bytes() == b"i"
    assert (root / "train/images/training/t1/0.png").read_bytes() == b"t"
    assert _leftovers(tmp_path) == []


def test_install_refuses_to_overwrite_existing_content(server, tmp_path):
    data = _tar([("test/x.png", b"new")])
    server.files["a.tar"] = data
    (tmp_path / "D" / "test").mkdir(parents=True)
    (tmp_path / "D" / "test" / "x.png").write_bytes(b"old")
    with pytest.raises(dl.DownloadError, match="already holds"):
        dl.install_archive(_archive("a.tar", data, "D"), tmp_path, base_url=server.url, progress=False, log=_quiet)
    assert (tmp_path / "D" / "test" / "x.png").read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("case", ["dotdot", "absolute", "zip_symlink", "tar_symlink", "tar_hardlink",
                                  "chained_links", "device"])
def test_unsafe_archives_are_rejected_and_nothing_is_placed(server, tmp_path, case):
    if case == "dotdot":
        data = _zip({"ok.txt": b"1", "../evil.txt": b"x"})
    elif case == "absolute":
        data = _tar([("ok.txt", b"1"), ("/tmp/evil.txt", b"x")])
    elif case == "zip_symlink":
        data = _zip({"ok.txt": b"1"}, links={"escape": "../../outside"})
    elif case == "tar_symlink":
        data = _tar([("ok.txt", b"1"), _link("escape", "../outside"), ("escape/evil.txt", b"x")])
    elif case == "tar_hardlink":
        data = _tar([("ok.txt", b"1"), _link("pw", "../../etc/passwd", hard=True)])
    elif case == "chained_links":  # each link looks harmless on its own; together they leave the folder
        data = _tar([_link("d", "."), _link("e", "d/.."), ("e/evil.txt", b"x")])
    else:
        dev = tarfile.TarInfo("dev")
        dev.type = tarfile.CHRTYPE
        data = _tar([dev])
    root = tmp_path / "root"
    root.mkdir()
    server.files["bad.zip"] = data
    with pytest.raises(UnsafeArchiveError):
        dl.install_archive(_archive("bad.zip", data, "dataset_Bad"), root, base_url=server.url,
                           progress=False, log=_quiet)
    assert not (root / "dataset_Bad").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "outside").exists()
    assert _leftovers(root) == []


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


#: issue #12 item 1: each link checked as text stays inside; on disk ``e`` is three folders up, so a
#: regular member ``f`` written through ``f -> b/c/d/e/NAME`` lands outside the data root
_CHAIN = [("b", "."), ("b/c", "."), ("b/c/d", "."), ("b/c/d/e", "../../.."), ("f", "b/c/d/e/NAME")]


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_symlink_chain_cannot_write_outside_through_the_cli(server, tmp_path, capsys, kind):
    """The exact chain of issue #12, served as ``dataset_AnomalyTrack.zip`` (no published checksum,
    so any bytes a mirror serves are accepted) and installed by ``oodbench download``."""
    if kind == "tar":
        data = _tar([_link(name, target) for name, target in _CHAIN] + [("f", b"pwned")])
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, target in _CHAIN:
                info = zipfile.ZipInfo(name)
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, target)
            zf.writestr("f", b"pwned")
        data = buf.getvalue()
    root = tmp_path / "a" / "b" / "root"  # room for "../../.." to land somewhere we can watch
    root.mkdir(parents=True)
    server.files["dataset_AnomalyTrack.zip"] = data
    code = cli_main(["download", "smiyc-anomaly", "--data-root", str(root), "--base-url", server.url,
                     "--retries", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert not any(p.name == "NAME" for p in tmp_path.rglob("*"))
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"pwned"] == []
    assert "member 'b'" in err and "symbolic link" in err and err.count("\n") == 1  # one line
    assert not (root / "dataset_AnomalyTrack").exists() and _leftovers(root) == []


@pytest.mark.parametrize("case", ["hardlink_inside", "symlink_inside", "parent_is_symlink", "absolute", "dotdot",
                                  "device", "fifo"])
def test_unsafe_member_kinds_are_refused_with_the_member_named(tmp_path, case):
    """Links are never created (no benchmark archive needs them): a link target checked as text says
    nothing about links already on disk, so even a harmless-looking link is refused."""
    special = tarfile.TarInfo("special")
    special.type = tarfile.CHRTYPE if case == "device" else tarfile.FIFOTYPE
    members, bad = {
        "hardlink_inside": ([("a/f.txt", b"1"), _link("h.txt", "a/f.txt", hard=True)], "h.txt"),
        "symlink_inside": ([("a/f.txt", b"1"), _link("a/g.txt", "f.txt")], "a/g.txt"),
        "parent_is_symlink": ([("sub/x", b"1"), _link("l", "sub"), ("l/y", b"2")], "l"),
        "absolute": ([("ok", b"1"), ("/abs/evil", b"x")], "/abs/evil"),
        "dotdot": ([("ok", b"1"), ("a/../../evil", b"x")], "a/../../evil"),
        "device": ([("ok", b"1"), special], "special"),
        "fifo": ([("ok", b"1"), special], "special"),
    }[case]
    arch = tmp_path / "bad.tar"
    arch.write_bytes(_tar(members))
    with pytest.raises(UnsafeArchiveError, match=f"member {bad!r}"):
        safe_extract(arch, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    assert _tree(tmp_path) == ["bad.tar"]


def test_a_symlink_already_on_disk_is_never_followed(tmp_path, monkeypatch):
    """Per-member verification: a link that appears in the destination while extracting (another
    process, a race) stops the member that would pass through it, and nothing lands outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    arch = tmp_path / "ok.tar"
    arch.write_bytes(_tar([("a/one", b"1"), ("a/two", b"2"), ("b/three", b"3")]))
    real_write = _archive_mod._write_file

    def write_then_plant(dir_fd, name, src, exec_bit):
        real_write(dir_fd, name, src, exec_bit)
        if name == "two":  # after a/two: replace the not yet created folder b by a link outside
            os.symlink(outside, tmp_path / "out" / "b")

    monkeypatch.setattr(_archive_mod, "_write_file", write_then_plant)
    with pytest.raises(UnsafeArchiveError, match="member 'b/three'.*symbolic link"):
        safe_extract(arch, tmp_path / "out")
    assert list(outside.iterdir()) == []


def test_safe_extract_needs_a_fresh_destination(tmp_path):
    arch = tmp_path / "ok.tar"
    arch.write_bytes(_tar([("x", b"1")]))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "old").write_bytes(b"")
    with pytest.raises(UnsafeArchiveError, match="not empty"):
        safe_extract(arch, tmp_path / "used")
    os.symlink(tmp_path / "used", tmp_path / "link")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract(arch, tmp_path / "link")


def test_safe_extract_writes_files_dirs_and_duplicates(tmp_path):
    empty = tarfile.TarInfo("empty")
    empty.type = tarfile.DIRTYPE
    script = tarfile.TarInfo("run.sh")
    script.mode, script.size = 0o755, 2
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, body in (("a/f.txt", b"1"), ("a/f.txt", b"2")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
        tf.addfile(empty)
        tf.addfile(script, io.BytesIO(b"#!"))
    arch = tmp_path / "ok.tar"
    arch.write_bytes(buf.getvalue())
    assert safe_extract(arch, tmp_path / "out") == ["a/f.txt", "a/f.txt", "empty", "run.sh"]
    assert (tmp_path / "out/a/f.txt").read_bytes() == b"2"  # a later copy replaces an earlier one (as tar -x)
    assert (tmp_path / "out/empty").is_dir()
    assert os.access(tmp_path / "out/run.sh", os.X_OK) and not os.access(tmp_path / "out/a/f.txt", os.X_OK)
    zarch = tmp_path / "ok.zip"
    zarch.write_bytes(_zip({"d/": b"", "d/x.bin": b"xyz"}))
    assert safe_extract(zarch, tmp_path / "zout") == ["d", "d/x.bin"]
    assert (tmp_path / "zout/d/x.bin").read_bytes() == b"xyz"


# ------------------------------------------------------------------------------------ table + CLI
def test_table_entry_with_wrong_bytes_is_rejected(server, tmp_path):
    """``download('fishyscapes-laf')`` from a mirror serving other bytes fails the published size/sha256."""
    server.files["fishyscapes_lostandfound.zip"] = _zip({"0000_x_labels.png": b"not the real archive"})
    with pytest.raises(dl.ChecksumError, match="size"):
        dl.download("fishyscapes-laf", tmp_path, base_url=server.url, progress=False, log=_quiet)
    assert not (tmp_path / "fishyscapes_lostandfound").exists()
    assert _leftovers(tmp_path) == []


def test_table_without_checksum_warns_with_digest(server, tmp_path):
    data = _zip({"RoadAnomaly_jpg/frame_list.json": b"[]"})
    server.files["RoadAnomaly_jpg.zip"] = data
    lines: list[str] = []
    dl.download("road-anomaly", tmp_path, base_url=server.url, progress=False, log=lines.append)
    assert (tmp_path / "RoadAnomaly_jpg" / "frame_list.json").read_bytes() == b"[]"
    warning = next(line for line in lines if line.startswith("warning"))
    assert hashlib.sha256(data).hexdigest() in warning and "MISMATCH" in warning


def test_unpublished_checksum_is_recorded_and_a_changed_archive_is_refused(server, tmp_path, capsys):
    """No published checksum: the first install records sha256, size and URL in the data root; after
    the dataset folder is deleted, a mirror serving other bytes is refused naming both digests."""
    v1 = _zip({"dataset_AnomalyTrack/images/a.jpg": b"first"})
    v2 = _zip({"dataset_AnomalyTrack/images/a.jpg": b"changed"})
    d1, d2 = hashlib.sha256(v1).hexdigest(), hashlib.sha256(v2).hexdigest()
    server.files["dataset_AnomalyTrack.zip"] = v1
    dl.download("smiyc-anomaly", tmp_path, base_url=server.url, progress=False, log=_quiet)
    record_path = tmp_path / ".oodbench-download-dataset_AnomalyTrack.zip.observed.json"
    record = json.loads(record_path.read_text())
    assert (record["sha256"], record["size"], record["url"]) == (d1, len(v1), f"{server.url}/dataset_AnomalyTrack.zip")
    dest = tmp_path / "dataset_AnomalyTrack"
    assert json.loads((dest / ".oodbench-download-dataset_AnomalyTrack.zip.json").read_text())["sha256"] == d1

    shutil.rmtree(dest)  # reinstall: the same bytes are accepted
    dl.download("smiyc-anomaly", tmp_path, base_url=server.url, progress=False, log=_quiet)
    assert (dest / "images" / "a.jpg").read_bytes() == b"first"

    shutil.rmtree(dest)
    server.files["dataset_AnomalyTrack.zip"] = v2
    code = cli_main(["download", "smiyc-anomaly", "--data-root", str(tmp_path), "--base-url", server.url,
                     "--retries", "0"])
    err = capsys.readouterr().err
    assert code == 1 and d1 in err and d2 in err and str(record_path) in err
    assert not dest.exists() and json.loads(record_path.read_text()) == record
    kept = tmp_path / ".downloads" / "dataset_AnomalyTrack.zip"
    assert kept.read_bytes() == v2  # kept, so accepting the change needs no second transfer
    with pytest.raises(dl.DigestChangedError):  # a rerun does not slip through with the kept file
        dl.download("smiyc-anomaly", tmp_path, base_url=server.url, progress=False, log=_quiet)

    record_path.unlink()  # the user accepts the change
    n = len(server.requests)
    dl.download("smiyc-anomaly", tmp_path, base_url=server.url, progress=False, log=_quiet)
    assert len(server.requests) == n and (dest / "images" / "a.jpg").read_bytes() == b"changed"
    assert json.loads(record_path.read_text())["sha256"] == d2
    assert _leftovers(tmp_path) == []


def test_published_checksum_needs_no_record(server, tmp_path):
    data = _zip({"x.txt": b"1"})
    server.files["p.zip"] = data
    dl.install_archive(_archive("p.zip", data, "P"), tmp_path, base_url=server.url, progress=False, log=_quiet)
    assert (tmp_path / "P" / "x.txt").read_bytes() == b"1"
    assert not list(tmp_path.glob("*.observed.json"))


def test_every_table_entry_is_well_formed():
    for name, src in dl.SOURCES.items():
        assert bool(src.manual) != bool(src.archives), name
        for a in src.archives:
            assert a.urls and a.dest and a.filename and a.source, name
            assert a.sha256 is None or len(a.sha256) == 64
            assert a.md5 is None or len(a.md5) == 32


@pytest.mark.parametrize("name,needle", [("cityscapes", "gtFine_trainvaltest.zip"),
                                         ("lostandfound", "53b6d3ab000f08b1fb59d70c1398eecc4d82a7baf4e9cf74fbf60d1858abe9ac")])
def test_registration_datasets_print_instructions(tmp_path, capsys, name, needle):
    with pytest.raises(dl.ManualDownloadRequired, match=needle):
        dl.download(name, tmp_path)
    parser = argparse.ArgumentParser()
    dl.add_download_parser(parser.add_subparsers())
    args = parser.parse_args(["download", name, "--data-root", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert needle in out and str(tmp_path) in out


def test_cli_handler_downloads(server, tmp_path):
    data = _zip({"StreetHazards/x.txt": b"1"})
    server.files["streethazards_test.tar"] = data  # md5 differs from the published one
    parser = argparse.ArgumentParser()
    dl.add_download_parser(parser.add_subparsers())
    args = parser.parse_args(["download", "streethazards", "--data-root", str(tmp_path), "--base-url", server.url,
                              "--retries", "0"])
    assert args.func(args) == 1  # checksum mismatch -> error exit, nothing installed
    assert not (tmp_path / "StreetHazards").exists()
