"""One small name -> factory registry, used for methods, dataset splits and segmenters.

Design: timm-style registration by decorator (``huggingface/pytorch-image-models:timm/models/_registry.py``),
detectron2-style errors that
list the valid names, pluggy-style lazy loading of third-party plugins from an entry-point group
with an opt-out variable (``OODBENCH_DISABLE_PLUGIN_AUTOLOAD=1``) and provenance (which
distribution and version provided each entry). Duplicates are errors, never silent overwrites.
"""
from __future__ import annotations

import fnmatch
import importlib.metadata
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from oodbench.errors import OodbenchError

__all__ = ["Registry", "RegistryEntry", "RegistryError", "PluginValidationError"]

DISABLE_AUTOLOAD_ENV = "OODBENCH_DISABLE_PLUGIN_AUTOLOAD"


class RegistryError(OodbenchError, KeyError):
    """Unknown or duplicate name in a registry (the message lists what is available)."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0]) if self.args else ""


class PluginValidationError(OodbenchError, TypeError):
    """A registered object does not satisfy the registry's contract."""


@dataclass(frozen=True)
class RegistryEntry:
    """A registered factory and where it came from."""

    name: str
    obj: Any
    distribution: str = "oodbench"
    version: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def provenance(self) -> dict:
        return {"distribution": self.distribution, "version": self.version}


def _own_version() -> str:
    try:
        return importlib.metadata.version("oodbench")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


class Registry:
    """Maps names to factories (classes or functions).

    Args:
        kind: what is registered ("method", "dataset", "segmenter"); used in messages.
        entry_point_group: entry-point group scanned lazily on the first lookup, e.g.
            ``"oodbench.methods"``. Each entry point names the plugin and points at an object that
            is registered under that name, or at a module whose import registers things itself.
        validator: called with ``(name, obj)`` at registration; raises
            :class:`PluginValidationError` to refuse a bad plugin.
    """

    def __init__(
        self,
        kind: str,
        entry_point_group: str | None = None,
        validator: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._validator = validator
        self._entries: dict[str, RegistryEntry] = {}
        self._plugins_loaded = entry_point_group is None
        self._plugin_errors: dict[str, str] = {}
        self._lock = threading.RLock()
        self._loading_dist: tuple[str, str] | None = None

    # ------------------------------------------------------------------ registration
    def register(self, name: str | None = None, obj: Any = None, **meta: Any):
        """Register ``obj`` under ``name``; usable as ``@REG.register("name")`` or directly."""

        def _do(o: Any) -> Any:
            key = name or getattr(o, "name", None) or o.__name__
            if not isinstance(key, str) or not key:
                raise PluginValidationError(f"{self.kind} name must be a non-empty string, got {key!r}")
            with self._lock:
                if key in self._entries:
                    prev = self._entries[key]
                    raise RegistryError(
                        f"duplicate {self.kind} name {key!r}: already registered by "
                        f"{prev.distribution} {prev.version} ({_qualname(prev.obj)})"
                    )
                if self._validator is not None:
                    self._validator(key, o)
                dist, version = self._loading_dist or ("oodbench", _own_version())
                self._entries[key] = RegistryEntry(key, o, dist, version, dict(meta))
            return o

        if obj is not None:
            return _do(obj)
        return _do

    def unregister(self, name: str) -> None:
        """Remove an entry (tests and interactive use)."""
        with self._lock:
            self._entries.pop(name, None)

    # ------------------------------------------------------------------ lookup
    def _ensure_plugins(self) -> None:
        if self._plugins_loaded:
            return
        with self._lock:
            if self._plugins_loaded:
                return
            self._plugins_loaded = True
            if os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip() not in ("", "0", "false", "False"):
                return
            for ep in importlib.metadata.entry_points(group=self.entry_point_group):
                dist = ep.dist.name if ep.dist is not None else "unknown"
                version = ep.dist.version if ep.dist is not None else ""
                if dist == "oodbench":
                    continue  # built-ins register themselves at import
                self._loading_dist = (dist, version)
                try:
                    loaded = ep.load()
                    if ep.name not in self._entries and not _is_module(loaded):
                        self.register(ep.name, loaded)
                except Exception as exc:  # a broken plugin must not take the harness down
                    self._plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                    warnings.warn(
                        f"oodbench: could not load {self.kind} plugin {ep.name!r} from {dist}: {exc}",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                finally:
                    self._loading_dist = None

    def get(self, name: str) -> RegistryEntry:
        """Return the entry for ``name`` or raise :class:`RegistryError` listing valid names."""
        if name not in self._entries:
            self._ensure_plugins()
        try:
            return self._entries[name]
        except KeyError:
            hint = ""
            if name in self._plugin_errors:
                hint = f" (a plugin of that name failed to load: {self._plugin_errors[name]})"
            raise RegistryError(
                f"unknown {self.kind} {name!r}{hint}; available: {', '.join(self.names()) or '(none)'}"
            ) from None

    def build(self, name: str, **kwargs: Any) -> Any:
        """Instantiate ``name`` with keyword arguments (``None`` values are dropped, timm-style)."""
        entry = self.get(name)
        return entry.obj(**{k: v for k, v in kwargs.items() if v is not None})

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching an fnmatch ``pattern``, sorted."""
        self._ensure_plugins()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        self._ensure_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


def _is_module(obj: Any) -> bool:
    import types

    return isinstance(obj, types.ModuleType)


def _qualname(obj: Any) -> str:
    mod = getattr(obj, "__module__", "?")
    return f"{mod}.{getattr(obj, '__qualname__', repr(obj))}"
