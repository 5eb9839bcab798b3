"""Label import and proposals in the embedded run: SQLite, tasks in-process, no services."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(env, *args, timeout=240):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def test_labels_import_and_a_proposal_drafts_in_the_embedded_run(tmp_path):
    env = {"PATH": os.environ["PATH"], "CASCADE_VAR_DIR": str(tmp_path / "var")}
    labels = tmp_path / "labels.jsonl"
    lines = []
    for i in range(40):
        lines.append({"messages": [{"role": "user", "content": f"데드락 원인 찾아줘 {i}"}],
                      "label": "strong", "id": f"s{i}"})  # fmt: skip
        lines.append({"messages": [{"role": "user", "content": f"How do I reverse list {i}?"}],
                      "label": "weak", "id": f"w{i}"})  # fmt: skip
    lines.append({"messages": "not a list", "label": "weak"})
    labels.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in lines))

    assert run(env, "migrate", "--noinput", "-v0").returncode == 0
    refused = run(env, "import_labels", str(labels))
    assert refused.returncode != 0 and "line 81: messages" in refused.stderr
    imported = run(env, "import_labels", str(labels), "--skip-bad")
    assert imported.returncode == 0, imported.stderr
    proposed = run(env, "propose_version", "--base", "v7", "--name", "v8", "--labels",
                   "imported", "--slm", "0.3-0.7", "--json")  # fmt: skip

    assert proposed.returncode == 0, proposed.stderr
    out = json.loads(proposed.stdout)
    assert out["draft"] == "v8" and out["labels"]["imported"]["inputs"] == 80
    assert any(c["op"] == "add" and c["term"] in "데드락 원인 찾아줘" for c in out["changes"])
    assert out["estimate"]["misroute"]["value"] < 0.1
