"""Download the wheels that the lent GPU machine lacks, for its Python, where pip works.

    python scripts/gpu_wheels.py            # into .whl/ (git-ignored), about 1.5 MB

The lent H200 machine runs Python 3.12 with its own PyTorch, NumPy 2, pandas, SciPy, matplotlib,
pytest and transformers, and reaches no package index. What ``scripts/gpu_check.py`` needs
beyond those is :data:`PACKAGES`, at the versions pinned in ``requirements/lock.txt``, as wheels
for that Python; carry ``.whl`` to the machine and install them there with pip's ``--no-index``
(README, "GPU checks", gives the whole command).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
PACKAGES = ("soundfile", "cffi", "pycparser", "pyloudnorm")  # soundfile needs cffi, which needs pycparser
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def pinned(packages: tuple[str, ...] = PACKAGES, lock: Path = LOCK) -> list[str]:
    """``name==version`` of each package, as ``lock`` pins it; ValueError naming any it does not pin."""
    pins = {}
    for line in lock.read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    unpinned = [p for p in packages if p not in pins]
    if unpinned:
        raise ValueError(f"{lock} pins no version of {', '.join(unpinned)}")
    return [f"{p}=={pins[p]}" for p in packages]


def download_command(dest: Path, python_version: str, requirements: list[str]) -> list[str]:
    """pip's command that downloads ``requirements`` as binary wheels for CPython ``python_version``
    on x86-64 Linux, without their dependencies (every one needed is named)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
           python_version, "--implementation", "cp", "-d", str(dest)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    return cmd + requirements


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".whl")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default: 3.12)")
    args = parser.parse_args(argv)
    args.dest.mkdir(parents=True, exist_ok=True)
    code = subprocess.run(download_command(args.dest, args.python_version, pinned())).returncode
    if code == 0:
        wheels = sorted(args.dest.glob("*.whl"))
        size_mb = sum(w.stat().st_size for w in wheels) / 2**20
        print(f"{len(wheels)} wheels, {size_mb:.1f} MB, in {args.dest}")
    return code


if __name__ == "__main__":
    sys.exit(main())
