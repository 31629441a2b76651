"""Rules of the code's layout that keep the model readable as the paper and the systems work apart."""
import ast
from pathlib import Path

from conftest import ROOT

CODE = [p for folder in ("src", "stages", "scripts", "bench") for p in (ROOT / folder).rglob("*.py")]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_model_imports_torch_and_the_standard_library_only():
    imported = imported_modules(ROOT / "src/mygo/model.py")
    assert {name.split(".")[0] for name in imported} <= {"__future__", "dataclasses", "typing", "torch"}, imported


def test_nothing_overrides_or_assigns_a_private_torch_attribute():
    """No class of ours redefines a private (_x) attribute that its torch base class has, and no
    code assigns an attribute _x of anything but its own object (`self` / `cls` / `ctx`)."""
    import importlib
    import inspect
    import sys

    import torch
    sys.path.insert(0, str(ROOT / "bench"))
    modules = [f"mygo.{p.relative_to(ROOT / 'src/mygo').with_suffix('').as_posix().replace('/', '.')}"
               for p in (ROOT / "src/mygo").rglob("*.py") if p.name not in ("__init__.py", "__main__.py")] + ["mygo.fast", "harness"]
    overrides = []
    for module in map(importlib.import_module, modules):
        for cls in vars(module).values():
            if not inspect.isclass(cls) or not cls.__module__.startswith(("mygo", "harness")):
                continue
            torch_bases = [b for b in cls.__mro__[1:] if b.__module__.startswith("torch")]
            body = ast.parse(inspect.getsource(cls).strip()).body[0].body       # what the class itself defines
            defined = {n.name for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            defined |= {t.id for n in body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
            overrides += [f"{cls.__name__}.{name}" for name in defined if name.startswith("_")
                          and not name.startswith("__") and any(hasattr(b, name) for b in torch_bases)]
    assert overrides == []
    assigned = []
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                for t in ast.walk(target):
                    if (isinstance(t, ast.Attribute) and t.attr.startswith("_") and not t.attr.startswith("__")
                            and not (isinstance(t.value, ast.Name) and t.value.id in ("self", "cls", "ctx"))):
                        assigned.append(f"{path.name}: {ast.unparse(target)}")
    assert assigned == []
    assert torch.nn.TransformerEncoderLayer.__module__.startswith("torch")


def test_evaluation_and_prediction_do_not_load_the_training_side():
    """evaluate and predict depend on the model, the checkpoint format, evaluation and I/O only."""
    training_side = {"mygo.training", "mygo.fast", "mygo.memory", "mygo.distributed", "mygo.fast.dropout"}

    def closure(path: Path, seen: set[str]) -> set[str]:
        for name in imported_modules(path):
            if name.startswith("mygo") and name not in seen:
                seen.add(name)
                module = ROOT / "src" / name.replace(".", "/")
                for file in (module.with_suffix(".py"), module / "__init__.py"):
                    if file.exists():
                        closure(file, seen)
        return seen

    for script in ("stages/evaluate.py", "scripts/predict.py"):
        assert not closure(ROOT / script, set()) & training_side, script
