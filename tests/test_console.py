"""Console output a scientist can read (issue 23 §4): no raw None / nan / 16-digit floats in the tables of
``pesflow status`` and ``pesflow temper``, units in the headers, the capped-fit warning names its key."""

from __future__ import annotations

import re

from tiny_campaign import tiny_campaign

from flows.cli import main

RAW = re.compile(r"\bNone\b|\bnan\b|\d\.\d{9,}", re.I)


def _text(capsys) -> str:
    out = capsys.readouterr()
    return " ".join((out.out + out.err).split())


def test_status_table_is_clean(tmp_path_factory, capsys):
    directory = tiny_campaign(tmp_path_factory)
    assert main(["status", str(directory)]) == 0
    text = _text(capsys)
    assert not RAW.search(text), RAW.search(text)
    assert "(meV/atom)" in text and "test F RMSE (eV/Å)" in text and "wall (s)" in text
    assert "([potential] max_iter)" in text  # rich markup must not eat the section name


def test_temper_output_is_clean(tmp_path, capsys):
    assert main(["temper", "--atoms", "5", "--rungs", "3", "--sweeps", "10", "--warmup", "2", "--n-steps", "3",
                 "--out", str(tmp_path / "t.nc")]) == 0
    text = _text(capsys)
    assert not RAW.search(text), RAW.search(text)
    assert "T* (ε/k_B)" in text and "⟨U⟩ (ε)" in text and "C_V (k_B)" in text
