"""The package's structure rules (docs/architecture.md), checked on its source.

* A leading underscore on a name means "this module's own": no module imports another
  module's underscore names or reaches them as ``module._name``.
* A module with a leading underscore (``circuit/_kernels.py``, ``engine/_chunk.py``) is a
  kernel module: jitted code that trusts its inputs. It is imported only by the modules of
  its own sub-package and by other kernel modules, never from the rest of the package.
* No hidden module-level state: no ``global`` statement, and every module-level name
  bound to a mutable container (``{}``, ``[]``, ``set()``, ...) is an UPPER_CASE constant
  that no function mutates.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "yieldmc"
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
#: Scripts outside the package that use it: they keep to the import rules too.
SCRIPTS = sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("results/**/*.py")])


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_kernel_module(name: str) -> bool:
    return name.rsplit(".", 1)[-1].startswith("_") and not name.endswith("__init__")


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def _resolve(node: ast.ImportFrom, name: str, path: Path) -> str:
    if not node.level:
        return node.module or ""
    base = _package_of(name, path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


MODULES = {_module_name(p) for p in SOURCES}


def _problems(path: Path) -> list[str]:
    return _check_source(path.read_text(encoding="utf-8"), _module_name(path), path)


def _check_source(source: str, name: str, path: Path) -> list[str]:
    """Every breach of the rules in module ``name`` (file ``path``, text ``source``)."""
    tree = ast.parse(source, filename=str(path))
    own_package = _package_of(name, path)
    aliases: dict[str, str] = {}  # local name -> yieldmc module it is bound to
    found = []

    def check_module_import(target: str, line: int) -> None:
        if target in MODULES and _is_kernel_module(target) and target != name:
            same_package = target.rsplit(".", 1)[0] == own_package
            if not (same_package or _is_kernel_module(name)):
                found.append(f"{name}:{line} imports kernel module {target} from outside its package")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("yieldmc"):
                    check_module_import(a.name, node.lineno)
                    if a.asname:
                        aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(node, name, path)
            if not source.startswith("yieldmc"):
                continue
            for a in node.names:
                full = f"{source}.{a.name}"
                if full in MODULES:  # a module
                    check_module_import(full, node.lineno)
                    aliases[a.asname or a.name] = full
                elif a.name.startswith("_") and not a.name.startswith("__") and source != name:
                    found.append(f"{name}:{node.lineno} imports private name {a.name} from {source}")
        elif isinstance(node, ast.Global):
            found.append(f"{name}:{node.lineno} uses 'global {', '.join(node.names)}'")
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            continue
        target = _dotted(node.value)
        module = aliases.get(target) or (target if target in MODULES else None)
        if module is not None and module != name:
            found.append(f"{name}:{node.lineno} reaches private {module}.{node.attr}")
    found += _mutable_state(name, tree)
    return found


def _dotted(node: ast.expr) -> str:
    """``a.b.c`` for a chain of attribute accesses on a name; "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


_MUTABLE_CALLS = {"dict", "list", "set", "defaultdict", "OrderedDict", "Counter", "deque"}
_MUTATORS = {"append", "extend", "insert", "pop", "popitem", "clear", "update", "add", "remove",
             "discard", "setdefault"}


def _mutable_state(name: str, tree: ast.Module) -> list[str]:
    found = []
    containers = set()
    for node in tree.body:
        targets: list[ast.expr] = []
        value = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        mutable = isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)) or (
            isinstance(value, ast.Call) and getattr(value.func, "id", getattr(value.func, "attr", None))
            in _MUTABLE_CALLS)
        for t in targets:
            if isinstance(t, ast.Name) and mutable:
                if t.id != "__all__" and not t.id.isupper():
                    found.append(f"{name}:{node.lineno} module-level mutable {t.id!r} (not a constant)")
                containers.add(t.id)
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in containers
                    and node.func.attr in _MUTATORS):
                found.append(f"{name}:{node.lineno} mutates module-level {node.func.value.id}")
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
                for t in getattr(node, "targets", None) or [node.target]:
                    if (isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name)
                            and t.value.id in containers):
                        found.append(f"{name}:{node.lineno} mutates module-level {t.value.id}")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_keeps_to_the_structure_rules(path: Path) -> None:
    assert _problems(path) == []


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_uses_only_public_names(path: Path) -> None:
    """Benchmarks and results scripts use no underscore names of the package's modules. (They
    may time a kernel module's functions, its helpers included, directly; their own
    module-level state is theirs.)"""
    found = [p for p in _problems(path) if "private" in p and not _is_kernel_module(_owner(p))]
    assert found == []


def _owner(problem: str) -> str:
    """The module whose private name a problem line names."""
    if " from " in problem:  # "... imports private name _x from yieldmc.m"
        return problem.rsplit(" from ", 1)[1]
    return problem.rsplit(" ", 1)[1].rsplit(".", 1)[0]  # "... reaches private yieldmc.m._x"


def test_the_checker_finds_what_it_forbids() -> None:
    """Each rule fires on a module that breaks it (the checker itself can fail)."""
    source = (
        "from yieldmc.die import _private\n"
        "import yieldmc.store\n"
        "from yieldmc import defects\n"
        "from yieldmc.engine import _chunk\n"
        "CACHE = {}\n"
        "_models = {}\n"
        "def f():\n"
        "    global X\n"
        "    CACHE['a'] = defects._check_weights(None)\n"
        "    _models.clear()\n"
        "    yieldmc.store._probe(None)\n"
    )
    found = "\n".join(_check_source(source, "yieldmc.probe", PACKAGE / "probe.py"))
    for needle in ("private name _private", "kernel module yieldmc.engine._chunk", "global X",
                   "mutable '_models'", "mutates module-level CACHE", "mutates module-level _models",
                   "reaches private yieldmc.defects._check_weights", "reaches private yieldmc.store._probe"):
        assert needle in found, (needle, found)
