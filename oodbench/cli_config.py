"""Command-line flags generated from dataclasses: the one way oodbench defines a flag.

A command's options are a dataclass; :func:`add_dataclass_arguments` adds one argparse argument per
field and :func:`config_from_namespace` builds the dataclass back from the parsed namespace. The
field gives the name (``--field-name``, dest ``field_name``), the type, the default and, through
``metadata`` (written with :func:`arg`), everything else argparse needs. One definition therefore
serves the Python API, the CLI, its help text and the config stored with results -- a new field
cannot be forgotten by the parser, and a flag cannot exist without a field.

Rules (``metadata`` keys in brackets; all optional):

* name: ``--field-name``, or the option strings of ``flags`` (``("-q", "--quiet")``,
  ``("--results",)`` for a field ``results_dir``); the dest is always the field name.
  ``positional`` makes it a positional argument (metavar ``metavar`` or the field name).
* type: ``parse`` (a custom argparse type such as :func:`oodbench.cli_support.positive_int`), else
  from the annotation: ``int``/``float``/``str``/``Path``; ``bool`` gives ``--x/--no-x`` unless
  ``action`` is ``"store_true"``/``"store_false"``; ``list[T]`` gives ``nargs="+"`` and
  ``tuple[T, T]`` ``nargs=2`` (``nargs`` overrides); ``T | None`` is ``T`` with default ``None``.
  ``action="append"`` collects repeated flags into a list (``list[T] | None``, default ``None``).
* ``choices``, ``metavar``, ``help``: passed on. ``required``: defaults to "the field has no default".
* a field whose type is itself a dataclass contributes that dataclass's flags (a shared option
  group such as :class:`oodbench.cli_options.DataOptions`); its dests must not clash with others.
* ``cli=False``: not a flag (a Python callback, or a value the command computes from other flags,
  such as :attr:`oodbench.run_config.RunConfig.progress`); :func:`config_from_namespace` leaves it
  to its default or to an override.

Nothing here imports torch (core commands start without it).
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["arg", "add_command", "add_dataclass_arguments", "config_from_namespace", "config_to_dict", "cli_dests",
           "unwrap_optional"]


def arg(help: str = "", *, flags: Sequence[str] | None = None, parse: Callable[[str], Any] | None = None,
        choices: Sequence[Any] | None = None, nargs: int | str | None = None, action: str | None = None,
        metavar: str | None = None, positional: bool = False, required: bool | None = None,
        cli: bool = True) -> dict[str, Any]:
    """The ``metadata`` of a dataclass field that is a flag (module doc): only the keys given are set,
    so ``arg("help")`` is ``{"help": "help"}``. Keyword-only, so a misspelt option is a TypeError.

    >>> arg("output file", flags=("-o", "--out"), metavar="PATH")
    {'help': 'output file', 'flags': ('-o', '--out'), 'metavar': 'PATH'}
    """
    if action not in (None, "store_true", "store_false", "append"):
        raise ValueError(f"arg(action={action!r}): supported are 'store_true', 'store_false', 'append'")
    meta: dict[str, Any] = {"help": help} if help else {}
    for key, value in (("flags", tuple(flags) if flags is not None else None), ("parse", parse),
                       ("choices", choices), ("nargs", nargs), ("action", action), ("metavar", metavar),
                       ("required", required)):
        if value is not None:
            meta[key] = value
    if positional:
        meta["positional"] = True
    if not cli:
        meta["cli"] = False
    return meta


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None`` / ``Optional[T]``, else ``(tp, False)``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _is_flag(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("cli", True))


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _group(tp: Any) -> type | None:
    """The dataclass of a field that is a nested option group, else ``None``."""
    tp, _ = unwrap_optional(tp)
    return tp if isinstance(tp, type) and is_dataclass(tp) else None


def cli_dests(cls: type) -> list[str]:
    """The dests of every flag :func:`add_dataclass_arguments` adds for ``cls``, nested groups included.

    A test compares them with a sub-parser's actions, so a parser cannot drift from its dataclass.
    """
    hints = typing.get_type_hints(cls)
    out: list[str] = []
    for f in fields(cls):
        if not _is_flag(f):
            continue
        group = _group(hints[f.name])
        out.extend(cli_dests(group) if group is not None else [f.name])
    return out


def _type_kwargs(cls: type, f: dataclasses.Field, tp: Any) -> dict[str, Any]:
    """argparse ``type``/``nargs``/``action`` of field ``f`` whose (non-optional) type is ``tp``."""
    meta = f.metadata
    kw: dict[str, Any] = {}
    origin = typing.get_origin(tp)
    action = meta.get("action")
    if action in ("store_true", "store_false"):
        if tp is not bool:
            raise TypeError(f"{cls.__name__}.{f.name}: action={action!r} needs a bool field")
        return {"action": action}
    if action == "append":
        kw["action"] = "append"
    if "parse" in meta:
        kw["type"] = meta["parse"]
    elif tp is bool:
        kw["action"] = argparse.BooleanOptionalAction
    elif origin in (tuple, list):
        inner = [a for a in typing.get_args(tp) if a is not Ellipsis]
        kw["type"] = inner[0] if inner else str
        if action != "append":
            kw["nargs"] = len(inner) if origin is tuple and Ellipsis not in typing.get_args(tp) else "+"
    elif tp in (int, float, str, Path):
        kw["type"] = tp
    else:
        raise TypeError(f"{cls.__name__}.{f.name}: no CLI mapping for type {tp!r} (set metadata cli=False)")
    if "nargs" in meta:
        kw["nargs"] = meta["nargs"]
    return kw


def add_dataclass_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
                            exclude: tuple[str, ...] = (), suppress_defaults: bool = False,
                            show_defaults: bool = True, _taken: set[str] | None = None) -> None:
    """Add one argument per field of dataclass ``cls`` (rules in the module doc), in field order.

    Args:
        exclude: field names to leave off.
        suppress_defaults: absent flags set nothing on the namespace (the help still shows the
            field default), so a caller can tell the flags given from the defaults.
        show_defaults: append ``(default: ...)`` to each help text (the training commands); the
            core commands write their defaults into the help where they matter.

    Raises:
        TypeError: a field type with no CLI mapping (mark it ``cli=False``).
        ValueError: two fields (through nested groups) with the same dest.
    """
    taken = set() if _taken is None else _taken
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in exclude or not _is_flag(f):
            continue
        group = _group(hints[f.name])
        if group is not None:
            add_dataclass_arguments(parser, group, exclude, suppress_defaults, show_defaults, taken)
            continue
        if f.name in taken:
            raise ValueError(f"{cls.__name__}.{f.name}: another field already defines the dest {f.name!r}")
        taken.add(f.name)
        meta = f.metadata
        tp, optional = unwrap_optional(hints[f.name])
        default = _default(f)
        kw = _type_kwargs(cls, f, tp)
        for key in ("choices", "metavar"):
            if key in meta:
                kw[key] = meta[key]
        help_text = meta.get("help", "")
        if show_defaults:
            shown = "none" if default is dataclasses.MISSING else repr(default)
            help_text = f"{help_text} (default: {shown})" if help_text else f"default: {shown}"
            if optional and tp is not bool and "parse" not in meta:
                help_text += "; omit for none"
        if help_text:
            kw["help"] = help_text
        if meta.get("positional"):
            if default is not dataclasses.MISSING:
                kw["default"] = default
            parser.add_argument(f.name, **kw)
            continue
        required = meta.get("required", default is dataclasses.MISSING)
        if required:
            kw["required"] = True
        if suppress_defaults:
            kw["default"] = argparse.SUPPRESS
        elif default is not dataclasses.MISSING:
            kw["default"] = default
        parser.add_argument(*meta.get("flags", ("--" + f.name.replace("_", "-"),)), dest=f.name, **kw)


def add_command(subparsers: argparse._SubParsersAction, name: str, cls: type, func: Callable[..., Any], *,
                show_defaults: bool = False, **parser_kwargs: Any) -> argparse.ArgumentParser:
    """Sub-command ``name`` whose flags are generated from dataclass ``cls``; parsing sets ``func``
    and ``config_class`` (``cls``, so a test can check every generated parser against its dataclass).
    ``parser_kwargs`` go to ``add_parser`` (``help``, ``description``, ...)."""
    p = subparsers.add_parser(name, **parser_kwargs)
    add_dataclass_arguments(p, cls, show_defaults=show_defaults)
    p.set_defaults(func=func, config_class=cls)
    return p


def config_from_namespace(cls: type, ns: argparse.Namespace, **overrides: Any):
    """Build ``cls`` from parsed arguments: flags absent from ``ns`` keep their field defaults,
    ``cli=False`` fields come from ``overrides`` (or their defaults), nested option groups are
    built the same way, and lists parsed for tuple fields become tuples."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in overrides or not _is_flag(f):
            continue
        group = _group(hints[f.name])
        if group is not None:
            kwargs[f.name] = config_from_namespace(group, ns)
        elif hasattr(ns, f.name):
            value = getattr(ns, f.name)
            if isinstance(value, list) and typing.get_origin(unwrap_optional(hints[f.name])[0]) is tuple:
                value = tuple(value)
            kwargs[f.name] = value
    kwargs.update(overrides)
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """JSON/``weights_only``-safe dict of a config (paths as strings, tuples as lists, callables
    dropped, nested configs as dicts)."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if is_dataclass(v) and not isinstance(v, type):
            v = config_to_dict(v)
        elif callable(v) and not isinstance(v, type):
            continue
        if isinstance(v, Path):
            v = str(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out
