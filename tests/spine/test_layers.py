"""The package is layered: core <- tracking <- training <- the studies (aa, tnca, eq) <- commands.

A module imports only from its own layer or the ones below it; a study never imports another study;
no modules import each other in a circle; no module takes a `_private` name from another. Read from
the source (every import statement, those inside functions included), not from what a run happens to load.
"""
import ast
from pathlib import Path

import aaexp

PKG = Path(aaexp.__file__).parent
SRC = PKG.parent                   # src/: aaexp/ and hydra_plugins/
# Lowest first. The studies share a floor and may not see each other; hydra_plugins is Hydra's door to commands.
LAYERS = {"core": 0, "tracking": 1, "training": 2, "aa": 3, "tnca": 3, "eq": 3, "commands": 4, "hydra_plugins": 5}
STUDIES = {"aa", "tnca", "eq"}


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module and package of src/ (conf/ holds no code)."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[0] not in ("aaexp", "hydra_plugins"):
            continue
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> str | None:
    """The layer a module sits in; None for the package root (aaexp/__init__.py: only __version__)."""
    parts = module.split(".")
    if parts[0] == "hydra_plugins":
        return "hydra_plugins"
    return parts[1] if len(parts) > 1 else None


def _imports(module: str, tree: ast.Module | None = None) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for each import statement of the module's file."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree or ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                                   # relative: from .x import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:                             # `from pkg import submodule` imports the submodule
                sub = f"{base}.{a.name}"
                found.append((sub, [], node.lineno) if sub in MODULES else (base, [a.name], node.lineno))
    return [(m, names, line) for m, names, line in found if m in MODULES and m != module]


GRAPH = {m: _imports(m) for m in MODULES}


def test_every_module_sits_in_a_layer():
    flat = sorted(p.name for p in PKG.glob("*.py") if p.name != "__init__.py")
    assert not flat, f"modules on the package's floor, outside a layer: {flat}"
    unknown = sorted({_layer(m) for m in MODULES} - set(LAYERS) - {None})
    assert not unknown, f"folders that are no layer (add them to LAYERS and README's code map): {unknown}"


def _crossings() -> list[str]:
    """Imports into a higher layer, and imports between two studies."""
    bad = []
    for module, imports in GRAPH.items():
        here = _layer(module)
        for target, _, line in imports:
            there = _layer(target)
            if here is None or there is None or here == there:
                continue
            where = f"{MODULES[module].relative_to(SRC)}:{line}"
            if LAYERS[there] > LAYERS[here]:
                bad.append(f"{where} ({here}) imports {target} ({there}, a higher layer)")
            elif here in STUDIES and there in STUDIES:
                bad.append(f"{where}: study {here} imports study {there} ({target})")
    return bad


def test_imports_only_go_down_and_studies_stay_apart():
    bad = _crossings()
    assert not bad, "\n".join(bad)


def _circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w, _, _ in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    assert not _circles(), _circles()


def test_the_checks_find_what_they_look_for():
    """The checks above could pass by finding nothing at all: edges added to the graph must show."""
    saved = dict(GRAPH)
    try:
        GRAPH["aaexp.core.errors"] = [*GRAPH["aaexp.core.errors"], ("aaexp.core.checks", [], 0)]   # checks imports errors
        GRAPH["aaexp.core.files"] = [*GRAPH["aaexp.core.files"], ("aaexp.commands.cli", [], 0)]
        GRAPH["aaexp.tnca.study"] = [*GRAPH["aaexp.tnca.study"], ("aaexp.eq.params", [], 0)]
        assert ["aaexp.core.checks", "aaexp.core.errors"] in _circles()
        crossings = _crossings()
        assert any("core/files.py:0 (core) imports aaexp.commands.cli" in c for c in crossings), crossings
        assert any("study tnca imports study eq" in c for c in crossings), crossings
    finally:
        GRAPH.clear()
        GRAPH.update(saved)
    found = _private_uses("aaexp.tracking.sweep", "from aaexp.tracking.store import _store_lock\n"
                                                  "from aaexp.tracking import store\nstore._retry()\nstore.__doc__\n")
    assert [u.split(" ", 1)[1] for u in found] == ["takes _store_lock from aaexp.tracking.store", "uses aaexp.tracking.store._retry"]


def _private_uses(module: str, source: str | None = None) -> list[str]:
    """`from other import _name`, and `other._name` where `other` is a module imported by name."""
    path = MODULES[module]
    tree = ast.parse(path.read_text() if source is None else source)
    out, bound = [], {}
    for target, names, line in (GRAPH[module] if source is None else _imports(module, tree)):
        out += [f"{path.relative_to(SRC)}:{line} takes {n} from {target}" for n in names if n.startswith("_") and not n.startswith("__")]
    for node in ast.walk(tree):                              # names bound to a module of ours
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                full = a.name if isinstance(node, ast.Import) else f"{node.module}.{a.name}"
                if full in MODULES and full != module:
                    bound[a.asname or (a.name if isinstance(node, ast.ImportFrom) else a.name.split(".")[0])] = full
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            out.append(f"{path.relative_to(SRC)}:{node.lineno} uses {bound[node.value.id]}.{node.attr}")
    return out


def test_public_names_only_across_modules():
    bad = [use for m in MODULES for use in _private_uses(m)]
    assert not bad, "\n".join(bad)
