# -*- coding: utf-8 -*-
# Copyright: contributors to apctl
# SPDX-License-Identifier: MIT OR Apache-2.0

"""Running apctl from a module: the only door to apd.

Every rule, plan and check lives in apctl and apd; the modules run
``apctl --json`` and map its JSON. A refusal fails the task with apctl's
one sentence (its stderr) and exit status.
"""

from __future__ import annotations

import json

# Options every module of the collection takes.
COMMON_ARGS = dict(
    bus=dict(type="str", default="system"),
    apctl_path=dict(type="path"),
)


class Apctl:
    """``apctl --bus BUS ...`` for one module run."""

    def __init__(self, module):
        self.module = module
        path = module.params.get("apctl_path")
        self.path = path if path else module.get_bin_path("apctl", required=True)
        self.bus = module.params.get("bus")

    def command(self, *args):
        cmd = [self.path]
        if self.bus:
            cmd += ["--bus", self.bus]
        cmd += list(args)
        return cmd

    def run(self, *args):
        """(rc, stdout, stderr) of ``apctl --bus BUS ARGS``; never raises."""
        return self.module.run_command(self.command(*args))

    def fail(self, cmd, rc, stdout, stderr, **extra):
        """Fails the task with apctl's sentence and exit status."""
        sentence = stderr.strip() or ("%s exited with status %s" % (" ".join(cmd), rc))
        self.module.fail_json(msg=sentence, rc=rc, cmd=cmd, stdout=stdout, stderr=stderr, **extra)

    def text(self, *args, **extra):
        """stdout of ``apctl ARGS``; fails the task when apctl does."""
        cmd = self.command(*args)
        rc, out, err = self.module.run_command(cmd)
        if rc != 0:
            self.fail(cmd, rc, out, err, **extra)
        return out

    def json(self, *args, **extra):
        """The JSON printed by ``apctl --json ARGS``; fails the task when apctl does."""
        cmd = self.command("--json", *args)
        rc, out, err = self.module.run_command(cmd)
        if rc != 0:
            self.fail(cmd, rc, out, err, **extra)
        try:
            return json.loads(out)
        except ValueError as e:
            self.module.fail_json(
                msg="%s printed no JSON: %s" % (" ".join(cmd), e), rc=rc, cmd=cmd, stdout=out, stderr=err, **extra
            )
