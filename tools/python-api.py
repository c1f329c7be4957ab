"""Writes the book's Python API page (docs/src/reference/python-api.md) from the
installed package's signatures and docstrings; python/tests/test_api_page.py fails
when the page is not what this writes.
usage: KERAS_BACKEND=torch .venv/bin/python tools/python-api.py [OUT]"""

import importlib
import inspect
import pathlib
import sys

MODULES = [("rudder", ["Policies", "PolicyLoadError", "embedded", "policies_from"]),
           ("rudder.torch", ["Steer", "ResizableBatchSampler"]),
           ("rudder.lightning", ["RudderCallback"]),
           ("rudder.transformers", ["RudderCallback"]),
           ("rudder.keras", ["RudderCallback"]),
           ("rudder._common", ["Shared", "logger"])]
OUT = pathlib.Path(__file__).resolve().parents[1] / "docs/src/reference/python-api.md"


def signature(obj):
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def doc(obj):
    text = inspect.getdoc(obj) or ""
    return text.strip()


def block(title, sig, text):
    out = [f"### `{title}{sig}`", ""]
    if text:
        out += ["```text", text, "```", ""]
    return out


def page():
    lines = ["# Python API", "",
             "Every public name of the `rudder` package, its signature and its docstring, as",
             "`tools/python-api.py` writes them from the package itself (a test keeps this page",
             "current). The guide is [Python: PyTorch, Lightning, Hugging Face,",
             "Keras](../guide/python.md); the context keys a hook takes are the",
             "[Policy API](policy-api.md)'s `ctx` fields.", ""]
    for name, members in MODULES:
        module = importlib.import_module(name)
        lines += [f"## `{name}`", ""]
        first = doc(module).split("\n\n")[0]
        if first:
            lines += [first.replace("\n", " "), ""]
        for member in members:
            obj = getattr(module, member)
            if inspect.isclass(obj):
                lines += block(f"{name}.{member}", signature(obj) if member != "PolicyLoadError" else "", doc(obj))
                for attr, value in sorted(vars(obj).items()):
                    if attr.startswith("_") and attr != "__init__":
                        continue
                    if attr == "__init__" or not (callable(value) or isinstance(value, property)
                                                  or type(value).__name__ == "getset_descriptor"):
                        continue
                    kind = "" if callable(value) else " (property)"
                    sig = signature(getattr(obj, attr)) if callable(value) else ""
                    text = doc(value)
                    lines += [f"- `{attr}{sig}`{kind}: " + (text.split("\n\n")[0].replace("\n", " ") if text else ""), ""]
            elif callable(obj):
                lines += block(f"{name}.{member}", signature(obj), doc(obj))
            else:
                lines += [f"### `{name}.{member}`", "", f"The `logging` logger `{obj.name}`.", ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.write_text(page())
