"""The house rules, read from the source: imports go down the data flow, never in a cycle, and no
module takes another module's ``_private`` names."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dip_cli"

#: The modules in the order the data flows, lowest first: a module may import its own layer or
#: the ones before it (``dip_cli`` itself, for ``__version__``, stands outside the layers).
LAYERS = [
    ["errors"],
    ["settings", "metrics", "io", "tiles", "jpeg_file", "process", "report"],
    ["options", "presets", "progress"],
    ["operators", "networks", "stopping"],
    ["fit", "workers"],
    ["resources"],
    ["run_folder", "provenance"],
    ["solve"],
    ["parts"],
    ["core"],
    ["tasks"],
    ["api", "restore"],
    ["batch.plan"],
    ["batch.outcome"],
    ["batch.summary", "batch.local", "batch.ray_tasks"],
    ["batch"],
    ["report_html"],
    ["experiments.common", "experiments.plots", "experiments.datasets"],
    ["experiments.display", "experiments.architectures", "experiments.fit_curves"],
    ["experiments.jpeg_timeline", "experiments.random_labels", "experiments.random_weights"],
    ["experiments.loss_surface", "experiments.optimizers", "experiments.sharpness"],
    ["experiments.information_plane", "experiments.random_features"],
    ["experiments"],
    ["cli"],
    ["__main__"],
]
RANK = {module: rank for rank, layer in enumerate(LAYERS) for module in layer}


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def imports(name: str, tree: ast.Module, known: set[str]) -> list[tuple[str, str]]:
    """(module imported, name taken from it) for each of dip's modules ``name`` imports, at any
    depth (imports inside functions count: they are the same dependency, made late)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("dip_cli.")]
            found += [(n.removeprefix("dip_cli."), "") for n in names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dip_cli"):
            base = node.module.removeprefix("dip_cli").removeprefix(".")
            for alias in node.names:
                submodule = f"{base}.{alias.name}".lstrip(".")
                found.append((submodule, "") if submodule in known else (base, alias.name))
    return [(target, taken) for target, taken in found if target != name]


def dependencies() -> list[tuple[str, str, str]]:
    """(module, module it imports, name it takes from there or "") for every import in dip."""
    tree = modules()
    return [
        (name, target, taken)
        for name in RANK
        for target, taken in imports(name, tree[name], set(tree))
        if target  # dip_cli itself (__version__) stands outside the layers
    ]


def test_every_module_has_its_place_in_the_layers():
    assert set(modules()) - {""} == set(RANK), "add the new module to LAYERS, where the data flow puts it"


def test_imports_only_go_down_the_layers():
    upward = [
        f"{name} (layer {RANK[name]}) imports {target} (layer {RANK[target]})"
        for name, target, _ in dependencies()
        if RANK[target] > RANK[name]
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycle_even_within_a_layer():
    edges: dict[str, set[str]] = {name: set() for name in RANK}
    for name, target, _ in dependencies():
        edges[name].add(target)
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, "import cycle: " + " -> ".join([*path[path.index(name) :], name])
        if name in done:
            return
        for target in edges[name]:
            visit(target, [*path, name])
        done.add(name)

    for name in RANK:
        visit(name, [])


def test_no_module_takes_another_modules_private_names():
    private = [
        f"{name} imports {target}.{taken}"
        for name, target, taken in dependencies()
        if taken.startswith("_") and not taken.startswith("__")
    ]
    assert not private, "\n".join(private)
