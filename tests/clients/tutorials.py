"""Run the shell sessions in docs/tutorial-*.md, so the tutorials cannot rot.

In a tutorial, every fenced ``console`` block is a shell session:

* a line starting with ``$ `` is a command (a trailing ``\\`` continues it; a
  ``<<'EOF'`` here-document runs until its ``EOF`` line);
* the lines after it, up to the next command, are output the reader should
  see: each must appear in what the command printed, in that order (``...``
  lines are skipped);
* a command ending in ``# exits N`` must exit with ``N``; any other with 0.

The commands run in ``bash`` with ``partsledger`` on the PATH (this checkout,
this interpreter) and the environment the tutorial's first paragraph tells
the reader to set up.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_EXITS = re.compile(r"\s+#\s*exits\s+(\d+)\s*$")
_HEREDOC = re.compile(r"<<-?\s*'?(\w+)'?")


@dataclass
class Step:
    command: str
    expected_exit: int = 0
    expected: list[str] = field(default_factory=list)
    line: int = 0


def parse(markdown: str) -> list[Step]:
    steps: list[Step] = []
    lines = markdown.splitlines()
    i, in_block = 0, False
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("```"):
            in_block = line.strip() == "```console" if not in_block else False
            i += 1
            continue
        if not in_block:
            i += 1
            continue
        if line.startswith("$ "):
            start = i + 1
            command = line[2:]
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            exit_code = 0
            match = _EXITS.search(command)
            if match:
                exit_code = int(match.group(1))
                command = command[:match.start()]
            heredoc = _HEREDOC.search(command)
            if heredoc:
                body = []
                i += 1
                while i < len(lines) and lines[i] != heredoc.group(1):
                    body.append(lines[i])
                    i += 1
                command = command + "\n" + "\n".join(body) + "\n" + heredoc.group(1)
            steps.append(Step(command=command, expected_exit=exit_code, line=start))
        elif steps and line.strip() and line.strip() != "...":
            steps[-1].expected.append(line.strip())
        i += 1
    return steps


def shim(bin_dir: Path) -> Path:
    """A ``partsledger`` executable that runs this checkout's CLI with this interpreter."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "partsledger"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m clients.cli "$@"\n')
    script.chmod(0o755)
    return bin_dir


def run(doc: Path, env: dict[str, str], cwd: Path) -> list[str]:
    """Run every step of ``doc``; return a list of failures (empty when the tutorial is right)."""
    failures: list[str] = []
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **env}
    for step in parse(doc.read_text(encoding="utf-8")):
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", step.command], cwd=cwd, env=full_env,
                                capture_output=True, text=True, timeout=120, check=False)
        printed = result.stdout + result.stderr
        where = f"{doc.name}:{step.line}: $ {step.command.splitlines()[0]}"
        if result.returncode != step.expected_exit:
            failures.append(f"{where}\n  exit {result.returncode}, expected {step.expected_exit}\n{printed}")
            break
        position = 0
        normalised = re.sub(r"\s+", " ", printed)
        for fragment in step.expected:
            found = normalised.find(re.sub(r"\s+", " ", fragment), position)
            if found < 0:
                failures.append(f"{where}\n  expected output {fragment!r} not found in:\n{printed}")
                break
            position = found + len(re.sub(r"\s+", " ", fragment))
        if "Traceback" in printed:
            failures.append(f"{where}\n  printed a traceback:\n{printed}")
    return failures
