"""The book's Python API page is what tools/python-api.py writes from the package."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_api_page_is_current():
    spec = importlib.util.spec_from_file_location("python_api", ROOT / "tools" / "python-api.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    page = (ROOT / "docs" / "src" / "reference" / "python-api.md").read_text()
    assert page == tool.page(), "run tools/python-api.py to write docs/src/reference/python-api.md"
    for name in ("Steer", "ResizableBatchSampler", "RudderCallback", "Shared", "on_step", "should_stop"):
        assert name in page
