"""The types of notebook parameters: a value given with ``-p`` or by a profile, checked
against the type of the notebook's declared default before any kernel starts (the runner,
:mod:`apslib.notebooks`, calls :func:`check_type`)."""

from __future__ import annotations

import ast
import json

__all__ = ["PATH_SUFFIXES", "is_path_param", "check_type", "show"]

# Parameters whose names end so are paths (taken from the repository root when relative).
PATH_SUFFIXES = ("_dir", "_root", "_path")


def is_path_param(name: str) -> bool:
    """Whether parameter ``name`` is a path (its name ends in ``_dir``, ``_root``, ``_path``)."""
    return name.endswith(PATH_SUFFIXES)


# The types a parameter's default can have, with the words the error messages use.
_TYPE_WORDS = {
    bool: "a bool",
    int: "an int",
    float: "a float",
    str: "a str",
    list: "a list",
    tuple: "a list",
    dict: "a mapping",
}
_ANNOTATIONS = {"bool": bool, "int": int, "float": float, "str": str, "list": list, "dict": dict}
_NOTHING = object()


def _default_value(info: dict):
    """The default of a declared parameter as a Python value; ``_NOTHING`` when it is an
    expression (``2 ** 3``, a call) whose value needs a kernel. (papermill's
    ``inferred_type_name`` comes only from annotations, ``depth: int = 3``; the notebooks
    have none, so the default's literal decides.)"""
    try:
        return ast.literal_eval(str(info.get("default")))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _NOTHING


def _type_name(value) -> str:
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def show(value) -> str:
    """A value as it would be written in YAML (``-p`` values and profiles are YAML)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


def _fits(kind: type, value) -> bool:
    if isinstance(value, bool):  # bool is an int subclass: only a bool default takes one
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    if kind is tuple:  # YAML has no tuples
        return isinstance(value, (list, tuple))
    return isinstance(value, kind)


def check_type(nb_name: str, name: str, value, info: dict):
    """``value`` for parameter ``name`` of notebook ``nb_name``, checked against the type of
    its default (``info``: :func:`declared_parameters`' entry); returns the value to pass.

    An int default takes an int (not a bool); a float takes an int or a float (a string
    such as ``1e-3``, which YAML 1.1 reads as text, becomes that float); a str, bool, list
    or mapping default takes the same type; a ``None`` default (or one the notebook
    computes) takes anything. Path parameters (``*_dir``, ``*_root``, ``*_path``) take a
    str, and ``None`` where the default is ``None``. Raises ``TypeError`` with the end of
    the message, ``<notebook> expects <type> (default <default>), got <type>``.
    """
    default = _default_value(info)
    if default is _NOTHING:  # papermill's annotation, if any (``depth: int = 3``)
        kind = _ANNOTATIONS.get(str(info.get("inferred_type_name")))
    else:
        kind = None if default is None else type(default)
    if is_path_param(name):
        if isinstance(value, str) or (value is None and kind is None):
            return value
        expected = "a path (str)" + (" or null" if kind is None else "")
    elif kind is None or kind not in _TYPE_WORDS:
        return value
    else:
        if kind is float and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if _fits(kind, value):
            return value
        expected = _TYPE_WORDS[kind]
    shown = info.get("default")
    if isinstance(default, (list, tuple, dict)):  # one line, however the cell wraps it
        shown = json.dumps(default)
    raise TypeError(f"{nb_name} expects {expected} (default {shown}), got {_type_name(value)}")
