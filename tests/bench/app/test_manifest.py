"""The run manifest: provenance fields, versions read without imports."""

from __future__ import annotations

import sys

from bench.app.manifest import REPO_ROOT, build_manifest, git_info, package_versions, thread_info, utc_now


def test_manifest_has_every_provenance_field():
    m = build_manifest({"argv": ["x"], "seeds": {"w": [0]}}, schema_version=3)
    assert m["schema_version"] == 3 and m["kind"] == "manifest" and m["created_utc"].endswith("Z")
    for key in ("git", "python", "torch", "platform", "cpu", "gpu", "threads", "packages", "run"):
        assert key in m
    assert m["python"]["version"] == sys.version.split()[0]
    assert m["torch"]["version"] and "cuda" in m["torch"]
    assert m["gpu"]["cuda_available"] in (True, False) and "driver" in m["gpu"]
    assert m["threads"]["torch_threads"] >= 1
    assert m["run"]["seeds"] == {"w": [0]}


def test_git_info_of_this_checkout():
    info = git_info(REPO_ROOT)
    if info["commit"] is None:  # e.g. an sdist without .git: said so, not invented
        assert "not a git checkout" in info["note"]
    else:
        assert len(info["commit"]) == 40 and info["short"] == info["commit"][:8]
        assert isinstance(info["dirty"], bool) and info["untracked"] >= 0


def test_package_versions_do_not_import_the_packages():
    before = set(sys.modules)
    versions = package_versions(("laion-clap", "frechet-audio-distance", "numpy", "no-such-package-xyz"))
    assert versions["no-such-package-xyz"] is None and versions["numpy"]
    assert "laion_clap" not in set(sys.modules) - before
    assert "frechet_audio_distance" not in set(sys.modules) - before


def test_utc_now_and_threads():
    assert len(utc_now()) == len("2026-01-01T00:00:00Z")
    assert thread_info()["os_cpu_count"] >= 1
