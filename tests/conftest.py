import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
# fake_nvml and the helper scripts live next to the tests
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


@pytest.fixture
def results_root(tmp_path, monkeypatch):
    """A results folder for Tuner runs: syne-tune writes below SYNETUNE_FOLDER."""
    root = tmp_path / "syne-tune"
    monkeypatch.setenv("SYNETUNE_FOLDER", str(root))
    return root
