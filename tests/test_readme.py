"""The README's code runs as printed."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- snippet: {name} .*?-->\s*```python\n(.*?)```", text, re.S)
    assert match, f"no snippet {name!r} in the README"
    return match.group(1)


def test_the_python_api_snippet_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "snippet.py"
    script.write_text(snippet("python-api"))
    runpy.run_path(str(script), run_name="__main__")
    printed = capsys.readouterr().out.strip().splitlines()[-1]  # evaluate_policy's (mean, std)
    mean, std = (float(x) for x in re.findall(r"-?\d+\.\d+(?:e[-+]?\d+)?", printed))
    assert -2000 < mean < 0 and std >= 0
    assert (tmp_path / "sac-pendulum.pt").is_file()
    assert len(list((tmp_path / "runs" / "Pendulum-v1" / "sac-pathwise").iterdir())) == 1
