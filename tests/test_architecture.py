"""The package's import layers (docs/architecture.md): no import cycle between modules, no import from a lower
layer to a higher one, and the heavy libraries out of the plugin's and the command line's import.

Every import counts, those inside functions included: an import moved into a function to dodge a cycle still
reads as an arrow here.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "napari_deepmir"
ROOT = Path(__file__).resolve().parent.parent / "src" / PACKAGE

#: The layers, bottom to top: a module may import modules of its own layer and of the layers below it, never
#: of one above. A name is a module or a package (dotted, under napari_deepmir); the longest name that holds a
#: module decides its layer, and every module must have one.
LAYERS = (
    ("conventions", "progress"),
    ("io",),
    ("regions",),
    ("lesions", "phantom", "model"),
    ("detection",),
    ("training", "rating", "longitudinal"),
    ("cli", "widgets", "layer_data", "_reader", "_writer", "_sample_data", "_activate"),
)
#: Imported by no module: the package's own ``__init__`` (the version).
UNLAYERED = ("",)
#: Libraries no module may import when the package, the plugin's modules or the command line's parser load.
HEAVY = ("torch", "monai", "dask", "distributed", "matplotlib", "SimpleITK", "safetensors")


def module_names() -> dict[str, Path]:
    """Dotted name under the package ("" for its ``__init__``, ``io`` for ``io/__init__.py``) -> file."""
    names = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _target(name: str, modules: dict) -> str | None:
    """The package module an absolute dotted import of ``name`` loads last (its deepest existing module)."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    parts = name.split(".")[1:]
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def imports_of(module: str, path: Path, modules: dict) -> set[str]:
    """The package modules ``module`` imports anywhere in its file (in functions too)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(_target(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = [PACKAGE, *module.split(".")] if module else [PACKAGE]
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module
            found.add(_target(name, modules))
            # ``from .pkg import submodule`` loads the submodule too
            found.update(_target(f"{name}.{alias.name}", modules) for alias in node.names)
    found.discard(None)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of the longest layered name that holds ``module``; None if none does."""
    best, layer = -1, None
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, layer = len(name), index
    return layer


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer():
    unplaced = [m for m in module_names() if m not in UNLAYERED and layer_of(m) is None]
    assert not unplaced, f"modules in no layer of LAYERS: {unplaced}"


def test_no_import_cycle_between_modules():
    assert cycles(import_graph()) == []


def test_no_import_from_a_lower_layer_to_a_higher_one():
    back = [
        f"{module} (layer {layer_of(module)}) imports {other} (layer {layer_of(other)})"
        for module, imported in sorted(import_graph().items())
        if module not in UNLAYERED
        for other in sorted(imported)
        if other not in UNLAYERED and layer_of(other) > layer_of(module)
    ]
    assert not back, "\n".join(back)


def test_the_checks_see_a_cycle_and_a_back_arrow():
    graph = {"io.a": {"regions.b"}, "regions.b": {"io.a"}}
    assert cycles(graph) == [["io.a", "regions.b"]]
    assert layer_of("io.a") < layer_of("regions.b")
    assert layer_of("widgets._layers") == len(LAYERS) - 1 and layer_of("longitudinal.run") == 5


@pytest.mark.parametrize(
    "module",
    [
        PACKAGE,
        f"{PACKAGE}._reader",
        f"{PACKAGE}._writer",
        f"{PACKAGE}._sample_data",
        f"{PACKAGE}.widgets.detect",
        f"{PACKAGE}.widgets.annotate",
        f"{PACKAGE}.widgets.finetune",
        f"{PACKAGE}.widgets.table",
        f"{PACKAGE}.widgets.compare",
    ],
)
def test_loading_a_plugin_module_imports_no_heavy_library(module):
    """Heavy libraries a module's import adds (to what napari loads itself for a widget module: dask)."""
    before = "import napari.layers, napari.components; " if ".widgets." in module else ""
    code = (
        f"import sys; {before}loaded = set(sys.modules); import {module}; "
        f"print(' '.join(sorted({{m.split('.')[0] for m in set(sys.modules) - loaded}} & {set(HEAVY)!r})))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == [], f"import {module} loads {loaded}"
