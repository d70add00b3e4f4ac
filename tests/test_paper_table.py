"""scripts/paper_table.py: the stable-audio-tools rows (sao-small-sat) build and count like the regimes."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "paper_table.py"


@pytest.fixture(scope="module")
def paper_table():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("paper_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["paper_table"] = module  # its dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("paper_table", None)


def test_sat_rows_have_the_published_size_and_the_same_token_passes(paper_table, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the twin's config is written
    sat = paper_table.build_row("sao-small-sat", "lmdm-causal", token_passes=True)
    assert list(tmp_path.glob("paper-table-*")) == []  # the twin's temporary config is removed
    native = paper_table.build_row("sao-small", "lmdm-causal", token_passes=True)
    assert not sat.note and not native.note
    assert abs(sat.params_m - 341.0) < 1.0  # stable-audio-tools' DiT from SAO-small's config
    # same stream, same regime: the token-passes do not depend on the backbone (measured on twins)
    assert (sat.passes_first, sat.passes_steady) == (native.passes_first, native.passes_steady) == (584, 440)
    assert sat.gflop_steady > 0 and sat.gflop_first > sat.gflop_steady  # bootstrap costs more


def test_variants_only_change_the_diffusion_regimes(paper_table):
    out = paper_table.main(["--presets", "sao-small-sat", "--regimes", "lmm", "outpaint", "--no-token-passes"])
    assert out == 0
