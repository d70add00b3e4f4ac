"""Run Python in a subprocess where every import of torch fails, as on a machine without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A sitecustomize that makes every import of torch fail, as on a machine without it.
BLOCK_TORCH = '''
import sys

class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None

sys.meta_path.insert(0, _NoTorch())
'''


def run_without_torch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``python *args`` from the repository root with every import of torch failing."""
    (tmp_path / "sitecustomize.py").write_text(BLOCK_TORCH)
    return subprocess.run([sys.executable, *args], cwd=REPO,
                          env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=300)
