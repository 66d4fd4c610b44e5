"""Result records: identity and file name (protocol, FPR95 rule), provenance stamped once, strict loading."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from oodbench import results as R
from oodbench.results import RecordError, Result, load_results, result_filename, save_result


def _result(method="energy", dataset="road-anomaly", protocol="fishyscapes", fpr_rule="first_tpr_ge", **metrics):
    return Result(method=method, dataset=dataset, benchmark="RoadAnomaly", protocol=protocol,
                  protocol_version="v1", fpr_rule=fpr_rule, metrics=metrics or {"auprc": 0.5, "fpr95": 0.2},
                  num_frames=4)


class _Eval:
    """The fields of an ``EvaluationOutput`` that a record is built from."""

    metrics = {"protocol": "exact", "fpr_rule": "nearest_recall", "auprc": 0.25, "auroc": 0.75,
               "fpr95": 0.5, "fpr95_threshold": -1.5}
    protocol, protocol_version, fpr_rule = "exact", "exact@1", "nearest_recall"
    num_frames, data_fingerprint, wall_time_s = 3, "ab" * 32, 1.23456
    notes = {"component_metrics": None}


class _Split:
    name, benchmark, root, synthetic = "road-anomaly", "RoadAnomaly", Path("/data"), True

    def expected(self) -> int:
        return 3  # the complete split: _Eval scored all of it


# -- #12.5: the protocol (and a non-default FPR95 rule) are part of the record's identity ------------
def test_record_file_name_names_protocol_and_non_default_fpr_rule():
    assert result_filename("energy", "road-anomaly", "fishyscapes") == "energy__road-anomaly__fishyscapes.json"
    assert result_filename("energy", "road-anomaly", "exact", "first_tpr_ge") == "energy__road-anomaly__exact.json"
    assert (result_filename("energy", "road-anomaly", "exact", "nearest_recall")
            == "energy__road-anomaly__exact-nearest_recall.json")


def test_two_protocols_of_one_split_are_two_records(tmp_path):
    official = _result(protocol="smiyc", auprc=0.4, fpr95=0.3, siou=0.2, ppv=0.1, f1_mean=0.05)
    exact = _result(protocol="exact", auprc=0.41, fpr95=0.29)
    exact_nr = _result(protocol="exact", fpr_rule="nearest_recall", auprc=0.41, fpr95=0.28)
    paths = {save_result(r, tmp_path) for r in (official, exact, exact_nr)}
    assert len(paths) == 3
    loaded = {(r.protocol, r.fpr_rule): r for r in load_results(tmp_path)}
    assert set(loaded) == {("smiyc", "first_tpr_ge"), ("exact", "first_tpr_ge"), ("exact", "nearest_recall")}
    assert loaded["smiyc", "first_tpr_ge"].metrics["siou"] == 0.2  # not overwritten by the exact record


def test_records_named_before_the_protocol_was_in_the_name_still_load(tmp_path):
    legacy = {"method": "energy", "dataset": "road-anomaly", "benchmark": "RoadAnomaly", "protocol": "fishyscapes",
              "protocol_version": "bdlb", "metrics": {"auprc": 0.5, "fpr_rule": "first_tpr_ge"}, "num_frames": 3,
              "git_commit": None, "schema_version": 1}
    (tmp_path / "energy__road-anomaly.json").write_text(json.dumps(legacy))
    (r,) = load_results(tmp_path)
    assert (r.method, r.protocol, r.metrics["auprc"]) == ("energy", "fishyscapes", 0.5)
    assert r.identity == ("energy", "road-anomaly", "fishyscapes", "first_tpr_ge")
    # a new record of the same identity replaces the legacy file instead of doubling the row
    save_result(_result(auprc=0.6), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["energy__road-anomaly__fishyscapes.json"]


def test_two_files_with_one_identity_are_refused(tmp_path):
    save_result(_result(auprc=0.6), tmp_path)
    (tmp_path / "copy.json").write_text((tmp_path / "energy__road-anomaly__fishyscapes.json").read_text())
    with pytest.raises(RecordError, match="copy.json.*energy__road-anomaly__fishyscapes.json|"
                                          "energy__road-anomaly__fishyscapes.json.*copy.json"):
        load_results(tmp_path)


# -- #12.6 / #13.1: provenance is stamped once, at creation; a loaded record is what was written --------
def test_from_evaluation_stamps_provenance_once(monkeypatch):
    from oodbench import __version__

    monkeypatch.setattr(R, "git_commit", lambda: "c0ffee")
    r = Result.from_evaluation(_Eval(), _Split(), method="energy", hparams={"t": 1}, plugin={"distribution": "x"},
                               predictions="/p", device="cuda:0", untrained=False)
    assert (r.oodbench_version, r.git_commit, r.device) == (__version__, "c0ffee", "cuda:0")
    assert r.created and r.fpr_rule == "nearest_recall" and r.protocol == "exact"
    assert r.synthetic is True and r.data_root == "/data" and r.wall_time_s == 1.235
    assert r.expected_frames == 3 and not r.off_count
    host = Result.from_evaluation(_Eval(), _Split(), method="energy")
    assert host.device  # the host is named when the caller gives no device


def test_loaded_record_is_exactly_what_was_written(tmp_path, monkeypatch):
    bare = _result()  # no version, commit, device or time: e.g. a record typed by hand
    path = save_result(bare, tmp_path)
    written = path.read_bytes()
    # read back on "another machine": other processor, other checkout
    monkeypatch.setattr(R.platform, "processor", lambda: "other-cpu")
    monkeypatch.setattr(R.platform, "machine", lambda: "other-arch")
    monkeypatch.setattr(R, "git_commit", lambda: "deadbeef")
    (r,) = load_results(tmp_path)
    assert (r.device, r.created, r.oodbench_version, r.git_commit) == ("", "", "", None)
    out = tmp_path / "again"
    out.mkdir()
    assert save_result(r, out).read_bytes() == written


def test_created_record_round_trips_byte_identically(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "git_commit", lambda: "c0ffee")
    first = save_result(Result.from_evaluation(_Eval(), _Split(), method="energy", device="cpu"), tmp_path / "a")
    monkeypatch.setattr(R, "git_commit", lambda: "other")
    monkeypatch.setattr(R.platform, "processor", lambda: "other-cpu")
    (r,) = load_results(tmp_path / "a")
    second = save_result(r, tmp_path / "b")
    assert second.name == first.name and second.read_bytes() == first.read_bytes()


def _git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(cwd), *args],
                   check=True, capture_output=True)


def _repo(root: Path, pyproject: str) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(pyproject)
    _git(root, "init", "-q")
    _git(root, "add", "pyproject.toml")
    _git(root, "commit", "-q", "-m", "init")
    return root


def test_git_commit_is_only_that_of_oodbench_s_own_checkout(tmp_path, monkeypatch):
    # an installed copy (e.g. a venv or .tox) inside some other project's repository
    other = _repo(tmp_path / "project", '[project]\nname = "someapp"\n')
    installed = other / "venv" / "site-packages" / "oodbench"
    installed.mkdir(parents=True)
    monkeypatch.setattr(R, "__file__", str(installed / "results.py"))
    R.git_commit.cache_clear()
    assert R.git_commit() is None
    # ... and inside oodbench's own checkout, but not its source folder (``.tox`` in the checkout)
    own = _repo(tmp_path / "oodbench-src", '[project]\nname = "oodbench"\nversion = "0"\n')
    tox = own / ".tox" / "py3" / "site-packages" / "oodbench"
    tox.mkdir(parents=True)
    monkeypatch.setattr(R, "__file__", str(tox / "results.py"))
    R.git_commit.cache_clear()
    assert R.git_commit() is None
    # the source checkout itself
    (own / "oodbench").mkdir()
    monkeypatch.setattr(R, "__file__", str(own / "oodbench" / "results.py"))
    R.git_commit.cache_clear()
    head = subprocess.run(["git", "-C", str(own), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert R.git_commit() == head
    R.git_commit.cache_clear()


# -- #12.9: only the folder's own records, each validated -------------------------------------------------
def test_only_top_level_records_are_loaded(tmp_path):
    save_result(_result(auprc=0.5), tmp_path)
    backup = tmp_path / "backup"
    backup.mkdir()
    save_result(_result(auprc=0.1), backup)
    (tmp_path / ".tmp-energy__road-anomaly__fishyscapes.json.abc.json").write_text(
        (tmp_path / "energy__road-anomaly__fishyscapes.json").read_text())
    (tmp_path / ".hidden.json").write_text("{}")
    (r,) = load_results(tmp_path)
    assert r.metrics["auprc"] == 0.5


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["metrics"].__setitem__("auprc", "0.99"), "metrics.auprc"),
    (lambda d: d["metrics"].__setitem__("auroc", None), "metrics.auroc"),
    (lambda d: d["metrics"].__setitem__("fpr95", [0.1]), "metrics.fpr95"),
    (lambda d: d["metrics"].__setitem__("auprc", 99.5), "metrics.auprc"),
    (lambda d: d["metrics"].__setitem__("auprc", float("inf")), "metrics.auprc"),
    (lambda d: d["metrics"].__setitem__("siou", -0.1), "metrics.siou"),
    (lambda d: d["metrics"].__setitem__("auprc", True), "metrics.auprc"),
    (lambda d: d.pop("method"), "method"),
    (lambda d: d.pop("metrics"), "metrics"),
    (lambda d: d.__setitem__("num_frames", "8"), "num_frames"),
    (lambda d: d.__setitem__("synthetic", "yes"), "synthetic"),
    (lambda d: d.__setitem__("untrained", 1), "untrained"),
    (lambda d: d.__setitem__("metrics", [0.5]), "metrics"),
    (lambda d: d.__setitem__("synthetc", True), "synthetc"),
])
def test_hand_edited_records_are_refused_naming_file_and_field(tmp_path, edit, field):
    path = save_result(_result(auprc=0.5, auroc=0.9, fpr95=0.2, siou=0.3), tmp_path)
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d))
    with pytest.raises(RecordError) as err:
        load_results(tmp_path)
    msg = str(err.value)
    assert path.name in msg and f"'{field}'" in msg and "\n" not in msg


def test_undefined_metric_written_by_the_evaluator_loads_and_shows_as_missing(tmp_path):
    from oodbench.leaderboard import load, render_markdown

    save_result(_result(auprc=0.5, fpr95=0.2, siou=float("nan")), tmp_path)  # sIoU without components
    save_result(_result(method="msp", auprc=0.4, fpr95=0.3, siou=0.1), tmp_path)
    r = next(r for r in load_results(tmp_path) if r.method == "energy")
    assert r.metrics["siou"] != r.metrics["siou"]
    md = render_markdown(load(tmp_path))
    assert "| energy   | **50.00** | **20.00** | -         |" in md and "| msp      | 40.00     | 30.00     | **10.00** |" in md


def test_non_record_json_and_missing_folder_are_errors(tmp_path):
    (tmp_path / "notes.json").write_text('["not", "a", "record"]')
    with pytest.raises(RecordError, match="notes.json"):
        load_results(tmp_path)
    (tmp_path / "notes.json").write_text("{broken")
    with pytest.raises(RecordError, match="notes.json.*not valid JSON"):
        load_results(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_results(tmp_path / "nope")


def test_validation_knows_every_field_of_a_record():
    assert set(R._FIELD_TYPES) == set(Result.__dataclass_fields__)
    assert set(R.REQUIRED_FIELDS) <= set(R._FIELD_TYPES)
