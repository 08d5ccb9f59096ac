"""The tests' own rules, checked on their source: tolerances are named once, in
``tests/tolerances.py``, each with its reason (STYLE.md point 5); the naive twins of the
fast kernels live in ``tests/reference/``, each saying what it mirrors and why it is
obviously correct (STYLE.md point 3, docs/architecture.md section 3).

A tolerance written as a number in a test (``rtol=1e-9``, ``pytest.approx(x, rel=1e-12)``,
``np.allclose(a, b, 1e-12)``, ``def close(a, b, rtol=1e-13)``, ``RTOL = 1e-12`` beside the
tests) fails :func:`test_no_tolerance_is_a_number_in_the_tests`; ``0`` (no relative or no
absolute part) is allowed. Bounds that are the claim under test (an accuracy floor, a
k-sigma bound, a p-value) are not keyword tolerances and are not checked here.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import tests.reference as reference
import tests.tolerances as tolerances

TESTS = Path(__file__).resolve().parent
#: Keyword arguments that carry a tolerance, in any call (numpy's assert_allclose / allclose
#: / isclose, the solvers' and kernels' rtol).
TOLERANCE_KEYWORDS = frozenset({"rtol", "atol"})
#: pytest.approx's keywords.
APPROX_KEYWORDS = frozenset({"rel", "abs"})
#: Calls whose positional arguments from this index on are tolerances.
POSITIONAL_TOLERANCES = {"assert_allclose": 2, "allclose": 2, "isclose": 2, "approx": 1}
#: A module-level name that says "tolerance" (``RTOL``, ``BATCH_ATOL``, ``CHECKER_TOL``).
TOLERANCE_NAME = re.compile(r"(^|_)(RTOL|ATOL|TOL)$")
#: Test files that another change of issue 13 is rewriting at the same time (the wafer
#: yield models and the report); their tolerances move to tests/tolerances.py with that
#: change, which then takes them off this list.
PENDING = frozenset({"test_wafer.py", "test_wafer_runs.py", "test_wafermap.py", "test_yieldmodels.py",
                     "test_report.py", "test_cli_report.py"})


def _is_number(node: ast.AST) -> bool:
    """A number written out: ``1e-9``, ``-1e-9``, ``40 * 2**-24``; not a name, not a bool."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int | float) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return _is_number(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_number(node.left) and _is_number(node.right)
    return False


def _is_tolerance_literal(node: ast.AST | None) -> bool:
    """A number other than 0 (``rtol=0`` says "no relative part": nothing to name)."""
    if node is None or not _is_number(node):
        return False
    return eval(compile(ast.Expression(node), "<tolerance>", "eval"), {"__builtins__": {}}) != 0


def _call_name(func: ast.AST) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def literal_tolerances(source: str, filename: str = "<test>") -> list[str]:
    """``"line: what"`` for every tolerance that ``source`` gives as a number."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            keywords = TOLERANCE_KEYWORDS | (APPROX_KEYWORDS if name == "approx" else frozenset())
            found += [f"{node.lineno}: {name}(..., {kw.arg}={ast.unparse(kw.value)})" for kw in node.keywords
                      if kw.arg in keywords and _is_tolerance_literal(kw.value)]
            first = POSITIONAL_TOLERANCES.get(name)
            if first is not None:
                found += [f"{node.lineno}: {name}(..., {ast.unparse(arg)})" for arg in node.args[first:]
                          if _is_tolerance_literal(arg)]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = [*zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True),
                     *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
            found += [f"{node.lineno}: default {arg.arg}={ast.unparse(default)}" for arg, default in pairs
                      if arg.arg in TOLERANCE_KEYWORDS and _is_tolerance_literal(default)]
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            if any(TOLERANCE_NAME.search(n) for n in names) and any(_is_tolerance_literal(v) for v in values):
                found.append(f"{node.lineno}: {', '.join(names)} = {ast.unparse(node.value)}")
    return sorted(found, key=lambda hit: int(hit.split(":")[0]))


def _test_sources() -> list[Path]:
    files = [*TESTS.glob("*.py"), *(TESTS / "reference").glob("*.py")]
    return sorted(p for p in files if p.name != "tolerances.py" and p.name not in PENDING)


# ---- tolerances ------------------------------------------------------------------------------

def test_no_tolerance_is_a_number_in_the_tests():
    hits = {str(p.relative_to(TESTS)): literal_tolerances(p.read_text(), str(p)) for p in _test_sources()}
    hits = {name: found for name, found in hits.items() if found}
    assert not hits, ("tolerances written as numbers; name them in tests/tolerances.py, with the reason "
                      f"for their value: {hits}")


PROBE = """\
assert_allclose(a, b, rtol=1e-9)
np.testing.assert_allclose(a, b, atol=-1e-15)
assert x == pytest.approx(y, rel=1e-12, abs=0)
assert x == approx(y, abs=2 * 1e-6)
assert np.allclose(a, b, 1e-12)
def close(a, b, rtol=1e-13): ...
BATCH_ATOL = 1e-8
RTOL, ATOL = 1e-12, 1e-12
solve_sinh_info(G, v, v0, rtol=0.0)
assert_allclose(a, b, rtol=ENGINE_RTOL, atol=0)
assert_allclose(a, b, ENGINE_RTOL)
f(x, abs=1e-3, rel=0.5)
N_DIES = 30
"""


def test_the_check_finds_every_form_of_a_literal_tolerance():
    """The probe's first eight lines each hold a tolerance written as a number; the last
    five hold none (0, a name, ``abs=`` outside ``approx``, a count)."""
    assert literal_tolerances(PROBE) == [
        "1: assert_allclose(..., rtol=1e-09)",
        "2: assert_allclose(..., atol=-1e-15)",
        "3: approx(..., rel=1e-12)",
        "4: approx(..., abs=2 * 1e-06)",
        "5: allclose(..., 1e-12)",
        "6: default rtol=1e-13",
        "7: BATCH_ATOL = 1e-08",
        "8: RTOL, ATOL = (1e-12, 1e-12)",
    ]


def _tolerance_names() -> list[str]:
    return [name for name in vars(tolerances) if name.isupper()]


def test_every_tolerance_is_a_documented_positive_number_that_a_test_uses():
    source = inspect.getsource(tolerances).splitlines()
    names = _tolerance_names()
    assert len(names) == len(set(names)) and len(names) > 50
    used = "\n".join(p.read_text() for p in _test_sources() if p.name != Path(__file__).name)
    for name in names:
        value = getattr(tolerances, name)
        assert isinstance(value, int | float) and value > 0, name
        line = next(i for i, text in enumerate(source) if text.startswith(f"{name} = "))
        assert source[line - 1].startswith("#: "), f"{name} has no '#:' comment saying why its value"
        assert re.search(rf"\b{name}\b", used), f"{name} is used by no test"


# ---- the reference twins ---------------------------------------------------------------------

def _twins() -> list:
    modules = [getattr(reference, name) for name in ("chunk", "circuit", "defects", "forward", "lowrank",
                                                       "network", "nonlinear", "streams")]
    return [f for m in modules for _, f in inspect.getmembers(m, inspect.isfunction) if f.__module__ == m.__name__]


def test_every_twin_says_what_it_mirrors_and_why_it_is_right():
    twins = _twins()
    assert len(twins) >= 20
    for f in twins:
        doc = " ".join((inspect.getdoc(f) or "").split())
        assert "Mirrors" in doc and "Obviously correct" in doc, f.__qualname__


def test_the_package_lists_every_twin():
    """``tests/reference/__init__.py`` imports each twin of its modules and names it in its
    table, so that one place names every twin."""
    doc = reference.__doc__
    for f in _twins():
        module = f.__module__.rsplit(".", 1)[-1]
        assert getattr(reference, f.__name__) is f and f.__name__ in reference.__all__, f.__name__
        assert f"{module}.{f.__name__}" in doc, f"{module}.{f.__name__} is missing from the table"
    for name in reference.__all__:
        assert hasattr(reference, name), name
