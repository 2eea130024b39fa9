"""The README's demo runs green: real servers on loopback, real HTTP."""

from __future__ import annotations

from examples import demo


def test_demo_walks_the_whole_story(capsys):
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "BAD" not in out
    assert out.count("ok ") >= 30
