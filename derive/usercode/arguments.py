"""The arguments of a user's torch code, as users pass them.

Two forms, both matched to the forward's parameters:
  * `args=(x, w, 0.5, None)`: gradcheck's habit, positional as in `Fn.apply`. Floating tensors
    give shapes, dtypes and devices, and samples are drawn near them (same signs, magnitudes
    within a factor of about 2; the example itself is sample 0); numbers, None and integer
    tensors pass through unchanged, as constants. Where some tensors have requires_grad, only
    those are differentiated (the others are constants, as in gradcheck).
  * `inputs={"x": ("n",), "w": (("n",), "positive")}` with `sizes=` and `constants={...}`:
    declared shapes and domains (a Domain or its name), matched to the forward's parameters by
    name (in declared order only when no name matches and the counts agree).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import SpecError
from ..language.specfile import DOMAINS
from ..model.domains import REAL, Domain, Label
from ..model.spec import Variable

MAX_ENTRIES = 1_000_000


@dataclass(frozen=True)
class Slot:
    """One positional argument of the forward: drawn per sample, or fixed."""

    name: str
    drawn: bool                      # a new value per sample (declared inputs, example tensors)
    differentiable: bool = False
    shape: tuple[int, ...] = ()
    domain: Domain | None = None
    example: np.ndarray | None = None
    value: Any = None                # a fixed argument: passed to every call as it is

    def describe(self) -> str:
        if self.drawn:
            return f"{self.name}{list(self.shape)}" + (f" in {self.domain}" if self.domain else " near your example")
        return f"{self.name}={_short(self.value)}"


def _short(value: Any) -> str:
    text = repr(value) if not hasattr(value, "shape") else f"<tensor {tuple(value.shape)}>"
    return text if len(text) <= 40 else text[:37] + "..."


def function_class(fn_class: Any, torch: Any, what: str) -> tuple[list[inspect.Parameter], bool]:
    """The forward's parameters after ctx, and whether it is new-style (setup_context); a
    one-line error for what is not a Function or is a legacy (non-static) one."""
    if not (isinstance(fn_class, type) and issubclass(fn_class, torch.autograd.Function)):
        hint = (" (pass the class, not an instance)" if isinstance(fn_class, torch.autograd.Function) else "")
        raise SpecError(f"{what} takes a torch.autograd.Function subclass{hint}, got {fn_class!r}")
    own = next((k for k in fn_class.__mro__ if "forward" in vars(k)), None)
    if own is None or own.__module__.split(".")[0] == "torch":
        raise SpecError(f"{fn_class.__name__} defines no forward: write @staticmethod def forward(ctx, ...)")
    for method in ("forward", "backward"):
        holder = next((k for k in fn_class.__mro__ if method in vars(k)), None)
        if holder is not None and holder.__module__.split(".")[0] != "torch" and \
                not isinstance(vars(holder)[method], staticmethod):
            raise SpecError(f"{fn_class.__name__}.{method} is an instance method (a legacy, non-static "
                            "autograd.Function, which PyTorch no longer runs): make forward and backward "
                            "@staticmethod, take ctx as their first argument, and call "
                            f"{fn_class.__name__}.apply(...)")
    new_style = any("setup_context" in vars(k) for k in fn_class.__mro__ if k.__module__.split(".")[0] != "torch")
    params = list(inspect.signature(fn_class.forward).parameters.values())
    return (params if new_style else params[1:]), new_style


def _positional(params: list[inspect.Parameter]) -> tuple[list[str], bool]:
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return names, any(p.kind == p.VAR_POSITIONAL for p in params)


def bind_args(args: Any, params: list[inspect.Parameter], label: str, torch: Any) -> list[Slot]:
    """Slots from example arguments (see the module doc)."""
    if not isinstance(args, (tuple, list)):
        args = (args,)
    names, star = _positional(params)
    required = [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(args) < len(required) or (len(args) > len(names) and not star):
        raise SpecError(f"{label} takes ({', '.join(names)}) but args has {len(args)} values: pass them "
                        "positionally as to .apply, numbers and None included")
    names = names + [f"arg{i}" for i in range(len(names), len(args))]
    floats = [a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
    if not floats:
        raise SpecError(f"args for {label} hold no floating-point tensor: nothing to differentiate")
    marked = any(a.requires_grad for a in floats)
    slots = []
    for name, a in zip(names, args):
        if isinstance(a, torch.Tensor) and a.is_floating_point() and (a.requires_grad or not marked):
            example = a.detach().to("cpu", torch.float64).numpy().copy()
            if example.size > MAX_ENTRIES:
                raise SpecError(f"argument {name} has {example.size} entries; at most {MAX_ENTRIES}")
            if not np.isfinite(example).all():
                raise SpecError(f"argument {name} has non-finite entries: pass finite example values")
            slots.append(Slot(name, True, True, tuple(example.shape), None, example))
        else:
            slots.append(Slot(name, False, value=a))
    return slots


def _domain(name: str, spec: Any) -> Domain:
    if isinstance(spec, Domain):
        return spec
    if isinstance(spec, str):
        if spec in DOMAINS:
            return DOMAINS[spec]
        raise SpecError(f"input {name!r}: unknown domain {spec!r}; use one of {', '.join(DOMAINS)}, "
                        "a derive Domain such as derive.Label('k'), or leave it out for real")
    raise SpecError(f"input {name!r}: the domain {spec!r} is not valid; give a derive Domain "
                    f"(e.g. derive.POSITIVE) or its name ({', '.join(DOMAINS)})")


def _shape(name: str, spec: Any) -> tuple[str | int, ...]:
    shape = (spec,) if isinstance(spec, (str, int)) and not isinstance(spec, bool) else spec
    if isinstance(shape, str) and shape in DOMAINS:
        raise SpecError(f"input {name!r}: {spec!r} is a domain, not a shape; write (shape, {spec!r}), "
                        f"e.g. (('n',), {spec!r})")
    if not isinstance(shape, (tuple, list)) or not all(
            (isinstance(a, int) and not isinstance(a, bool) and a >= 1) or (isinstance(a, str) and a.isidentifier())
            for a in shape):
        raise SpecError(f"input {name!r}: shape {spec!r} is not valid; give a tuple of size names or positive "
                        "integers, e.g. ('n',) or (3, 'k'), optionally with a domain: (('n',), 'positive')")
    return tuple(shape)


def declared(inputs: Any) -> list[tuple[str, tuple[str | int, ...], Domain]]:
    """(name, shape, domain) for each declared input, validated."""
    if isinstance(inputs, Mapping):
        items = list(inputs.items())
    elif isinstance(inputs, (list, tuple)) and inputs and all(isinstance(v, Variable) for v in inputs):
        items = [(v.name, v) for v in inputs]
    else:
        raise SpecError(f"inputs must be a dict name -> shape or (shape, domain), or a list of Variables; got "
                        f"{type(inputs).__name__} (or pass example tensors as args=(...))")
    if not items:
        raise SpecError("inputs is empty: declare every argument, e.g. inputs={'x': ('n',)}, or pass args=(...)")
    out = []
    for name, spec in items:
        if not isinstance(name, str) or not name.isidentifier():
            raise SpecError(f"input name {name!r} is not a valid Python identifier")
        if isinstance(spec, Variable):
            out.append((name, tuple(spec.shape), spec.domain))
        elif isinstance(spec, (Domain, str)) and (isinstance(spec, Domain) or spec in DOMAINS):
            out.append((name, (), _domain(name, spec)))
        elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], (Domain, str)) \
                and not (isinstance(spec[1], str) and spec[1].isidentifier() and spec[1] not in DOMAINS
                         and not isinstance(spec[0], (tuple, list))):
            out.append((name, _shape(name, spec[0]), _domain(name, spec[1])))
        else:
            out.append((name, _shape(name, spec), REAL))
    return out


def bind_declared(inputs: list[tuple[str, tuple[str | int, ...], Domain]], constants: Mapping[str, Any] | None,
                  params: list[inspect.Parameter], sizes: Mapping[str, int], label: str) -> list[Slot]:
    """Slots for declared inputs and named constants, in the forward's parameter order; a
    parameter left out before a declared one gets its default."""
    constants = dict(constants or {})
    names, star = _positional(params)
    given = [n for n, _, _ in inputs] + list(constants)
    if len(set(given)) != len(given):
        raise SpecError(f"{label}: a name is given twice, as an input and as a constant ({', '.join(given)})")
    resolved = {n: (tuple(int(sizes[a]) if isinstance(a, str) else int(a) for a in shape), d)
                for n, shape, d in inputs}
    defaults = {p.name: p.default for p in params}
    if names and set(given) <= set(names):
        last = max(names.index(n) for n in given)
        order = names[:last + 1]
        missing = [n for n in names if n not in given and defaults[n] is inspect.Parameter.empty]
        if missing:
            raise SpecError(f"{label} takes ({', '.join(names)}) but {', '.join(missing)} is neither an input "
                            f"nor a constant: declare it in inputs= or pass constants={{'{missing[0]}': ...}}")
    elif not constants and not any(n in names for n in given) and (star or len(given) <= len(names)):
        order = given  # no name matches any parameter: the declared order (positional)
    else:
        unknown = [n for n in given if n not in names]
        raise SpecError(f"{label} takes ({', '.join(names)}); {', '.join(unknown)} is not one of its parameters: "
                        "name each input and constant after the forward's parameter")
    slots = []
    for n in order:
        if n in constants:
            slots.append(Slot(n, False, value=constants[n]))
        elif n in resolved:
            shape, dom = resolved[n]
            slots.append(Slot(n, True, dom.differentiable, shape, dom))
        else:
            slots.append(Slot(n, False, value=defaults[n]))
    return slots


def draw(slots: Sequence[Slot], rng: np.random.Generator, count: int, sizes: Mapping[str, int],
         first: int = 0) -> dict[str, np.ndarray]:
    """A batch for the drawn slots; near an example: same signs, magnitudes within about a factor
    of 2 (log-normal), zeros moved by a quarter of the example's mean magnitude. Row 0 of the
    first chunk (`first` == 0) is the example itself."""
    out = {}
    for s in slots:
        if not s.drawn:
            continue
        if s.example is None:
            out[s.name] = np.asarray(s.domain.sample(rng, (count, *s.shape), dict(sizes)))
            continue
        x0 = s.example
        spread = float(np.mean(np.abs(x0))) if x0.size and np.any(x0) else 1.0
        z = rng.normal(size=(count, *x0.shape))
        batch = np.where(x0 != 0, x0 * np.exp(0.25 * z), 0.25 * spread * z)
        if first == 0 and count:
            batch[0] = x0
        out[s.name] = batch
    return out


def entries(slots: Sequence[Slot]) -> int:
    return sum(math.prod(s.shape) for s in slots if s.drawn)


def sizes_of(inputs: list[tuple[str, tuple[str | int, ...], Domain]], sizes: Any) -> list[dict[str, int]]:
    """The size sets to check, validated against the names the inputs use."""
    if sizes is None:
        sets = [{}]
    elif isinstance(sizes, Mapping):
        sets = [dict(sizes)]
    elif isinstance(sizes, (list, tuple)) and sizes and all(isinstance(s, Mapping) for s in sizes):
        sets = [dict(s) for s in sizes]
    else:
        raise SpecError(f"sizes must be a dict such as {{'n': 5}} or a list of them, got {sizes!r}")
    needed = {a for _, shape, _ in inputs for a in shape if isinstance(a, str)}
    needed |= {d.classes for _, _, d in inputs if isinstance(d, Label)}
    for s in sets:
        missing = sorted(needed - set(s))
        if missing:
            example = ", ".join(f"{m!r}: 3" for m in missing)
            raise SpecError(f"sizes {s} do not give {', '.join(missing)}; pass e.g. sizes={{{example}}}")
        bad = {k: v for k, v in s.items() if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_ENTRIES}
        if bad:
            raise SpecError(f"sizes {bad} must be integers from 1 to {MAX_ENTRIES}")
    return sets
