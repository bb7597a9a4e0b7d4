"""Workflow conditions: CEL expressions, compiled once, evaluated over plain maps.

Why CEL (the ``common-expression-language`` package, Python bindings of the Rust
``cel-interpreter``) and not JSON Logic (``datalogic-py``): a condition is read by
people in a definition and in ``herald explain`` (``!steps.remind.read &&
data.amount > 100`` against a nested JSON tree), and CEL is built for exactly this —
Kubernetes admission rules, Envoy and Google IAM conditions use it. It is sandboxed
by design: no I/O, no assignment, no user-defined functions, no unbounded loops (its
only iteration, the ``all``/``exists``/``map``/``filter`` macros, walks a given list
once), so the cost of one evaluation is bounded by the expression's size
(:data:`MAX_SOURCE`) times the size of its inputs (the trigger's data, which the API
bounds like a notification's data). The package compiles in Rust; an evaluation is a
few microseconds.

Variables a condition reads (consumers/workflows/state.py ``Run.inputs`` builds them):
``data`` (the trigger's data), ``recipient`` (``id`` and ``locale``) and ``steps``
(each earlier step by id: ``status`` — ``sent``, ``delivered``, ``failed``,
``skipped``, ``delayed``, ``elapsed``, ``waiting``, ``matched``, ``timed_out`` or
``pending`` — and the booleans ``read``, ``delivered``, ``failed``, ``matched``). A
step that has not run yet is present with status ``pending``, so ``steps.x.read``
never fails for a known step.

Failure modes: :func:`compile_condition` raises :class:`ConditionError` for a
condition that does not parse, names an unknown variable, or names a step that is
not earlier (``later``); :meth:`Condition.evaluate` raises it for an evaluation
error or a result that is not a boolean (the run records the step ``failed``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cel

from herald.consumers.errors import ConsumerError

MAX_SOURCE = 1000  # characters of one condition
VARIABLES = frozenset({"data", "steps", "recipient"})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_STEP_REF = re.compile(r"\bsteps\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)"
                       r"|\[\s*(\"[^\"]*\"|'[^']*')\s*\])")


class ConditionError(ConsumerError):
    """Raised when a condition does not compile, names what it may not, or does not
    evaluate to a boolean."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled condition."""

    source: str
    program: Any
    steps: frozenset[str]  # the step ids it names

    def evaluate(self, values: Mapping[str, Any]) -> bool:
        try:
            result = self.program.execute(dict(values))
        except Exception as exc:  # the binding raises ValueError, KeyError, TypeError, …
            raise ConditionError(f"does not evaluate: {exc}") from exc
        if not isinstance(result, bool):
            raise ConditionError(f"evaluates to {type(result).__name__}, not a boolean")
        return result


def step_refs(source: str) -> set[str]:
    """The step ids ``source`` names as ``steps.<id>`` or ``steps["<id>"]`` (outside
    string literals)."""
    bare = _STRING.sub('""', source)
    found = set()
    for m in _STEP_REF.finditer(bare):
        found.add(m.group(1) or m.group(2)[1:-1])
    # steps["id"]: the literal was blanked above; read it from the original text
    for m in _STEP_REF.finditer(source):
        if m.group(2):
            found.add(m.group(2)[1:-1])
    found.discard("")
    return found


def compile_condition(source: str, earlier: Iterable[str]) -> Condition:
    """Compile ``source``; it may name only ``data``, ``recipient`` and the steps in
    ``earlier`` (ConditionError otherwise)."""
    if not source.strip():
        raise ConditionError("is empty")
    if len(source) > MAX_SOURCE:
        raise ConditionError(f"is longer than {MAX_SOURCE} characters")
    try:
        program = cel.compile(source)
    except Exception as exc:  # ValueError from the parser; anything else is a refusal too
        raise ConditionError(f"does not compile: {str(exc).splitlines()[0]}") from exc
    unknown = set(program.variables()) - VARIABLES
    if unknown:
        raise ConditionError(f"names {', '.join(sorted(unknown))}: a condition reads only "
                             "data, recipient and steps")
    refs = step_refs(source)
    allowed = set(earlier)
    later = refs - allowed
    if later:
        raise ConditionError(f"names step {', '.join(sorted(later))}, which is not an earlier "
                             "step")
    return Condition(source, program, frozenset(refs))


@functools.lru_cache(maxsize=4096)
def compiled(source: str, earlier: tuple[str, ...]) -> Condition:
    """:func:`compile_condition`, cached (definitions are immutable versions)."""
    return compile_condition(source, earlier)
