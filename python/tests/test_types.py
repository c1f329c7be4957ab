"""The package's types: the stub of the Rust extension (rudder/_rudder.pyi) names
what the compiled module has, with the same parameters, and the hooks' keywords are
exactly the context keys the extension takes; the package ships py.typed."""

import ast
import inspect
import pathlib
import re

import pytest

import rudder
from rudder import _rudder

PACKAGE = pathlib.Path(rudder.__file__).parent
HOOKS = ("on_train_start", "on_epoch_start", "on_step", "on_epoch_end", "on_train_end")


def stub():
    tree = ast.parse((PACKAGE / "_rudder.pyi").read_text())
    functions, methods, names, context = {}, {}, set(), set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Context":
            context = {item.target.id for item in node.body if isinstance(item, ast.AnnAssign)}
            continue
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = node
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    methods.setdefault(node.name, {})[item.name] = item
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
    return functions, methods, names, context


def parameters(node):
    a = node.args
    return [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg != "self"]


def runtime_parameters(obj):
    return [p for p in inspect.signature(obj).parameters if p not in ("self", "$self")]


def test_every_public_name_of_the_extension_is_in_the_stub():
    functions, methods, names, _ = stub()
    public = {n for n in dir(_rudder) if not n.startswith("_") or n == "__version__"}
    assert public == set(functions) | names


def test_functions_and_methods_take_the_parameters_the_extension_takes():
    functions, methods, _, _ = stub()
    for name, node in functions.items():
        assert parameters(node) == runtime_parameters(getattr(_rudder, name)), name
    assert parameters(methods["Policies"]["__init__"]) == runtime_parameters(_rudder.Policies)
    for name, node in methods["Policies"].items():
        if name == "__init__" or name in HOOKS:
            continue
        member = inspect.getattr_static(_rudder.Policies, name)
        if isinstance(member, property) or type(member).__name__ == "getset_descriptor":
            assert any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list), name
        else:
            want = [p for p in runtime_parameters(member) if p not in ("kwargs", "fields")]
            assert [p for p in parameters(node) if p not in ("kwargs", "fields")] == want, name
    members = {n for n in vars(_rudder.Policies) if not n.startswith("_")}
    assert members == set(methods["Policies"]) - {"__init__"}


def test_the_hooks_keywords_are_the_context_keys():
    _, methods, _, context = stub()
    p = rudder.Policies(["lr/constant"], watch=False)
    with pytest.raises(TypeError) as e:
        p.on_step(no_such_key=1)
    # "... the context has a, b, c, base_batch_size, optimizer and resumed"
    listed = str(e.value).split("the context has ", 1)[1]
    keys = set(re.split(r", | and ", listed))
    assert context == keys
    for hook in HOOKS:
        node = methods["Policies"][hook]
        assert node.args.kwarg.arg == "context" and "Context" in ast.unparse(node.args.kwarg.annotation), hook


def test_the_package_is_typed():
    assert (PACKAGE / "py.typed").exists()
    assert rudder.__version__ == _rudder.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", rudder.__version__)
