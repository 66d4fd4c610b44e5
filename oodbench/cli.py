"""The ``oodbench`` command line.

Core commands live here (``list``, ``run``, ``evaluate``, ``leaderboard``, ``submit``; ``compare`` in
:mod:`oodbench.compare`); commands
owned by other parts of the project (``synth``, ``prepare``, ``download``, ``train``,
``train-segmenter``, ``demo``, ``fishyscapes-export``) add their own sub-parsers through the
``add_*_parser(subparsers)`` functions listed in :data:`_EXTENSIONS`.

Every core flag is generated from the command's config dataclass (:mod:`oodbench.command_configs`,
through :func:`oodbench.cli_config.add_command`); a command function turns the namespace back into
that dataclass with :func:`~oodbench.cli_config.config_from_namespace`. Only ``--version`` is
written by hand here.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from oodbench.cli_config import config_from_namespace
from oodbench.cli_support import (
    CLIError,
    build_method,
    check_device,
    method_kwargs,
    resolve_splits_for_args,
    want_progress,
    write_json_records,
)
from oodbench.errors import OodbenchError

__all__ = ["main", "build_parser"]

#: sub-commands defined in this module: parsing them needs none of the extension modules below
#: (which may import torch), so ``main`` does not import those for them or for ``--version``.
_CORE_COMMANDS = frozenset({"list", "run", "evaluate", "leaderboard", "submit", "compare"})

#: (module, function) pairs that add sub-commands
_EXTENSIONS: tuple[tuple[str, str], ...] = (
    ("oodbench.datasets.synth.command", "add_synth_parser"),
    ("oodbench.datasets.synth.command", "add_prepare_parser"),
    ("oodbench.datasets.synth.command", "add_download_parser"),
    ("oodbench.training.segmenter", "add_train_segmenter_parser"),
    ("oodbench.methods.rpl.train", "add_train_parser"),
    ("oodbench.demo", "add_demo_parser"),
    ("oodbench.fishyscapes_submission", "add_fishyscapes_export_parser"),
    ("oodbench.fitting", "add_fit_parser"),
)

#: environment variables oodbench reads (listed in ``oodbench --help``)
ENVIRONMENT = {
    "OODBENCH_DATA": "default --data-root",
    "OODBENCH_DISABLE_PLUGIN_AUTOLOAD": "1 = do not load method/dataset plugins from entry points "
                                        "(reproducible leaderboard runs)",
}


def _print_results_table(results) -> None:
    from oodbench.leaderboard import render_markdown, to_frame

    if results:
        print(render_markdown(to_frame(results), title="oodbench results"))


#: the methods oodbench registers itself (``tests/test_cli_no_torch.py`` checks this against
#: ``METHODS``): lets ``evaluate`` name the provenance of predictions without a run manifest
#: without importing the method registry, which imports torch.
_BUILTIN_METHODS = frozenset({"energy", "entropy", "mahalanobis", "maxlogit", "msp", "rpl", "sml"})


def _method_provenance(name: str) -> dict[str, Any]:
    """What ``METHODS.get(name).provenance`` gives (``{"distribution": "external"}`` for an
    unregistered name), read from package metadata instead of importing the plugins."""
    import importlib.metadata

    from oodbench.registry import DISABLE_AUTOLOAD_ENV, _own_version

    if name in _BUILTIN_METHODS:
        return {"distribution": "oodbench", "version": _own_version()}
    if os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip() in ("", "0", "false", "False"):
        for ep in importlib.metadata.entry_points(group="oodbench.methods"):
            if ep.name == name and ep.dist is not None and ep.dist.name != "oodbench":
                return {"distribution": ep.dist.name, "version": ep.dist.version}
    return {"distribution": "external"}


# ---------------------------------------------------------------------------------------------
# commands
def cmd_list(args: argparse.Namespace) -> int:
    from oodbench.command_configs import ListConfig

    cfg = config_from_namespace(ListConfig, args)
    records: list[dict[str, Any]] = []
    lines: list[str] = []
    if cfg.what == "methods":
        from oodbench.methods import METHODS

        for name in METHODS.names():
            e = METHODS.get(name)
            paper = e.obj.paper
            records.append({"name": name, "distribution": e.distribution, "version": e.version, "paper": paper,
                            "requires_fit": bool(e.obj.requires_fit)})
            lines.append(f"{name:12s} {e.distribution} {e.version}  {paper}")
    elif cfg.what == "segmenters":
        from oodbench.segmenters import SEGMENTERS

        for name in SEGMENTERS.names():
            doc = (SEGMENTERS.get(name).obj.__doc__ or "").strip().splitlines()
            records.append({"name": name, "description": doc[0] if doc else ""})
            lines.append(f"{name:28s} {doc[0] if doc else ''}")
    else:
        from oodbench import datasets as D

        root = None
        try:
            root = D.resolve_data_root(cfg.data_root)
        except D.DataLayoutError as exc:
            print(f"(data root: {exc})", file=sys.stderr)
        for name in D.DATASETS.names():
            cls = D.DATASETS.get(name).obj
            reason = cls.detect(root) if root is not None else None
            status = "" if root is None else "found" if reason is None else f"missing: {reason}"
            hidden = "" if cls.labels_public else " [labels hidden]"
            records.append({"name": name, "benchmark": cls.benchmark, "protocol": cls.protocol,
                            "labels_public": bool(cls.labels_public),
                            "found": None if root is None else reason is None,
                            "missing": None if root is None or reason is None else reason})
            lines.append(f"{name:24s} {cls.benchmark:28s} protocol={cls.protocol:13s}{hidden} {status}")
    if cfg.json:
        write_json_records(cfg.json, records)
    if cfg.json != "-":
        for line in lines:
            print(line)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import dataclasses

    from oodbench.command_configs import RunCommandConfig
    from oodbench.intervals import spec_from_args
    from oodbench.runner import run_method

    cmd = config_from_namespace(RunCommandConfig, args)
    check_device(cmd.run.device)
    splits = resolve_splits_for_args(cmd.data, cmd.dataset)
    kwargs = method_kwargs(cmd.method)
    cfg = dataclasses.replace(cmd.run, progress=want_progress(cmd.display), bootstrap=spec_from_args(cmd.intervals))
    method = build_method(cmd.method.method, kwargs)
    if cmd.postprocess not in (None, "none"):
        from oodbench.methods import apply_postprocess

        method = apply_postprocess(method, cmd.postprocess)
    results = run_method(cmd.method.method, splits, cfg, method_kwargs=kwargs, method=method)
    if cmd.json:
        write_json_records(cmd.json, [r.to_dict() for r in results])
    if cmd.json != "-":
        _print_results_table(results)
    print(f"result records: {cfg.results_dir}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from oodbench.command_configs import EvaluateConfig
    from oodbench.evaluate import evaluate_split
    from oodbench.intervals import spec_from_args
    from oodbench.results import Result, save_result
    from oodbench.store import PredictionStore

    cfg = config_from_namespace(EvaluateConfig, args)
    bootstrap = spec_from_args(cfg.intervals)

    splits = resolve_splits_for_args(cfg.data, cfg.dataset)
    if cfg.fpr_rule is not None:  # a rule the protocol does not define is refused before any pass
        from oodbench.metrics import build_protocol

        for split in splits:
            build_protocol(cfg.protocol or split.protocol, fpr_rule=cfg.fpr_rule)
    store = PredictionStore(cfg.predictions, cfg.method)
    results = []
    for split in splits:
        manifest = store.read_run_manifest(split.key) or {}
        ev = evaluate_split(split, store, cfg.protocol,
                            semantic_label_space=manifest.get("semantic_label_space"),
                            progress=want_progress(cfg.display), fpr_rule=cfg.fpr_rule, bootstrap=bootstrap)
        method = manifest.get("method") or cfg.method  # --method names the store folder (a run name)
        plugin = manifest.get("plugin") or _method_provenance(method)
        result = Result.from_evaluation(
            ev, split, method=method, hparams=manifest.get("hparams", {}),
            checkpoint_sha256=manifest.get("checkpoint_sha256"), plugin=plugin,
            untrained=bool(manifest.get("untrained", False)), predictions=cfg.predictions,
            training_seed=manifest.get("training_seed"),
            name=cfg.method, fitted_state_sha256=manifest.get("fitted_state_sha256"),
        )
        results.append(result)
        if cfg.results:
            save_result(result, cfg.results)
    if cfg.json:
        write_json_records(cfg.json, [r.to_dict() for r in results])
    if cfg.json != "-":
        _print_results_table(results)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from oodbench import leaderboard as L
    from oodbench.command_configs import LeaderboardConfig

    cfg = config_from_namespace(LeaderboardConfig, args)
    for folder in cfg.results:
        if not Path(folder).is_dir():
            raise CLIError(f"--results {folder}: no such folder" if not Path(folder).exists()
                           else f"--results {folder}: not a folder")
    df = L.load(cfg.results)
    if cfg.with_published:
        from oodbench.published import merge_published

        df = merge_published(df)
    text = L.render_markdown(df, ci=cfg.ci)
    if cfg.out:
        from oodbench.atomic import atomic_write_text

        atomic_write_text(cfg.out, text)
        print(f"wrote {cfg.out}", file=sys.stderr)
    else:
        print(text)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from oodbench.command_configs import SubmitConfig
    from oodbench.submit import SMIYC_SUBMISSION_SPLITS, build_smiyc_submission

    cfg = config_from_namespace(SubmitConfig, args)
    names = cfg.dataset or list(SMIYC_SUBMISSION_SPLITS)
    splits = resolve_splits_for_args(cfg.data, names, labelled_only=False)
    counts = build_smiyc_submission(cfg.predictions, cfg.method, cfg.out, splits, progress=want_progress(cfg.display),
                                    allow_untrained=cfg.allow_untrained)
    for key, n in counts.items():
        print(f"{key}: {n} frames")
    print(f"wrote {cfg.out}")
    return 0


# ---------------------------------------------------------------------------------------------
def build_parser(extensions: bool = True) -> argparse.ArgumentParser:
    """The ``oodbench`` parser; ``extensions=False`` leaves out the sub-commands of :data:`_EXTENSIONS`."""
    from oodbench import __version__
    from oodbench import command_configs as C
    from oodbench.cli_config import add_command
    from oodbench.compare import add_compare_parser

    parser = argparse.ArgumentParser(
        prog="oodbench", description="Benchmark harness for pixel-wise anomaly segmentation.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="environment variables:\n" + "\n".join(f"  {k:34s} {v}" for k, v in ENVIRONMENT.items())
               + "\n\nexit status: 0 success, 2 a user error (one line on stderr), 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"oodbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # every core flag is generated from its command's dataclass (oodbench.command_configs)
    add_command(sub, "list", C.ListConfig, cmd_list, help="list methods, datasets or segmenters")
    add_command(sub, "run", C.RunCommandConfig, cmd_run, help="predict, store, evaluate and record a method on datasets")
    add_command(sub, "evaluate", C.EvaluateConfig, cmd_evaluate, help="score a stored prediction tree (no model needed)")
    add_command(sub, "leaderboard", C.LeaderboardConfig, cmd_leaderboard,
                help="render markdown leaderboards from result records")
    add_compare_parser(sub)
    add_command(sub, "submit", C.SubmitConfig, cmd_submit, help="build an official submission archive")

    for module, func in _EXTENSIONS if extensions else ():
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            if exc.name and module.startswith(exc.name):
                continue  # that part of oodbench is not present in this build
            raise
        if hasattr(mod, func):
            getattr(mod, func)(sub)
    return parser


def _needs_extensions(argv: Sequence[str]) -> bool:
    """Whether parsing ``argv`` needs the extension sub-commands: not for a core command (the
    first word) or a bare ``--version``; yes for anything else (``--help`` lists every command)."""
    words = [a for a in argv if not a.startswith("-")]
    if words:
        return words[0] not in _CORE_COMMANDS
    return "--version" not in argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Exit status 2 with a one-line ``oodbench: error: ...`` for the errors that
    are the user's to fix: the :class:`~oodbench.errors.OodbenchError` family, and ``OSError``
    (a path that does not exist, is not writable or is on a full disk -- the message names the
    path). Anything else is a bug and propagates with its traceback; argparse errors keep
    argparse's own message and status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(extensions=_needs_extensions(argv))
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader that went away shows here, not in the interpreter's final flush
        return code
    except BrokenPipeError:
        # the reader went away (``oodbench list methods | head -1``): stop quietly, and keep Python's
        # final flush of stdout from printing a second error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (OodbenchError, OSError) as exc:
        print(f"oodbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("oodbench: interrupted; completed frames are stored, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
