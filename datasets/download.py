"""``oodbench download DATASET``: fetch the public archives safely.

For each archive (URLs, sizes and checksums from ``docs/benchmarks.md`` §1):

1. stream it with ``requests`` into ``<data root>/.downloads/<file>.part`` with a tqdm bar;
2. after an interrupted transfer, resume with an HTTP ``Range`` request (a server that answers
   ``200`` instead of ``206`` restarts the file); retry with exponential backoff, then try the next
   mirror;
3. verify the size and the published sha256 (or md5); a mismatch deletes the file.  Archives
   without a published checksum are accepted with a warning that prints their sha256, and the
   sha256, size and URL are recorded in ``<data root>/.oodbench-download-<file>.observed.json``
   (trust on first use).  A later download whose sha256 differs from that record is refused with
   :class:`DigestChangedError` naming both digests — an error, not a warning, because results
   computed on the earlier bytes would otherwise sit next to results on different data with nothing
   telling them apart; the record lives in the data root (not in the dataset folder) so it survives
   deleting the dataset to reinstall it;
4. extract with :func:`oodbench.datasets._archive.safe_extract` into a staging folder next to the
   destination, then move it into place with ``os.rename`` and write a completion marker
   ``<dest>/.oodbench-download-<file>.json``; a second run with the marker present does nothing.

Cityscapes and Lost & Found need a registration (or have a dead host): ``download`` raises
:class:`ManualDownloadRequired`, whose message says what to fetch and where to put it.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from oodbench.atomic import atomic_write_json
from oodbench.cli_config import add_command, arg
from oodbench.errors import OodbenchError

from ._archive import safe_extract

__all__ = [
    "DownloadConfig",
    "Archive",
    "Source",
    "SOURCES",
    "DownloadError",
    "ChecksumError",
    "DigestChangedError",
    "ManualDownloadRequired",
    "download",
    "fetch",
    "install_archive",
    "file_digest",
    "add_download_parser",
    "run_download",
]

_FS = "http://robotics.ethz.ch/~asl-datasets/Fishyscapes/"
_LAF = "http://www.dhbw-stuttgart.de/~sgehrig/lostAndFoundDataset/"


@dataclass(frozen=True)
class Archive:
    """One downloadable archive.

    Attributes:
        filename: file name (also the name requested under ``base_url``).
        urls: mirrors, tried in order.
        dest: folder under the data root that receives the content.  A single top-level folder
            of the same name inside the archive is stripped; other content goes inside ``dest``.
        size: published size in bytes (``None``: unknown).
        sha256 / md5: published checksums (sha256 preferred).
        source: where size/checksums come from.
        unverified_md5: a checksum of unclear provenance: compared and reported, never enforced.
    """

    filename: str
    urls: tuple[str, ...]
    dest: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    source: str = ""
    unverified_md5: str | None = None


@dataclass(frozen=True)
class Source:
    """A dataset: its archives, or manual instructions when a registration is needed."""

    name: str
    archives: tuple[Archive, ...] = ()
    manual: str | None = None
    note: str = ""


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("smiyc-anomaly", (Archive(
        "dataset_AnomalyTrack.zip",
        ("https://zenodo.org/record/5270237/files/dataset_AnomalyTrack.zip?download=1",
         "http://robotics.ethz.ch/~asl-datasets/2021_SegmentMeIfYouCan/dataset_RoadAnomalyTrack.zip",
         "https://uni-wuppertal.sciebo.de/s/TVR7VxukVrV7fUH/download"),
        "dataset_AnomalyTrack", source="SegmentMeIfYouCan/segment-me-if-you-can:datasets.html (no checksum published)"),),
        note="SMIYC AnomalyTrack (RoadAnomaly21): 10 validation + 100 test images"),
    Source("smiyc-obstacle", (Archive(
        "dataset_ObstacleTrack.zip",
        ("https://zenodo.org/record/5281633/files/dataset_ObstacleTrack.zip?download=1",
         "http://robotics.ethz.ch/~asl-datasets/2021_SegmentMeIfYouCan/dataset_ObstacleTrack.zip",
         "https://uni-wuppertal.sciebo.de/s/wQQq2saipS339QA/download"),
        "dataset_ObstacleTrack", source="SegmentMeIfYouCan/segment-me-if-you-can:datasets.html (no checksum published)"),),
        note="SMIYC ObstacleTrack (RoadObstacle21)"),
    Source("fishyscapes-laf", (Archive(
        "fishyscapes_lostandfound.zip", (_FS + "fishyscapes_lostandfound.zip",), "fishyscapes_lostandfound",
        size=729_335, sha256="f0078e89f0a147060a0864feb90e8b523313a2723b1b764bce638dc425473094",
        md5="0d3bf7c0ec38bd50b84f3d8aaa4b2e26",
        source="hermannsblum/bdl-benchmark:bdlb/core/url_checksums/fishyscapes.txt"),),
        note="labels only; the images come from Lost & Found (`oodbench download lostandfound`)"),
    Source("fishyscapes-static", (Archive(
        "fs_val_v3.zip", (_FS + "fs_val_v3.zip",), "fs_val_v3",
        size=8_046_056, sha256="3813994ccb73645d28aa53946646a03d859dbeb9a2d31ad7233e45db00878b8f",
        md5="0dc11db9e57088c5bb18de4c55a53f3a",
        source="hermannsblum/bdl-benchmark:bdlb/core/url_checksums/fishyscapes.txt"),),
        note="overlays only; the base images are Cityscapes val (`oodbench download cityscapes`)"),
    Source("road-anomaly", (Archive(
        "RoadAnomaly_jpg.zip", ("https://datasets-cvlab.epfl.ch/2019-road-anomaly/RoadAnomaly_jpg.zip",),
        "RoadAnomaly_jpg", unverified_md5="87a0908e5c72827824693913cf2e4fb0",
        source="no official checksum; md5 from an unidentified third-party loader (docs/benchmarks.md §1.6)"),),
        note="RoadAnomaly (Lis et al. 2019), 60 frames"),
    Source("streethazards", (Archive(
        "streethazards_test.tar", ("https://people.eecs.berkeley.edu/~hendrycks/streethazards_test.tar",),
        "StreetHazards", md5="8c547c1346b00c21b2483887110bfea7",
        source="kkirchheim/pytorch-ood:src/pytorch_ood/dataset/img/streethazards.py"),),
        note="StreetHazards test (towns t5, t6)"),
    Source("streethazards-train", (Archive(
        "streethazards_train.tar", ("https://people.eecs.berkeley.edu/~hendrycks/streethazards_train.tar",),
        "StreetHazards", md5="cd2d1a8649848afb85b5059d227d2090",
        source="kkirchheim/pytorch-ood:src/pytorch_ood/dataset/img/streethazards.py"),),
        note="StreetHazards train/validation"),
    Source("coco", (
        Archive("annotations_trainval2017.zip", ("http://images.cocodataset.org/annotations/annotations_trainval2017.zip",),
                "coco", source="cocodataset.org (no checksum published)"),
        Archive("train2017.zip", ("http://images.cocodataset.org/zips/train2017.zip",), "coco",
                source="cocodataset.org (no checksum published)"),
    ), note="COCO 2017 train images + annotations (outlier source); then run `oodbench prepare coco-ood`"),
    Source("cityscapes", manual=(
        "Cityscapes needs a (free) registration at https://www.cityscapes-dataset.com/ .\n"
        "Download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip (in a browser, or with the\n"
        "installed cityscapesscripts: `csDownload leftImg8bit_trainvaltest.zip gtFine_trainvaltest.zip`)\n"
        "and unzip both into {root}/cityscapes/ so that these exist:\n"
        "  {root}/cityscapes/leftImg8bit/{{train,val}}/<city>/<city>_<seq>_<frame>_leftImg8bit.png\n"
        "  {root}/cityscapes/gtFine/{{train,val}}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png\n"
        "Train ids (*_gtFine_labelTrainIds.png) are optional: oodbench maps label ids with the\n"
        "cityscapesscripts table when they are absent (`CITYSCAPES_DATASET={root}/cityscapes\n"
        "csCreateTrainIdLabelImgs` writes them once). Fishyscapes Static uses the val images.")),
    Source("lostandfound", manual=(
        "Lost & Found: the original host " + _LAF + " went offline in 2024\n"
        "(adynathos/road-anomaly-benchmark#7); obtain leftImg8bit.zip and gtCoarse.zip from a mirror and\n"
        "check them against the published sha256 (hermannsblum/bdl-benchmark:bdlb/core/url_checksums/lost_and_found.txt):\n"
        "  leftImg8bit.zip  5802953400 bytes  sha256 307f66002023ab597d309963b94990f5b9a8e5735ee729c3292647a66e9f2b18\n"
        "  gtCoarse.zip       37756896 bytes  sha256 53b6d3ab000f08b1fb59d70c1398eecc4d82a7baf4e9cf74fbf60d1858abe9ac\n"
        "(`sha256sum FILE`), then unzip both into {root}/dataset_LostAndFound/ so that these exist:\n"
        "  {root}/dataset_LostAndFound/leftImg8bit/{{train,test}}/<NN_scene>/<fid>_leftImg8bit.png\n"
        "  {root}/dataset_LostAndFound/gtCoarse/{{train,test}}/<NN_scene>/<fid>_gtCoarse_labelIds.png\n"
        "Fishyscapes L&F takes its images from here.")),
)}


class DownloadError(OodbenchError, RuntimeError):
    """A transfer failed after all retries and mirrors."""


class ChecksumError(DownloadError):
    """The downloaded file does not match its published size or checksum (it was deleted)."""


class DigestChangedError(DownloadError):
    """An archive without a published checksum differs from the one recorded on an earlier download."""


class ManualDownloadRequired(OodbenchError, RuntimeError):
    """The dataset cannot be fetched automatically; the message says what to do."""


class _Incomplete(IOError):
    pass


def file_digest(path: str | os.PathLike, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algo, usedforsecurity=False) if algo == "md5" else hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _retryable_status(code: int) -> bool:
    return code in (408, 425, 429) or code >= 500


def fetch(url: str, path: str | os.PathLike, *, size: int | None = None, sha256: str | None = None,
          md5: str | None = None, retries: int = 4, backoff: float = 1.0, timeout: float = 60.0,
          session=None, progress: bool | None = None, log: Callable[[str], None] = print) -> Path:
    """Download ``url`` to ``path`` (resuming ``path.part``) and verify it; return ``path``.

    Raises:
        DownloadError: the transfer kept failing (``retries`` retries, waits ``backoff * 2**k`` s).
        ChecksumError: size or checksum mismatch; the partial/bad file is removed.
    """
    import requests
    import urllib3
    from tqdm import tqdm

    path = Path(path)
    part = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    sess = session or requests.Session()
    last_exc: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            wait = backoff * 2 ** (attempt - 1)
            log(f"retrying {url} in {wait:.1f} s ({last_exc})")
            time.sleep(wait)
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:
            part.unlink()
            have = 0
        # identity encoding: Content-Length and Range then count the file's own bytes
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
        try:
            with sess.get(url, headers=headers, stream=True, timeout=timeout) as r:
                if r.status_code == 416 and have and (size is None or have == size):
                    break  # the .part is already complete
                if r.status_code >= 400:
                    if have and r.status_code == 416:
                        part.unlink()  # server disagrees about our partial file: restart
                        last_exc = DownloadError(f"{url}: HTTP 416 for a {have}-byte partial file")
                        continue
                    if not _retryable_status(r.status_code):
                        raise DownloadError(f"{url}: HTTP {r.status_code}")
                    last_exc = DownloadError(f"{url}: HTTP {r.status_code}")
                    continue
                start = 0
                if r.status_code == 206 and have:
                    cr = r.headers.get("Content-Range", "")
                    if not cr.startswith(f"bytes {have}-"):
                        raise _Incomplete(f"unexpected Content-Range {cr!r} for a resume at byte {have}")
                    start = have
                length = r.headers.get("Content-Length")
                total = start + int(length) if length is not None else None
                with open(part, "ab" if start else "wb") as fh, tqdm(
                        total=total, initial=start, unit="B", unit_scale=True, desc=path.name,
                        disable=None if progress is None else not progress) as bar:
                    # read1: hand over whatever arrived, so an interrupted transfer keeps every byte
                    while chunk := r.raw.read1(1 << 16, decode_content=False):
                        fh.write(chunk)
                        bar.update(len(chunk))
                got = part.stat().st_size
                if total is not None and got != total:
                    raise _Incomplete(f"received {got} of {total} bytes")
            break
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError, _Incomplete) as exc:
            last_exc = exc
    else:
        raise DownloadError(f"{url}: giving up after {retries + 1} attempts; last error: {last_exc}; "
                            f"the partial file {part} is kept for a later resume")
    _verify(part, url, size, sha256, md5)
    os.replace(part, path)
    return path


def _verify(part: Path, url: str, size: int | None, sha256: str | None, md5: str | None) -> None:
    got = part.stat().st_size
    problem = None
    if size is not None and got != size:
        problem = f"size {got} bytes, expected {size}"
    elif sha256 and (d := file_digest(part, "sha256")) != sha256.lower():
        problem = f"sha256 {d}, expected {sha256}"
    elif md5 and not sha256 and (d := file_digest(part, "md5")) != md5.lower():
        problem = f"md5 {d}, expected {md5}"
    if problem:
        part.unlink()
        raise ChecksumError(f"{url}: {problem}; the file was deleted (a corrupt or changed archive)")


def _marker(dest: Path, archive: Archive) -> Path:
    return dest / f".oodbench-download-{archive.filename}.json"


def _observed_record(root: Path, archive: Archive) -> Path:
    """Where the sha256 of an archive without a published checksum is kept between installs."""
    return root / f".oodbench-download-{archive.filename}.observed.json"


def _check_observed(root: Path, archive: Archive, file: Path, digest: str) -> dict | None:
    """Compare ``digest`` with the recorded one; return the record (``None``: first download)."""
    record_path = _observed_record(root, archive)
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
        recorded = str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DownloadError(f"{record_path}: unreadable digest record ({exc}); delete it to record the "
                            "archive afresh") from exc
    if recorded != digest:
        raise DigestChangedError(
            f"{archive.filename}: sha256 {digest} ({file.stat().st_size} bytes) differs from sha256 {recorded} "
            f"({record.get('size')} bytes, from {record.get('url')} on {record.get('downloaded')}) recorded in "
            f"{record_path}; the archive changed since it was first installed. Nothing was installed; the "
            f"download is kept as {file}. If the change is expected, delete {record_path} and rerun")
    return record


def install_archive(archive: Archive, data_root: str | os.PathLike, *, base_url: str | None = None,
                    keep_archive: bool = False, log: Callable[[str], None] = print, **fetch_kw) -> Path:
    """Download, verify and safely extract one archive into ``<data_root>/<archive.dest>``.

    Idempotent: a completion marker makes a second call return at once.  Nothing half-written is
    ever visible under ``dest``: extraction happens in a staging folder that is renamed into place.
    """
    root = Path(data_root).expanduser().absolute()
    dest = root / archive.dest
    if _marker(dest, archive).is_file():
        log(f"{archive.filename}: already installed in {dest}")
        return dest
    urls = (f"{base_url.rstrip('/')}/{archive.filename}",) if base_url else archive.urls
    file = root / ".downloads" / archive.filename
    errors = []
    fetched_from = None  # None: the archive was already in .downloads (kept from an earlier run)
    if not file.is_file():
        for url in urls:
            try:
                fetch(url, file, size=archive.size, sha256=archive.sha256, md5=archive.md5, log=log, **fetch_kw)
                fetched_from = url
                break
            except ChecksumError:
                raise
            except DownloadError as exc:
                errors.append(str(exc))
        else:
            raise DownloadError(f"{archive.filename}: every mirror failed:\n  " + "\n  ".join(errors))
    digest = file_digest(file)
    observed = None
    if not (archive.sha256 or archive.md5):
        observed = _check_observed(root, archive, file, digest)
        msg = f"warning: {archive.filename} has no published checksum ({archive.source}); its sha256 is {digest}"
        msg += (f" (as recorded on {observed.get('downloaded')})" if observed
                else f" (recorded in {_observed_record(root, archive)})")
        if archive.unverified_md5:
            md5 = file_digest(file, "md5")
            msg += (f"; a third-party md5 {archive.unverified_md5} is recorded, this file's md5 is {md5} "
                    f"({'match' if md5 == archive.unverified_md5 else 'MISMATCH'})")
        log(msg)
    staging = Path(tempfile.mkdtemp(prefix=f".extract-{archive.filename}-", dir=root))
    try:
        safe_extract(file, staging / "x")
        content = staging / "x"
        entries = list(content.iterdir())
        if len(entries) == 1 and entries[0].is_dir() and entries[0].name == archive.dest:
            content = entries[0]
        if not dest.exists():
            os.rename(content, dest)
        else:
            clash = [e.name for e in content.iterdir() if (dest / e.name).exists()]
            if clash:
                raise DownloadError(f"{archive.filename}: {dest} already holds {clash[:5]}; remove them "
                                    "(or the whole folder) to reinstall")
            for e in sorted(content.iterdir()):
                os.rename(e, dest / e.name)
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        size = file.stat().st_size
        atomic_write_json(_marker(dest, archive), {
            "file": archive.filename, "sha256": digest, "size": size, "url": fetched_from,
            "source": archive.source, "installed": now})
        if not (archive.sha256 or archive.md5) and observed is None:
            atomic_write_json(_observed_record(root, archive), {
                "file": archive.filename, "sha256": digest, "size": size, "url": fetched_from,
                "downloaded": now, "note": "no published checksum: the first installed download is the "
                                           "reference for later ones (delete this file to accept a changed archive)"})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not keep_archive:
        with contextlib.suppress(OSError):
            file.unlink()
    log(f"{archive.filename}: installed in {dest}")
    return dest


def download(name: str, data_root: str | os.PathLike, *, base_url: str | None = None,
             log: Callable[[str], None] = print, **kw) -> list[Path]:
    """Install every archive of dataset ``name`` (a key of :data:`SOURCES`) under ``data_root``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        ManualDownloadRequired: registration needed; the message holds the instructions.
    """
    if name not in SOURCES:
        raise KeyError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(SOURCES))}")
    src = SOURCES[name]
    root = Path(data_root).expanduser()
    if src.manual:
        raise ManualDownloadRequired(src.manual.format(root=root))
    root.mkdir(parents=True, exist_ok=True)
    out = [install_archive(a, root, base_url=base_url, log=log, **kw) for a in src.archives]
    if src.note:
        log(f"{name}: {src.note}")
    return out


# ---------------------------------------------------------------------------------------------- CLI
@dataclass(kw_only=True)
class DownloadConfig:
    """``oodbench download`` (the parser is generated from it; :func:`run_download` reads the same names)."""

    dataset: str = field(metadata=arg("one of: " + ", ".join(sorted(SOURCES)), positional=True,
                                      choices=sorted(SOURCES), metavar="DATASET"))
    data_root: str | None = field(default=None, metadata=arg("target data root (default: $OODBENCH_DATA)"))
    base_url: str | None = field(default=None, metadata=arg(
        "fetch <base-url>/<file name> instead of the official mirrors"))
    keep_archive: bool = field(default=False, metadata=arg("keep the archive under <data-root>/.downloads/",
                                                           action="store_true"))
    retries: int = field(default=4, metadata=arg("retries per mirror (exponential backoff; default 4)"))


def add_download_parser(subparsers) -> argparse.ArgumentParser:
    """``oodbench download DATASET [--data-root R] [--base-url U] [--keep-archive] [--retries N]``."""
    return add_command(
        subparsers, "download", DownloadConfig, run_download,
        help="download and safely extract public benchmark archives",
        description="Download a dataset's public archives (resume, retries, checksum verification, safe "
                    "extraction, atomic placement). Cityscapes and Lost & Found print manual instructions.")


def run_download(args: argparse.Namespace) -> int:
    """Handler of ``oodbench download``; returns the exit code."""
    root = args.data_root or os.environ.get("OODBENCH_DATA")
    if not root:
        print("error: pass --data-root DIR or set OODBENCH_DATA", file=sys.stderr)
        return 2
    try:
        download(args.dataset, root, base_url=args.base_url, keep_archive=args.keep_archive, retries=args.retries)
    except ManualDownloadRequired as exc:
        print(exc)
        return 0
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
