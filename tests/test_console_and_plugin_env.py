"""Output for logs: progress lines are not cut short when stderr is not a terminal, and a
SLIMKIT_LOAD_PLUGINS name that matches no installed plugin is a warning, not silence."""

from __future__ import annotations

import os
import subprocess
import sys


def test_progress_is_not_truncated_when_stderr_is_not_a_terminal():
    code = (
        "from slimkit.teachers.base import Progress\n"
        "p = Progress(30, 'teach (openai/gpt-4o-mini-2024-07-18)')\n"
        "for _ in range(29): p.update(status='done', cost=0.0123)\n"
        "p.update(status='failed')\n"
        "p.close()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stderr
    assert "done 29 · failed 1 · cached 0 · $0.3567" in proc.stderr
    assert "30/30" in proc.stderr


def test_a_plugin_named_but_not_installed_is_a_warning():
    env = {**os.environ, "SLIMKIT_LOAD_PLUGINS": "slimkit-no-such-plugin"}
    proc = subprocess.run([sys.executable, "-m", "slimkit", "plugins", "list"], check=False, capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "slimkit-no-such-plugin" in proc.stderr and "not installed" in proc.stderr
