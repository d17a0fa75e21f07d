"""A small language for validating JSON documents read from outside (bundle manifests, dataset.json).

A schema is a tree of ``Record``/``Array``/``Text``/``Integer``/``Number``/``MapOf``/``OneOf``/``Const``/
``Checked`` specs; a field that depends on another names it with ``Ref("dotted.path")`` (fields are
checked in order, so a Ref points to an earlier field). ``spec.check(value, where, root)`` raises
``Invalid`` naming the field and what is wrong; the caller turns that into its one-line error.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harlite.errors import HarliteError


@dataclass(frozen=True)
class Ref:
    """The value of an earlier manifest field (dotted path), optionally transformed (``len``, ...)."""

    path: str
    transform: Callable[[Any], Any] | None = None

    def resolve(self, root: dict[str, Any]) -> Any:
        node: Any = root
        for part in self.path.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return self.transform(node) if self.transform is not None else node

    def __str__(self) -> str:
        return self.path


Bound = float | int | Ref | None


class Spec:
    """One field's rule: ``check(value, where, root)`` raises ``Invalid`` with what is wrong."""

    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        raise NotImplementedError

    def check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        self._check(value, where, root)
        if self.equals is not None:
            expected = self.equals.resolve(root)
            if expected is not None and value != expected:
                raise Invalid(where, f"must equal {self.equals} ({show(expected)}), got {show(value)}")

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        raise NotImplementedError

    def _fail(self, value: Any, where: str, root: dict[str, Any]) -> None:
        raise Invalid(where, f"must be {self.describe(root)}, got {show(value)}")


class Invalid(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where} {problem}")


def _bound(bound: Bound, root: dict[str, Any]) -> float | None:
    value = bound.resolve(root) if isinstance(bound, Ref) else bound
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _range_text(lo: Bound, hi: Bound, root: dict[str, Any], lo_open: bool = False, hi_open: bool = False) -> str:
    def name(bound: Bound) -> str:
        value = _bound(bound, root)
        return f"{bound} ({number_text(value)})" if isinstance(bound, Ref) and value is not None else number_text(value)

    parts = []
    if _bound(lo, root) is not None:
        parts.append(f"{'>' if lo_open else '>='} {name(lo)}")
    if _bound(hi, root) is not None:
        parts.append(f"{'<' if hi_open else '<='} {name(hi)}")
    return " and ".join(parts)


@dataclass(frozen=True)
class Integer(Spec):
    """A JSON integer (not a bool, not 3.0) in ``lo..hi`` (either may be a Ref)."""

    lo: Bound = None
    hi: Bound = None
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        lo, hi = _bound(self.lo, root), _bound(self.hi, root)
        if lo is not None and hi is not None and not isinstance(self.lo, Ref) and not isinstance(self.hi, Ref):
            return f"an integer in {number_text(lo)}..{number_text(hi)}"
        limits = _range_text(self.lo, self.hi, root)
        return f"an integer {limits}" if limits else "an integer"

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        lo, hi = _bound(self.lo, root), _bound(self.hi, root)
        if (not isinstance(value, int) or isinstance(value, bool) or (lo is not None and value < lo)
                or (hi is not None and value > hi)):  # fmt: skip
            self._fail(value, where, root)


@dataclass(frozen=True)
class Number(Spec):
    """A finite JSON number (int or float, not a bool) within the given bounds."""

    gt: Bound = None
    ge: Bound = None
    lt: Bound = None
    le: Bound = None
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        lo, hi = (self.gt, True) if self.gt is not None else (self.ge, False)
        top, top_open = (self.lt, True) if self.lt is not None else (self.le, False)
        limits = _range_text(lo, top, root, hi, top_open)
        return f"a finite number {limits}" if limits else "a finite number"

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            self._fail(value, where, root)
        gt, ge, lt, le = (_bound(b, root) for b in (self.gt, self.ge, self.lt, self.le))
        if ((gt is not None and not value > gt) or (ge is not None and not value >= ge)
                or (lt is not None and not value < lt) or (le is not None and not value <= le)):  # fmt: skip
            self._fail(value, where, root)


_FORBIDDEN_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


@dataclass(frozen=True)
class Text(Spec):
    """A string of at most ``max_bytes`` UTF-8 bytes without control or format characters; optionally
    matching ``pattern`` (whole string), one of ``choices``, or free of the characters in ``forbid``."""

    max_bytes: int = 256
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    forbid: str = ""
    min_bytes: int = 1
    hint: str | None = None
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        if self.hint:
            return self.hint
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        extra = f" without {', '.join(repr(c) for c in self.forbid)}" if self.forbid else ""
        return f"text of {self.min_bytes} to {self.max_bytes} bytes without control characters{extra}"

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        if not isinstance(value, str) or any(unicodedata.category(c) in _FORBIDDEN_CATEGORIES for c in value):
            self._fail(value, where, root)
        if self.choices:
            if value not in self.choices:
                self._fail(value, where, root)
            return
        size = len(value.encode("utf-8"))
        if (not self.min_bytes <= size <= self.max_bytes or any(c in value for c in self.forbid)
                or (self.pattern is not None and not re.fullmatch(self.pattern, value))):  # fmt: skip
            self._fail(value, where, root)


@dataclass(frozen=True)
class Const(Spec):
    """Exactly ``value``."""

    value: Any
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        return show(self.value)

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        if value != self.value or type(value) is not type(self.value):
            self._fail(value, where, root)


@dataclass(frozen=True)
class Array(Spec):
    """A JSON list of ``item``; its length in ``min_len..max_len`` or exactly ``length`` (int or Ref)."""

    item: Spec
    min_len: int = 0
    max_len: int = 4096
    length: int | Ref | None = None
    unique: bool = False
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        n = self.length.resolve(root) if isinstance(self.length, Ref) else self.length
        count = (f"exactly {n}" + (f" (the length of {self.length.path})" if isinstance(self.length, Ref) else "")
                 if n is not None else f"{self.min_len} to {self.max_len}")  # fmt: skip
        return f"a list of {count}{' distinct' if self.unique else ''} items"

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        n = self.length.resolve(root) if isinstance(self.length, Ref) else self.length
        if not isinstance(value, list) or (n is not None and len(value) != n):
            self._fail(value, where, root)
        if n is None and not self.min_len <= len(value) <= self.max_len:
            self._fail(value, where, root)
        for i, item in enumerate(value):
            self.item.check(item, f"{where}[{i}]", root)
        if self.unique:
            seen = [json.dumps(v, sort_keys=True) for v in value]
            duplicate = next((value[i] for i, s in enumerate(seen) if s in seen[:i]), None)
            if duplicate is not None:
                raise Invalid(where, f"must hold distinct items, but {show(duplicate)} appears twice")


@dataclass(frozen=True)
class Record(Spec):
    """A JSON object with ``fields`` (checked in order); those in ``optional`` may be absent. Other keys
    are allowed (a newer harlite may add fields) but not checked."""

    fields: dict[str, Spec]
    optional: frozenset[str] = frozenset()
    equals: Ref | None = None
    closed: bool = False  # other keys are an error (a typo in a file a person writes)

    def describe(self, root: dict[str, Any]) -> str:
        return "an object with " + ", ".join(self.fields)

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        if not isinstance(value, dict):
            self._fail(value, where, root)
        extra = [k for k in value if k not in self.fields] if self.closed else []
        if extra:
            raise Invalid(
                where or "the document", f"has the unknown key {show(extra[0])}; it may hold {', '.join(self.fields)}"
            )
        for name, spec in self.fields.items():
            inner = f"{where}.{name}" if where else name
            if name not in value:
                if name in self.optional:
                    continue
                raise Invalid(inner, "is missing")
            spec.check(value[name], inner, root)


@dataclass(frozen=True)
class MapOf(Spec):
    """A JSON object whose keys match ``key`` and whose values match ``value``; ``required`` keys must be there."""

    key: Text
    value: Spec
    required: tuple[str, ...] = ()
    max_len: int = 256
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        return f"an object of at most {self.max_len} entries"

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        if not isinstance(value, dict) or len(value) > self.max_len:
            self._fail(value, where, root)
        for name in self.required:
            if name not in value:
                raise Invalid(f"{where}.{name}", "is missing")
        for name, item in value.items():
            try:
                self.key.check(name, "", root)
            except Invalid:
                raise Invalid(where, f"has the key {show(name)}, which must be {self.key.describe(root)}") from None
            self.value.check(item, f"{where}.{name}", root)


@dataclass(frozen=True)
class OneOf(Spec):
    """A value matching one of ``options`` (tried in order); ``hint`` says what is expected."""

    options: tuple[Spec, ...]
    hint: str
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        return self.hint

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        for option in self.options:
            try:
                option.check(value, where, root)
                return
            except Invalid:
                continue
        self._fail(value, where, root)


@dataclass(frozen=True)
class Checked(Spec):
    """A value that ``rule`` (a function raising a HarliteError for a bad value) returns unchanged."""

    rule: Callable[[Any], Any]
    hint: str
    equals: Ref | None = None

    def describe(self, root: dict[str, Any]) -> str:
        return self.hint

    def _check(self, value: Any, where: str, root: dict[str, Any]) -> None:
        try:
            accepted = self.rule(value) == value
        except HarliteError:
            accepted = False
        if not accepted:
            self._fail(value, where, root)


def nullable(spec: Spec) -> OneOf:
    """``spec`` or JSON null."""
    return OneOf((Const(None), spec), f"null or {spec.describe({})}")


def number_text(value: Any) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def show(value: Any) -> str:
    """A short, one-line rendering of a value for a message (control characters escaped)."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_json(data: bytes, what: str, error: type[HarliteError], hint: str = "") -> Any:
    """Strict JSON of a file read from outside: UTF-8 (a BOM allowed), no NaN or Infinity, no key twice in
    one object; ``error`` (one line naming ``what``) otherwise."""
    fix = f"; {hint}" if hint else ""
    try:
        return json.loads(
            data.decode("utf-8-sig"), parse_constant=no_json_constants, object_pairs_hook=no_duplicate_keys
        )
    except UnicodeDecodeError:
        raise error(f"{what} is not UTF-8 text{fix}.") from None
    except json.JSONDecodeError as e:
        raise error(f"{what} is not valid JSON (line {e.lineno}: {e.msg}){fix}.") from None
    except (ValueError, RecursionError) as e:
        raise error(f"{what} is not valid JSON ({str(e) or 'nested too deeply'}){fix}.") from None


def no_json_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    duplicate = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if duplicate is not None:
        raise ValueError(f"the key {duplicate!r} appears twice in one object")
    return dict(pairs)
