"""Stand-ins for third-party modules a student's file imports but never needs (torch,
matplotlib, a course helper that is not installed): importable while the file loads, refusing
any use afterwards. Used by the loaders of files (sandbox.impl) and notebooks (sandbox.notebook).
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import sys
import types


class StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Modules a student's file imports but never needs (torch, matplotlib, a course helper
    that is not installed), replaced while it loads by objects that refuse to be used.

    While the file loads, a stand-in lets itself be imported, subclassed, called and read
    (`import matplotlib.pyplot as plt`, `from torch import nn`, `class Net(nn.Module)`);
    afterwards any use raises ModuleNotFoundError naming the module and what used it."""

    def __init__(self):
        self.missing: dict[str, tuple[str, str]] = {}  # top -> (load error, importing file)
        self.armed = False

    def add(self, top: str, error: str, importer: str) -> None:
        self.missing[top] = (error, importer)

    def notes(self) -> list[str]:
        return [f"{who} imports {top}, which is not installed; the checked functions do not use it"
                for top, (_, who) in self.missing.items()]

    @contextlib.contextmanager
    def loading(self):
        self.armed = False
        sys.meta_path.insert(0, self)
        try:
            yield
        finally:
            sys.meta_path.remove(self)
            self.armed = True

    def done(self) -> None:
        """Take the stand-ins out of sys.modules (the loaded files keep theirs)."""
        self.armed = True
        for name in [n for n in sys.modules if n.split(".")[0] in self.missing]:
            if isinstance(sys.modules[name], _Missing):
                del sys.modules[name]

    # -- the import system's side --------------------------------------------------------
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.missing:
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _Missing(spec.name, self)

    def exec_module(self, module):
        pass


class _Missing(types.ModuleType):
    """A module, or something read from one, that is not installed."""

    def __init__(self, name: str, owner: StandIns):
        super().__init__(name)
        self.__path__ = []
        object.__setattr__(self, "_owner", owner)

    def _refuse(self, what: str):
        top = self.__name__.split(".")[0]
        who = self._owner.missing.get(top, ("", "the file"))[1]
        return ModuleNotFoundError(f"{who} imports {top}, which is not installed (No module named "
                                   f"'{top}'): the checked code uses {what}", name=top)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if self._owner.armed:
            raise self._refuse(f"{self.__name__}.{name}")
        return _Missing(f"{self.__name__}.{name}", self._owner)

    def __call__(self, *args, **kwargs):
        if self._owner.armed:
            raise self._refuse(f"{self.__name__}()")
        return _Missing(f"{self.__name__}()", self._owner)

    def __getitem__(self, key):
        if self._owner.armed:
            raise self._refuse(f"{self.__name__}[{key!r}]")
        return _Missing(f"{self.__name__}[{key!r}]", self._owner)

    def __setitem__(self, key, value):
        if self._owner.armed:
            raise self._refuse(f"{self.__name__}[{key!r}]")

    def __mro_entries__(self, bases):
        return (object,)  # `class Net(nn.Module)` while loading: a plain class
