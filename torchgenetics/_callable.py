"""Model subpackages that are also their main function: ``tg.susie(X, y)`` and ``tg.susie.scan``."""

from __future__ import annotations

import types


class _CallableModule(types.ModuleType):
    """A module whose call runs its main function (``__main_function__``)."""

    def __call__(self, *args, **kwargs):
        return self.__main_function__(*args, **kwargs)


def make_callable(module: types.ModuleType, function) -> types.ModuleType:
    """Let ``module(...)`` call ``function(...)``, keeping every attribute of the module.

    Parameters
    ----------
    module : types.ModuleType
        A subpackage such as ``torchgenetics.susie``.
    function : callable
        Its main entry point, such as ``torchgenetics.susie.susie``.

    Returns
    -------
    types.ModuleType
        The same module object, now callable.

    Examples
    --------
    >>> import torchgenetics as tg
    >>> callable(tg.susie) and hasattr(tg.susie, "susie_rss")
    True
    """
    module.__main_function__ = function
    module.__class__ = _CallableModule
    return module
