"""Shell completion: `aerec --install-completion` installs a hook that asks aerec itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import ok, run_cli


def complete(words: str, index: int) -> list[str]:
    """What aerec answers the bash hook for the words typed so far."""
    env = {
        **os.environ,
        "_AEREC_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(index),
    }
    script = Path(sys.executable).parent / "aerec"  # the console script the hook calls
    return subprocess.run([script], env=env, capture_output=True, text=True).stdout.split()


def test_shell_completion_completes_commands_and_options():
    assert complete("aerec rec", 1) == ["recommend"]
    assert "--kind" in complete("aerec train --ki", 2)
    assert "--install-completion" in ok(run_cli(None, "--help")).stdout
