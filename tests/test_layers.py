"""The layer rules of docs/design.md: imports point down; gui, tasks and env never import torch; tasks never
import gymnasium (``import annobc`` itself registers the envs, so that rule is checked statically);
models import no task."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "annobc"


def loaded_after(stmt: str) -> set[str]:
    code = f"import sys; {stmt}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_gui_tasks_env_do_not_load_torch():
    mods = loaded_after("import annobc, annobc.env, annobc.tasks, annobc.gui; "
                        "from annobc.tasks import run_annotator; run_annotator('colored_dot_tracking', 0)")
    assert "torch" not in mods


def imports_of(folder: str) -> set[str]:
    names = set()
    for f in (SRC / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return names


def test_imports_point_down():
    forbidden = {
        "gui": ("annobc.tasks", "annobc.env", "annobc.data", "annobc.models", "annobc.train",
                "annobc.eval", "annobc.cli", "annobc.web", "torch", "gymnasium"),
        "tasks": ("annobc.env", "annobc.data", "annobc.models", "annobc.train", "annobc.eval",
                  "annobc.cli", "annobc.web", "torch", "gymnasium"),
        "env": ("annobc.data", "annobc.models", "annobc.train", "annobc.eval", "annobc.cli",
                "annobc.web", "torch"),
        "data": ("annobc.env", "annobc.models", "annobc.train", "annobc.eval", "annobc.cli", "annobc.web"),
        "models": ("annobc.tasks", "annobc.env", "annobc.data", "annobc.train", "annobc.eval",
                   "annobc.cli", "annobc.web"),
        "learning": ("annobc.env", "annobc.train", "annobc.eval", "annobc.cli", "annobc.web"),
        # Training and evaluation never import each other: what both need is in learning/.
        "train": ("annobc.eval", "annobc.cli", "annobc.web"),
        "eval": ("annobc.train", "annobc.cli", "annobc.web"),
    }
    for folder, bad in forbidden.items():
        found = {n for n in imports_of(folder) if any(n == b or n.startswith(b + ".") for b in bad)}
        assert not found, (folder, found)
