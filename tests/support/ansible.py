"""Run the collection's modules and playbooks through the real ansible CLI, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Run:
    def __init__(self, proc, result):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.result = result

    @property
    def output(self):
        return self.stdout + self.stderr

    @property
    def failed(self):
        return self.rc != 0 or bool(self.result.get("failed"))

    @property
    def msg(self):
        return self.result.get("msg", "")


def _env(extra=None, record=None):
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "PATH": str(BIN) + os.pathsep + env.get("PATH", ""),
    })
    if record:
        env["ANSIBLE_CALLBACK_PLUGINS"] = str(Path(__file__).parent / "callback_plugins")
        env["ANSIBLE_CALLBACKS_ENABLED"] = "record_results"
        env["ANSIBLE_LOAD_CALLBACK_PLUGINS"] = "1"
        env["RECORD_RESULTS_FILE"] = record
    env.update(extra or {})
    return env


def _run(cmd, env, timeout):
    fd, record = tempfile.mkstemp(prefix="ansible-results-", suffix=".jsonl")
    os.close(fd)
    try:
        proc = subprocess.run(cmd, cwd=str(REPO_ROOT), env=_env(env, record), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        with open(record) as f:
            lines = [json.loads(line) for line in f if line.strip()]
    finally:
        os.unlink(record)
    return proc, lines


def run_module(name, args, check=False, diff=False, verbosity=0, env=None, timeout=600):
    """`ansible localhost -m gardenlinux.onmetal.NAME -a JSON`; returns a Run with the task's result."""
    cmd = [
        str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
        "-e", "ansible_python_interpreter=%s" % sys.executable,
        "-m", "gardenlinux.onmetal." + name, "-a", json.dumps(args),
    ]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    proc, lines = _run(cmd, env, timeout)
    results = [line["result"] for line in lines if "result" in line]
    return Run(proc, results[-1] if results else {})


def run_playbook(playbook, extra_vars=None, check=False, diff=False, verbosity=0, env=None, timeout=900):
    """`ansible-playbook PLAYBOOK -e JSON`; Run.result holds the per-task results list and stats."""
    cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
           "-e", "ansible_python_interpreter=%s" % sys.executable]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbosity:
        cmd.append("-" + "v" * verbosity)
    proc, lines = _run(cmd, env, timeout)
    stats = [line["stats"] for line in lines if "stats" in line]
    return Run(proc, {
        "tasks": [(line["task"], line["status"], line["result"]) for line in lines if "result" in line],
        "stats": (stats[-1] if stats else {}).get("localhost", {}),
    })
