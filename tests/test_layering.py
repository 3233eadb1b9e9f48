"""House rules held by reading the sources: the package layering of docs/architecture.md (every
module's imports, by AST) and the size of modules and functions.

Each package of ``fusioncim`` may import only the packages its rule names
(and the root package, for ``__version__``); no module may take part in an
import cycle, counting imports inside functions too. The rules are the table
in docs/architecture.md ("Layering"), which this test reads, so the doc and the
check cannot drift apart.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Where each package's sources sit in the checkout (pyproject's package-dir).
FOLDERS = {"golden": "golden", "hw": "hw", "tb": "tb", "synth": "synth", "formal": "formal"}


def package_of(module):
    """The layer a module belongs to: ``fusioncim.sim.rtlsim`` -> ``sim``; the root module -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__main__" else ""


def sources():
    """``{module name: source text}`` of every module of the package in this checkout."""
    out = {}
    for path in sorted((ROOT / "fusioncim").rglob("*.py")):
        rel = path.relative_to(ROOT / "fusioncim").with_suffix("")
        out[".".join(("fusioncim", *rel.parts)).removesuffix(".__init__")] = path.read_text()
    for pkg, folder in FOLDERS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            name = f"fusioncim.{pkg}" if path.stem == "__init__" else f"fusioncim.{pkg}.{path.stem}"
            out[name] = path.read_text()
    return out


def imports_of(module, text, known):
    """The ``fusioncim`` modules ``module`` imports (anywhere in it), resolved against the ``known`` names."""
    is_pkg = any(k.startswith(module + ".") for k in known)
    base_parts = module.split(".") if is_pkg else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(base_parts[:len(base_parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            names = subs or [base]      # `from pkg import mod` imports mod; `from mod import name`, mod
        else:
            continue
        found |= {n for n in names if n in known and n != module}
    return found


def read_rules():
    """The layering table of docs/architecture.md: ``{package: set of packages it may import}``."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("<!-- layering -->")[1]
    rules = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        pkg = cells[0].strip("`")
        allowed = set(re.findall(r"`(\w+)`", cells[1]))
        rules[pkg] = allowed
    return rules


def violations(srcs, rules):
    """Every import that breaks a rule, as ``"a.b imports c.d (a may import: ...)"``."""
    known = set(srcs)
    bad = []
    for module, text in srcs.items():
        pkg = package_of(module)
        if pkg == "":
            continue
        for target in sorted(imports_of(module, text, known)):
            tpkg = package_of(target)
            if tpkg in ("", pkg) or tpkg in rules.get(pkg, set()):
                continue
            bad.append(f"{module} imports {target} ({pkg} may import: {', '.join(sorted(rules.get(pkg, ()))) or 'nothing'})")
    return bad


def cycles(srcs):
    """Module-level import cycles (each as a list of modules), counting imports inside functions."""
    known = set(srcs)
    graph = {m: imports_of(m, t, known) for m, t in srcs.items()}
    # A package's __init__ importing its own submodules is how a package is put together, not a cycle.
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    found, state, stack = [], {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                found.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2
    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


def test_every_package_has_a_rule():
    rules = read_rules()
    pkgs = {package_of(m) for m in sources()} - {""}
    assert pkgs == set(rules), f"packages without a rule: {pkgs - set(rules)}; rules without a package: {set(rules) - pkgs}"
    for pkg, allowed in rules.items():
        assert allowed <= set(rules), f"{pkg}'s rule names unknown packages {allowed - set(rules)}"


def test_imports_follow_the_layering():
    assert violations(sources(), read_rules()) == []


def test_no_import_cycles():
    assert cycles(sources()) == []


@pytest.mark.parametrize("module, line, culprit", [
    ("fusioncim.golden.softmax", "from ..hw import softmax as rtl", "fusioncim.hw.softmax"),
    ("fusioncim.core.config", "from ..sim.workload import RANDOM_DEFAULTS", "fusioncim.sim.workload"),
    ("fusioncim.hw.engine", "    from fusioncim.golden import engine", "fusioncim.golden.engine"),
])
def test_a_wrong_import_fails(module, line, culprit):
    # The same check on the real tree with one import added (at the top, or inside a function).
    srcs = sources()
    srcs[module] += ("\n\ndef _added():\n" + line + "\n") if line.startswith(" ") else ("\n" + line + "\n")
    bad = violations(srcs, read_rules())
    assert len(bad) == 1 and bad[0].startswith(f"{module} imports {culprit} ")


def test_a_cycle_is_found():
    srcs = {"fusioncim.core.a": "from . import b\n", "fusioncim.core.b": "def f():\n    from .a import x\n",
            "fusioncim.core": ""}
    assert cycles(srcs) == [["fusioncim.core.a", "fusioncim.core.b", "fusioncim.core.a"]]


# -- sizes: a module a reader takes in, a function read at once --------------------------------------

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def test_no_module_or_function_too_long():
    # Every Python file outside tests/ (the package, its folders, bench/).
    paths = sorted({*(ROOT / "fusioncim").rglob("*.py"), *(ROOT / "bench").glob("*.py"),
                    *(p for folder in FOLDERS.values() for p in (ROOT / folder).glob("*.py"))})
    long = []
    for path in paths:
        text = path.read_text()
        name = path.relative_to(ROOT)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{name}:{node.lineno} {node.name}: {n} lines")
    assert long == [], f"over {MAX_MODULE_LINES} lines a module or {MAX_FUNCTION_LINES} a function: {long}"
