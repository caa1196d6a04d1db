"""aa/ is layered: a sub-package imports only from the layers below it (and from the spine), never upward."""
import ast
from pathlib import Path

import aaexp.aa

AA = Path(aaexp.aa.__file__).parent
# Lowest first. loss and models are independent of each other; eval may use both; train uses eval (target watch).
LAYERS = {"signal": 0, "loss": 1, "models": 1, "eval": 2, "train": 3, "study": 4}


def _imported_layers(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["aaexp", "aa"] and len(parts) > 2:
                found.add(parts[2])
    return found


def test_every_module_sits_in_a_layer():
    flat = sorted(p.name for p in AA.glob("*.py") if p.name != "__init__.py")
    assert flat == ["study.py"], f"modules outside a layer sub-package: {flat}"


def test_imports_only_go_down():
    upward = []
    for path in AA.rglob("*.py"):
        rel = path.relative_to(AA)
        layer = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if layer == "__init__":
            continue
        for target in _imported_layers(path):
            if target != layer and LAYERS[target] >= LAYERS[layer]:
                upward.append(f"{rel} imports aaexp.aa.{target}")
    assert not upward, upward
