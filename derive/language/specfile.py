"""Identities written in a TOML file (`*.derive.toml`), read without evaluating any of it.

```toml
[[identity]]
name = "sigmoid_derivative"                  # letters, digits, '_'
description = "d sigma/dx = sigma (1 - sigma)"  # optional
variables = { x = "real" }                   # name = domain (a scalar), or
# variables = { z = { shape = "vector(n)" }, t = { shape = "vector(B)", domain = "label(k)" },
#               X = { shape = "matrix(n, n)", domain = "spd" } }
sizes = [{ n = 3 }, { n = 5 }]               # one table per size set; needed when shapes name sizes
define = { s = "sigmoid(x)" }                # named intermediates, in order (or [[identity.define]]
                                             # tables with name = ..., formula = ...)
target = "s"                                 # optional: the last definition by default
wrt = "x"                                    # one gradient claim: d target / d wrt = claim
claim = "s * (1 - s)"
# claims = { x = "...", w = "..." }          # several gradient claims, keyed by wrt
# equals = "..."                             # a value identity: target = this formula
```

Shapes: "scalar", "vector(n)", "matrix(n, m)" (size names or integers). Domains: real,
positive, unit_interval, simplex, one_hot, binary, label(k) (a class index; formulas see its
one-hot row, so a label of shape vector(B) is a (B, k) array and `onehot(t)` is `t`), spd,
symmetric, invertible. Formulas are read by `derive.parse` (never evaluated as Python); they may use the
variables, the definitions above them, and the size names (n, B, k) as numbers.

Every error is one line: `file:line:col: identity 'name': what was wrong; what is allowed`.
"""

from __future__ import annotations

import bisect
import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import ParseError, SpecError
from ..model.domains import (
    BINARY,
    INVERTIBLE,
    ONE_HOT,
    POSITIVE,
    REAL,
    SIMPLEX,
    SPD_MATRIX,
    SYMMETRIC,
    UNIT_INTERVAL,
    Domain,
    Label,
)
from ..model.spec import Claim, Definition, Identity, Variable
from .parse import parse_formula

MAX_BYTES = 1_000_000
MAX_IDENTITIES = 1000
MAX_SIZE = 64

DOMAINS: dict[str, Domain] = {
    "real": REAL, "positive": POSITIVE, "unit_interval": UNIT_INTERVAL, "simplex": SIMPLEX,
    "one_hot": ONE_HOT, "binary": BINARY, "spd": SPD_MATRIX, "symmetric": SYMMETRIC,
    "invertible": INVERTIBLE,
}
DOMAIN_HELP = f"domains: {', '.join(DOMAINS)}, label(k)"
SHAPE_HELP = "shapes: scalar, vector(n), matrix(n, m) (size names or integers from 1 to 64)"
IDENTITY_KEYS = ("name", "description", "family", "source", "variables", "sizes", "define",
                 "target", "wrt", "claim", "claims", "equals")
_IDENT = r"[A-Za-z][A-Za-z0-9_]*"
_SHAPE = re.compile(rf"\s*(?:(scalar)|vector\(\s*({_IDENT}|\d+)\s*\)"
                    rf"|matrix\(\s*({_IDENT}|\d+)\s*,\s*({_IDENT}|\d+)\s*\))\s*\Z")
_LABEL = re.compile(rf"\s*label\(\s*({_IDENT})\s*\)\s*\Z")
_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_spec(path: str | Path) -> list[Identity]:
    """The identities in a `.derive.toml` file; raises SpecError (ParseError) with file:line:col."""
    path = Path(path)
    where = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ParseError(f"{where}:1:1: file is {size} bytes; spec files may have at most "
                             f"{MAX_BYTES} bytes: split it", where=where)
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except ParseError:
        raise
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        why = getattr(exc, "strerror", None) or exc
        raise SpecError(f"{ascii(where)[1:-1]}: cannot read the file ({why}); "
                        "give the path of a .derive.toml file") from None
    if len(raw) > MAX_BYTES:
        raise ParseError(f"{where}:1:1: file is over {MAX_BYTES} bytes; split it", where=where)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ParseError(f"{where}:{line}:{col}: the file is not UTF-8 text; save it as UTF-8",
                         where=where, line=line, col=col) from None
    return loads_spec(text, where=where)


def loads_spec(text: str, *, where: str = "<string>") -> list[Identity]:
    """The identities in TOML text (see the module docstring for the format)."""
    if len(text) > MAX_BYTES:
        raise ParseError(f"{where}:1:1: text is {len(text)} characters; at most {MAX_BYTES}", where=where)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS.search(msg)
        lines = text.split("\n")
        line, col = (int(m.group(1)), int(m.group(2))) if m else (len(lines), len(lines[-1]) + 1)
        what = re.sub(r"\s*\(at [^)]*\)", "", msg).strip().rstrip(".") or "invalid TOML"
        if what.startswith("Cannot overwrite"):
            line, col = _duplicate_key(lines) or (line, col)
        raise ParseError(f"{where}:{line}:{col}: malformed TOML: {what[:200]}; see "
                         "https://toml.io (keys may appear once; strings in quotes)",
                         where=where, line=line, col=col) from None
    except (RecursionError, MemoryError):
        raise ParseError(f"{where}:1:1: TOML nested too deeply to read; identities need at most "
                         "two levels of tables", where=where) from None
    return _Reader(text, where).read(data)


def _duplicate_key(lines: list[str]) -> tuple[int, int] | None:
    """Where a plain `key =` repeats within one table (tomllib reports the end of the file)."""
    seen: set[str] = set()
    for i, row in enumerate(lines):
        if re.match(r"\s*\[", row):
            seen = set()
            continue
        m = re.match(r"(\s*)([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=", row)
        if m:
            key = m.group(2).strip('"')
            if key in seen:
                return i + 1, len(m.group(1)) + 1
            seen.add(key)
    return None


@dataclass
class _Ctx:
    """Where we are: the file, the identity's block of lines, its name."""

    reader: "_Reader"
    block: int
    name: str = ""

    def pos(self, *path: str) -> tuple[int, int]:
        return self.reader.find(self.block, path)

    def error(self, path: tuple[str, ...], what: str, allowed: str) -> ParseError:
        line, col = self.pos(*path)
        who = f"identity '{self.name}': " if self.name else f"identity #{self.block + 1}: "
        msg = " ".join(f"{self.reader.where}:{line}:{col}: {who}{what}; {allowed}".split())
        return ParseError(msg, where=self.reader.where, line=line, col=col)


class _Reader:
    def __init__(self, text: str, where: str) -> None:
        self.text, self.where = text, where
        self.lines = text.split("\n")
        self.starts = [0]
        for row in self.lines:
            self.starts.append(self.starts[-1] + len(row) + 1)
        header = re.compile(r"\s*\[\[\s*(?:identity|\"identity\"|'identity')\s*\]\]")
        self.blocks = [i for i, row in enumerate(self.lines) if header.match(row)]

    # --- locating keys in the raw text (tomllib gives no positions) ---------------------------
    def _span(self, block: int) -> tuple[int, int]:
        if not self.blocks:
            return 0, len(self.lines)
        block = min(block, len(self.blocks) - 1)
        end = self.blocks[block + 1] if block + 1 < len(self.blocks) else len(self.lines)
        return self.blocks[block], end

    def find(self, block: int, path: tuple[str, ...], value: str | None = None) -> tuple[int, int]:
        """Line and column (1-based) of the last key of `path` in the block (of `value`'s
        text after it, if given); falls back to the nearest enclosing key found."""
        start, end = self._span(block)
        lo = self.starts[start]
        hi = self.starts[end] if end < len(self.starts) else len(self.text)
        found = lo
        for key in path:
            k = re.escape(key)
            pattern = re.compile(rf"(?m)(?:^[ \t]*\[\[?[ \t]*identity[ \t]*\.[ \t]*(?P<h>{k})[ \t]*\]"
                                 rf"|(?<![\w\-\"'])(?P<k>{k})[ \t]*=|[\"'](?P<q>{k})[\"'][ \t]*=)")
            m = pattern.search(self.text, found, hi)
            if m is None:
                break
            found = m.start(m.lastgroup or 0)
        if value:
            first = value.split("\n", 1)[0][:60]
            hits = [self.text.find(q + first, found, hi) for q in "\"'"] if first else []
            hits = [h for h in hits if h >= 0]
            if hits:
                found = min(hits) + 1
        return self._line_col(found)

    def _line_col(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset) - 1
        return line + 1, offset - self.starts[line] + 1

    # --- reading ------------------------------------------------------------------------------
    def read(self, data: Mapping[str, Any]) -> list[Identity]:
        extra = [k for k in data if k != "identity"]
        if extra:
            line, col = self._first_key(extra[0])
            raise ParseError(f"{self.where}:{line}:{col}: unknown top-level key '{extra[0]}'; "
                             "a spec file holds [[identity]] tables only", where=self.where,
                             line=line, col=col)
        items = data.get("identity")
        if items is None:
            raise ParseError(f"{self.where}:1:1: no [[identity]] tables; start each identity with a "
                             "line [[identity]] (see examples/identities.derive.toml)", where=self.where)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            line, col = self._first_key("identity")
            raise ParseError(f"{self.where}:{line}:{col}: 'identity' must be an array of tables; "
                             "write each one under a line [[identity]]", where=self.where,
                             line=line, col=col)
        if len(items) > MAX_IDENTITIES:
            raise ParseError(f"{self.where}:1:1: {len(items)} identities; a file may hold at most "
                             f"{MAX_IDENTITIES}: split it", where=self.where)
        out: list[Identity] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            identity = self.identity(_Ctx(self, i), item)
            if identity.name in seen:
                raise _Ctx(self, i, identity.name).error(
                    ("name",), f"the name is also used by identity #{seen[identity.name] + 1}",
                    "give every identity in a file its own name")
            seen[identity.name] = i
            out.append(identity)
        return out

    def _first_key(self, key: str) -> tuple[int, int]:
        m = re.search(rf"(?m)^[ \t]*\[*[ \t]*[\"']?{re.escape(key)}\b", self.text)
        return self._line_col(m.start()) if m else (1, 1)

    def identity(self, ctx: _Ctx, item: Mapping[str, Any]) -> Identity:
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ctx.error((), "has no name" if name is None else f"name must be a string, got {name!r}",
                            "add name = \"my_identity\" under [[identity]]")
        ctx.name = ascii(name[:60])[1:-1]  # escaped: no raw control characters in messages
        if not re.fullmatch(_IDENT, name):
            raise ctx.error(("name",), f"name {ascii(name[:60])} is not valid",
                            "use letters, digits and '_', starting with a letter")
        for key in item:
            if key not in IDENTITY_KEYS:
                close = difflib.get_close_matches(key, IDENTITY_KEYS, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ctx.error((key,), f"unknown key {key[:60]!r}", f"{hint}keys: {', '.join(IDENTITY_KEYS)}")
        for key in ("description", "family", "source"):
            if key in item and not isinstance(item[key], str):
                raise ctx.error((key,), f"{key} must be a string", f"write {key} = \"...\"")
        variables = self.variables(ctx, item)
        sizes = self.sizes(ctx, item, variables)
        size_refs = self.size_refs(ctx, variables)
        definitions = self.definitions(ctx, item, variables, size_refs)
        def_names = [d.name for d in definitions]
        target = item.get("target", def_names[-1])
        if not isinstance(target, str) or target not in def_names:
            raise ctx.error(("target",), f"target {target!r} is not one of the definitions",
                            f"definitions: {', '.join(def_names)}")
        claims = self.claims(ctx, item, variables, def_names, size_refs)
        try:
            return Identity(name, variables=tuple(variables), definitions=tuple(definitions),
                            claims=tuple(claims), target=target, sizes=sizes,
                            family=item.get("family", "user"),
                            source=item.get("source", f"{self.where}:{ctx.pos()[0]}"),
                            description=item.get("description", ""))
        except SpecError as exc:
            raise ctx.error((), str(exc).replace(f"identity {name!r}: ", ""), "fix the identity") from None

    def variables(self, ctx: _Ctx, item: Mapping[str, Any]) -> list[Variable]:
        table = item.get("variables")
        if not isinstance(table, dict) or not table:
            raise ctx.error(("variables",), "needs a table of variables",
                            "e.g. variables = { x = \"real\", z = { shape = \"vector(n)\" } }")
        out = []
        for vname, spec in table.items():
            path = ("variables", vname)
            if not re.fullmatch(_IDENT, vname):
                raise ctx.error(path, f"variable name {vname[:60]!r} is not valid",
                                "use letters, digits and '_', starting with a letter")
            if isinstance(spec, str):
                shape_text, domain_text = "scalar", spec
            elif isinstance(spec, dict):
                unknown = [k for k in spec if k not in ("shape", "domain")]
                if unknown:
                    raise ctx.error(path, f"variable '{vname}' has an unknown key {unknown[0][:40]!r}",
                                    "a variable has shape = \"...\" and domain = \"...\"")
                shape_text, domain_text = spec.get("shape", "scalar"), spec.get("domain", "real")
            else:
                raise ctx.error(path, f"variable '{vname}' must be a domain string or a table",
                                "e.g. x = \"real\" or x = { shape = \"vector(n)\", domain = \"positive\" }")
            if not isinstance(shape_text, str) or not isinstance(domain_text, str):
                raise ctx.error(path, f"variable '{vname}': shape and domain must be strings",
                                f"{SHAPE_HELP}; {DOMAIN_HELP}")
            shape = self.shape(ctx, path, vname, shape_text)
            domain = self.domain(ctx, path, vname, domain_text, shape)
            try:
                out.append(Variable(vname, shape, domain))
            except SpecError as exc:
                raise ctx.error(path, str(exc), SHAPE_HELP) from None
        return out

    def shape(self, ctx: _Ctx, path: tuple[str, ...], vname: str, text: str) -> tuple[str | int, ...]:
        m = _SHAPE.match(text)
        if m is None:
            raise ctx.error(path, f"variable '{vname}' has a bad shape {text[:60]!r}", SHAPE_HELP)
        if m.group(1):
            return ()
        axes = tuple(a for a in m.groups()[1:] if a is not None)
        out: list[str | int] = []
        for a in axes:
            if a.isdigit():
                if not 1 <= int(a) <= MAX_SIZE:
                    raise ctx.error(path, f"variable '{vname}' has a size {a}", SHAPE_HELP)
                out.append(int(a))
            else:
                out.append(a)
        return tuple(out)

    def domain(self, ctx: _Ctx, path: tuple[str, ...], vname: str, text: str,
               shape: tuple[str | int, ...]) -> Domain:
        key = text.strip()
        m = _LABEL.match(key)
        if m:
            return Label(m.group(1))
        domain = DOMAINS.get(key)
        if domain is None:
            close = difflib.get_close_matches(key, [*DOMAINS, "label(k)"], n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ctx.error(path, f"variable '{vname}' has an unknown domain {text[:60]!r}",
                            f"{hint}{DOMAIN_HELP}")
        if key in ("simplex", "one_hot") and not shape:
            raise ctx.error(path, f"variable '{vname}': domain {key} needs a vector or matrix shape",
                            "its rows (the last axis) sum to one, e.g. shape = \"vector(k)\"")
        if key in ("spd", "symmetric", "invertible") and (len(shape) != 2 or shape[0] != shape[1]):
            raise ctx.error(path, f"variable '{vname}': domain {key} needs a square matrix shape",
                            "e.g. shape = \"matrix(n, n)\"")
        return domain

    def sizes(self, ctx: _Ctx, item: Mapping[str, Any], variables: list[Variable]) -> tuple[dict[str, int], ...]:
        needed = {a for v in variables for a in v.shape if isinstance(a, str)}
        needed |= {v.domain.classes for v in variables if isinstance(v.domain, Label)}
        raw = item.get("sizes", [])
        if isinstance(raw, dict):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
            raise ctx.error(("sizes",), "sizes must be a list of tables", "e.g. sizes = [{ n = 3 }, { n = 5 }]")
        if len(raw) > 16:
            raise ctx.error(("sizes",), f"{len(raw)} size sets", "give at most 16")
        if needed and not raw:
            raise ctx.error(("variables",), f"the shapes use {', '.join(sorted(needed))} but no sizes are given",
                            f"add e.g. sizes = [{{ {', '.join(f'{n} = 3' for n in sorted(needed))} }}]")
        out = []
        for s in raw:
            for key, n in s.items():
                if key not in needed:
                    raise ctx.error(("sizes", key), f"size {key[:40]!r} is not used by any shape",
                                    f"sizes used: {', '.join(sorted(needed)) or 'none'}")
                if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_SIZE:
                    raise ctx.error(("sizes", key), f"size {key} = {str(n)[:20]} is not an integer from 1 to {MAX_SIZE}",
                                    f"e.g. {key} = 3")
            missing = sorted(needed - set(s))
            if missing:
                raise ctx.error(("sizes",), f"a size set {s} does not give {', '.join(missing)}",
                                "every size set gives every size name the shapes use")
            out.append(dict(s))
        return tuple(out) if out else ({},)

    def size_refs(self, ctx: _Ctx, variables: list[Variable]) -> dict[str, tuple[str, int]]:
        """Each size name and a (variable, axis) that has that length, for formulas."""
        refs: dict[str, tuple[str, int]] = {}
        for v in variables:
            for axis, a in enumerate(v.shape):
                if isinstance(a, str):
                    refs.setdefault(a, (v.name, axis))
            if isinstance(v.domain, Label):
                refs.setdefault(v.domain.classes, (v.name, len(v.shape)))
        names = {v.name for v in variables}
        for size in refs:
            if size in names:
                raise ctx.error(("variables", size), f"'{size}' is both a size and a variable",
                                "give sizes and variables different names")
        return refs

    def definitions(self, ctx: _Ctx, item: Mapping[str, Any], variables: list[Variable],
                    size_refs: dict[str, tuple[str, int]]) -> list[Definition]:
        raw = item.get("define")
        pairs: list[tuple[str, Any, tuple[str, ...]]] = []
        if isinstance(raw, dict):
            pairs = [(k, f, ("define", k)) for k, f in raw.items()]
        elif isinstance(raw, list) and all(isinstance(d, dict) for d in raw):
            for d in raw:
                if set(d) != {"name", "formula"}:
                    raise ctx.error(("define",), "each [[identity.define]] table needs name and formula",
                                    "e.g. name = \"s\" and formula = \"sigmoid(x)\"")
                pairs.append((str(d["name"]), d["formula"], ("define", "formula")))
        if not pairs:
            raise ctx.error(("define",), "needs at least one definition",
                            "e.g. define = { s = \"sigmoid(x)\" } (named intermediates, in order)")
        names = {v.name for v in variables}
        out = []
        for dname, formula, path in pairs:
            if not re.fullmatch(_IDENT, dname):
                raise ctx.error(path, f"definition name {dname[:60]!r} is not valid",
                                "use letters, digits and '_', starting with a letter")
            if dname in names or dname in size_refs:
                raise ctx.error(path, f"the name '{dname}' is already used", "give each definition its own name")
            parsed = self.formula(ctx, path, formula, names, size_refs, f"definition '{dname}'")
            out.append(Definition(dname, parsed, formula))
            names.add(dname)
        return out

    def claims(self, ctx: _Ctx, item: Mapping[str, Any], variables: list[Variable], def_names: list[str],
               size_refs: dict[str, tuple[str, int]]) -> list[Claim]:
        names = {v.name for v in variables} | set(def_names)
        by_name = {v.name: v for v in variables}
        wanted: list[tuple[str | None, Any, tuple[str, ...]]] = []
        if ("wrt" in item) != ("claim" in item):
            raise ctx.error(("wrt" if "wrt" in item else "claim",), "wrt and claim go together",
                            "write wrt = \"x\" and claim = \"...\" (d target / d x = claim)")
        if "wrt" in item:
            wanted.append((item["wrt"], item["claim"], ("claim",)))
        if "claims" in item:
            if not isinstance(item["claims"], dict) or not item["claims"]:
                raise ctx.error(("claims",), "claims must be a table wrt = formula",
                                "e.g. claims = { x = \"w\", w = \"x\" }")
            wanted.extend((k, f, ("claims", k)) for k, f in item["claims"].items())
        if "equals" in item:
            wanted.append((None, item["equals"], ("equals",)))
        if not wanted:
            raise ctx.error((), "has no claim",
                            "add wrt = \"x\" and claim = \"...\", claims = { x = \"...\" }, or equals = \"...\"")
        out = []
        for wrt, formula, path in wanted:
            if wrt is not None:
                if not isinstance(wrt, str) or wrt not in by_name:
                    raise ctx.error(("wrt",) if path == ("claim",) else path,
                                    f"wrt {str(wrt)[:60]!r} is not a variable",
                                    f"variables: {', '.join(by_name)}")
                if not by_name[wrt].domain.differentiable:
                    raise ctx.error(("wrt",) if path == ("claim",) else path,
                                    f"cannot differentiate with respect to '{wrt}' (domain "
                                    f"{by_name[wrt].domain} is discrete)", "differentiate with respect to a real variable")
            label = f"claim d/d{wrt}" if wrt else "claim (equals)"
            parsed = self.formula(ctx, path, formula, names, size_refs, label)
            out.append(Claim(parsed, wrt=wrt, text=formula))
        return out

    def formula(self, ctx: _Ctx, path: tuple[str, ...], formula: Any, names: set[str],
                size_refs: dict[str, tuple[str, int]], label: str) -> Any:
        if not isinstance(formula, str):
            raise ctx.error(path, f"{label}: a formula must be a string, got {type(formula).__name__}",
                            "write it in quotes, e.g. \"s * (1 - s)\"")
        line, col = self.find(ctx.block, path, formula)
        sizes = {k: v for k, v in size_refs.items() if k not in names}
        return parse_formula(formula, names=names, where=self.where, line=line, col=col, sizes=sizes,
                             context=f"identity '{ctx.name}': {label}")


__all__ = ["load_spec", "loads_spec", "DOMAINS", "MAX_BYTES", "MAX_IDENTITIES"]
