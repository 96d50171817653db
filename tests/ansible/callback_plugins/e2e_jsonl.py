# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT OR Apache-2.0

"""A stdout callback for tests/tests/ansible.rs: one JSON object a line.

ansible-core ships no JSON stdout callback (``json`` lives in the
ansible.posix collection), so the test brings this one:
``ANSIBLE_CALLBACK_PLUGINS=tests/ansible/callback_plugins`` and
``ANSIBLE_STDOUT_CALLBACK=e2e_jsonl``. Each task result on each host is
``{"event": "ok"|"failed"|"skipped"|"unreachable", "host", "task",
"result"}`` (the module's result, its diff included), and the last line is
``{"event": "stats", "stats": {host: {"ok", "changed", "failures", ...}}}``.
"""

from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: e2e_jsonl
type: stdout
short_description: One JSON object a line per task result, then the stats (tests only)
description:
  - Used by the apctl end-to-end test of the apctl.vfio_ap collection.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "e2e_jsonl"

    def _emit(self, obj):
        self._display.display(json.dumps(obj, default=str, sort_keys=True))

    def _result(self, event, result):
        res = result.result
        data = self._dump_results(res, keep_invocation=True, serialize=False)
        if "diff" in res:
            data["diff"] = res["diff"]
        for key in ("warnings", "exception"):
            if key in res:
                data[key] = res[key]
        self._emit(dict(event=event, host=result.host.get_name(), task=result.task.get_name(), result=data))

    def v2_runner_on_ok(self, result):
        self._result("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result("failed", result)

    def v2_runner_on_skipped(self, result):
        self._result("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._result("unreachable", result)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        self._emit(dict(event="stats", stats={h: stats.summarize(h) for h in hosts}))
