"""The package's layers (docs/design.md): no module imports a layer above its own.

Read from the source with ``ast`` (every import, also those inside functions, since a
lazy import is a dependency too): an import of a module in a higher layer fails, as do
import circles between modules, imports of another module's private names, and modules
that no layer lists (a new module gets its place in LAYERS and in docs/design.md).
"""

from __future__ import annotations

import ast
import fnmatch
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "numfmt"

#: The layers, bottom to top; a module may import its own layer and those below.
LAYERS = [
    ("checks", ["numfmt.checks"]),
    ("formats", ["numfmt.formats", "numfmt.logformat", "numfmt.describe"]),
    ("testing", ["numfmt.testing", "numfmt.testing.*"]),
    ("rounding", ["numfmt.rounding", "numfmt.bitlayout"]),
    ("codec", ["numfmt.special_values", "numfmt.nearest", "numfmt.logcodec", "numfmt.encoder", "numfmt.decoder",
               "numfmt.codec"]),
    ("packing", ["numfmt.packing"]),
    ("scaled", ["numfmt.scheme", "numfmt.calibration", "numfmt.scalemath", "numfmt.scales", "numfmt.quantcore",
                "numfmt.scaled", "numfmt.mx", "numfmt.codebook", "numfmt.lowbit"]),
    ("autodiff", ["numfmt.autodiff"]),
    ("matmul", ["numfmt.accumulator", "numfmt.tensorcore_kernel", "numfmt.tensorcore", "numfmt.matmul_config",
                "numfmt.matmul_profiles", "numfmt.matmul",
                "numfmt.intgemm", "numfmt.lowbit_matmul"]),
    ("analysis", ["numfmt.analysis", "numfmt.analysis.*", "numfmt.plot", "numfmt.ops"]),
    ("package", ["numfmt"]),
    ("cli", ["numfmt.cliargs", "numfmt.study", "numfmt.verify_cli", "numfmt.cli", "numfmt.__main__"]),
]

#: Import circles known today, each to be emptied by the work named beside it (none).
ALLOWED_CIRCLES: set[frozenset] = set()

#: (importer, imported) pairs allowed to take private names today, with the work that ends them.
ALLOWED_PRIVATE: set[tuple[str, str]] = set()  # mx calls scaled's public core (numfmt.scheme, quantize_with)


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
PACKAGES = {m for m, p in MODULES.items() if p.name == "__init__.py"}


def _layer(module: str) -> int | None:
    for rank, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, pat) for pat in patterns):
            return rank
    return None


def _imports(module: str):
    """``(imported module, names taken from it, line)`` for every numfmt import in ``module``."""
    path = MODULES[module]
    package = module if module in PACKAGES else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "numfmt":
                    yield alias.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "numfmt":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:  # `from numfmt import codec`: the submodule itself
                    yield sub, (), node.lineno
                else:
                    yield base, (alias.name,), node.lineno


GRAPH = {m: {(dep, names, line) for dep, names, line in _imports(m) if dep != m} for m in MODULES}


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if _layer(m) is None]
    assert not missing, f"modules in no layer (add them to LAYERS here and to docs/design.md): {missing}"


def test_no_module_imports_a_higher_layer():
    upward = []
    for module, deps in GRAPH.items():
        rank = _layer(module)
        for dep, _, line in deps:
            dep_rank = _layer(dep)
            if rank is not None and dep_rank is not None and dep_rank > rank:
                upward.append(f"{MODULES[module].relative_to(ROOT.parent)}:{line}: {module} ({LAYERS[rank][0]}) "
                              f"imports {dep} ({LAYERS[dep_rank][0]})")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def _circles():
    """The strongly connected components of more than one module (Tarjan)."""
    edges = {m: {dep for dep, _, _ in deps if dep in MODULES} for m, deps in GRAPH.items()}
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    circles = [sorted(c) for c in _circles() if c not in ALLOWED_CIRCLES]
    assert not circles, f"import circles: {circles}"


def test_the_allowed_circles_still_exist():
    # An allowance outlives its reason only by mistake: drop it once the circle is gone.
    assert set(_circles()) >= ALLOWED_CIRCLES


def test_no_private_names_from_other_modules():
    reaches = []
    for module, deps in GRAPH.items():
        for dep, names, line in deps:
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and (module, dep) not in ALLOWED_PRIVATE:
                reaches.append(f"{MODULES[module].relative_to(ROOT.parent)}:{line}: {module} imports {private} "
                               f"from {dep}")
    assert not reaches, "private imports across modules:\n" + "\n".join(reaches)


def test_testing_depends_on_the_formats_layer_only():
    # The oracle checks the codec: it must not be built from it (docs/design.md).
    formats_rank = [name for name, _ in LAYERS].index("formats")
    for module in (m for m in MODULES if m == "numfmt.testing" or m.startswith("numfmt.testing.")):
        for dep, _, line in GRAPH[module]:
            assert dep.startswith("numfmt.testing") or _layer(dep) <= formats_rank, (module, dep, line)


@pytest.mark.parametrize("source, expected", [
    ("from numfmt import codec\n", [("numfmt.codec", ())]),
    ("import numfmt as nf\n", [("numfmt", ())]),
    ("from numfmt import quantize\n", [("numfmt", ("quantize",))]),
    ("def f():\n    from numfmt.scaled import _layout\n", [("numfmt.scaled", ("_layout",))]),
])
def test_imports_are_read_as_meant(tmp_path, monkeypatch, source, expected):
    # The reader itself: submodules, the package face, names, lazy imports.
    path = ROOT / "formats.py"
    monkeypatch.setitem(MODULES, "numfmt.formats", tmp_path / "m.py")
    (tmp_path / "m.py").write_text(source)
    assert [(d, n) for d, n, _ in _imports("numfmt.formats")] == expected
    assert path.exists()
