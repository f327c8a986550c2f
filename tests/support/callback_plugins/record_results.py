# -*- coding: utf-8 -*-
# Test support: write every task result as JSON lines to $RECORD_RESULTS_FILE.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: record_results
type: notification
short_description: Record task results as JSON lines for the collection's tests
description:
  - Appends one JSON object per task result to the file named by E(RECORD_RESULTS_FILE).
requirements:
  - enabled in callbacks_enabled
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, status):
        path = os.environ.get("RECORD_RESULTS_FILE")
        if not path:
            return
        task = getattr(result, "task_name", None) or result._task.get_name()
        data = dict(result._result)
        data.pop("invocation", None)
        line = {"task": task, "status": status, "result": data}
        with open(path, "a") as f:
            f.write(json.dumps(line, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("RECORD_RESULTS_FILE")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"stats": {h: stats.summarize(h) for h in stats.processed}}) + "\n")
