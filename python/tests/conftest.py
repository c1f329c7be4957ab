import os
import pathlib
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def root():
    """The repository root (plugins/)."""
    return ROOT


@pytest.fixture
def library():
    """The policy runtime's crate: its scripts/ is the standard library, with its tests."""
    return ROOT / "crates" / "policy"


def write(path, text):
    """Saves `text` as an editor does: a new file renamed over the old one."""
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp~")
    tmp.write_text(text)
    os.replace(tmp, path)


def wait_for(check, seconds=10.0):
    """Polls `check` until it is true; False if it never is."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.02)
    return False


def rel_close(a, b, tol=1e-12):
    return a == b or abs(a - b) <= tol * max(abs(a), abs(b))
