#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to apctl
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vfio_ap_state
short_description: Bring an s390 host's AP masks and vfio_ap mdevs to a desired state
version_added: "0.1.0"
description:
  - Runs C(apctl --json apply FILE) on the target, where C(apd) validates the desired state against the host,
    plans the changes and applies them in a safe order, all or nothing.
  - The desired state is the desired-state file of C(apctl apply), given as a path on the target (O(src)) or inline
    (O(state), the same content as YAML). Inline state is written to a temporary TOML file on the target.
  - In check mode only the plan is computed (C(apctl apply --dry-run)); nothing is written.
  - The task is changed exactly when the plan has steps; RV(steps) lists them.
  - A refusal (for example a mask change that would take back a queue an mdev holds) fails the task with apctl's
    one-sentence error and exit status, and the host is left as it was.
  - The module only calls apctl and maps its JSON; every rule, plan and check is apctl's and apd's.
author:
  - apctl maintainers (!UNKNOWN)
requirements:
  - C(apctl) on the target, and C(apd) running there.
  - Python 3 on the target (standard library only).
options:
  state:
    description:
      - The desired state inline, as the desired-state file's content in YAML.
      - Mutually exclusive with O(src); one of the two is required.
    type: dict
    suboptions:
      masks:
        description:
          - The host masks. Absent or empty leaves the masks alone.
          - Give either O(state.masks.apmask)/O(state.masks.aqmask) or
            O(state.masks.vfio_adapters)/O(state.masks.vfio_domains).
          - Masks are applied live and stored as the persistent masks.
        type: dict
        suboptions:
          apmask:
            description:
              - The whole apmask in the kernel's absolute syntax, C(0x) and 64 hex digits.
              - Quote it, V("0xf9ff...ff"); YAML reads an unquoted C(0x...) as a number, which is refused.
            type: raw
          aqmask:
            description:
              - The whole aqmask, as for O(state.masks.apmask).
            type: raw
          vfio_adapters:
            description:
              - Shorthand for apmask, the adapters given to vfio_ap (their bits clear, all others set).
            type: list
            elements: int
          vfio_domains:
            description:
              - Shorthand for aqmask, the domains given to vfio_ap.
            type: list
            elements: int
      mdevs:
        description:
          - One entry per mdev, in the definition format (the file's C([[mdev]]) tables).
          - An mdev is matched by O(state.mdevs[].uuid) when given, else by O(state.mdevs[].name).
        type: list
        elements: dict
        suboptions:
          uuid:
            description:
              - The mdev's UUID. Optional; without it the mdev is matched by name and a new one gets a fresh UUID.
            type: str
          name:
            description:
              - The mdev's name. Give a name, a UUID, or both.
            type: str
          autostart:
            description:
              - Start the mdev at boot; apply also starts an autostart mdev that is not active.
              - When not given, apctl's default (V(false)).
            type: bool
          adapters:
            description:
              - Adapter ids (integers; YAML reads C(0x05) as an integer too).
            type: list
            elements: int
          domains:
            description:
              - Usage domain ids, for example V([4, 0xab]).
            type: list
            elements: int
          control_domains:
            description:
              - Control domain ids.
            type: list
            elements: int
  src:
    description:
      - Path on the target of a desired-state file (TOML), as for C(apctl apply FILE).
      - Mutually exclusive with O(state).
    type: path
  prune:
    description:
      - Stop and undefine the mdevs that the desired state does not name (C(apctl apply --prune)).
      - Without it, mdevs the desired state does not name are left alone.
    type: bool
    default: false
  bus:
    description:
      - The D-Bus bus on which apd serves, as for C(apctl --bus) - V(system), V(session) or a D-Bus address.
    type: str
    default: system
  apctl_path:
    description:
      - Path of C(apctl) on the target. When not given, C(apctl) is looked up on E(PATH).
    type: path
attributes:
  check_mode:
    description: Computes the plan (C(apctl apply --dry-run)) and writes nothing.
    support: full
  diff_mode:
    description:
      - Shows C(apctl export --format toml) before and after the change.
      - In check mode, shows the current export followed by the planned steps (the state after is not known before it is applied).
    support: full
notes:
  - Tested with ansible-core 2.19.
seealso:
  - module: apctl.vfio_ap.vfio_ap_info
"""

EXAMPLES = r"""
- name: Guest1 and Guest2 get their crypto adapters
  apctl.vfio_ap.vfio_ap_state:
    state:
      masks:
        vfio_adapters: [5, 6]
        vfio_domains: [4, 0x47, 0xab, 0xff]
      mdevs:
        - name: guest1
          uuid: 62177883-f1bb-47f0-914d-32a22e3a8804
          autostart: true
          adapters: [5, 6]
          domains: [4, 0xab]
        - name: guest2
          autostart: true
          adapters: [5]
          domains: [0x47, 0xff]

- name: The desired state from a file on the host, dropping every other mdev
  apctl.vfio_ap.vfio_ap_state:
    src: /etc/apd/desired.toml
    prune: true

- name: Only show what would change
  apctl.vfio_ap.vfio_ap_state:
    src: /etc/apd/desired.toml
  check_mode: true
  register: plan
"""

RETURN = r"""
steps:
  description:
    - The plan, one entry per change in the order it runs (or, in check mode, would run); empty when nothing changes.
    - Each entry is a step of C(apctl --json apply).
  returned: success
  type: list
  elements: dict
  contains:
    action:
      description: What the step does, for example V(define), V(set-masks), V(start), V(assign-domain).
      type: str
      sample: assign-domain
    target:
      description: The mdev's name (or UUID), or V(host) for the masks.
      type: str
      sample: guest1
    uuid:
      description: The mdev's UUID, or null for a host step.
      type: str
      sample: 62177883-f1bb-47f0-914d-32a22e3a8804
    detail:
      description: The step in one sentence.
      type: str
      sample: assign domain 0xab to guest1 (62177883-f1bb-47f0-914d-32a22e3a8804)
  sample:
    - action: start
      target: guest2
      uuid: 4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e
      detail: "start guest2 (4b7d9e3a-1c2f-4a8b-9d6e-0f1a2b3c4d5e): create the mdev (its assignments follow)"
cmd:
  description: The apctl command that was run.
  returned: always
  type: list
  elements: str
  sample: [/usr/bin/apctl, --bus, system, --json, apply, /tmp/ansible-tmp/desired-state.toml]
rc:
  description: apctl's exit status (1 when refused or failed, 2 on a usage error).
  returned: failure
  type: int
  sample: 1
stderr:
  description: apctl's error, one sentence.
  returned: failure
  type: str
  sample: "apctl: cannot apply the desired state: queue 05.0004 is assigned to guest1 (...) and would return to the host; ..."
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.apctl.vfio_ap.plugins.module_utils.apctl import COMMON_ARGS, Apctl
from ansible_collections.apctl.vfio_ap.plugins.module_utils.toml_state import StateError, to_toml


def argument_spec():
    def ids():
        return dict(type="list", elements="int")

    spec = dict(
        state=dict(
            type="dict",
            options=dict(
                masks=dict(
                    type="dict",
                    options=dict(
                        apmask=dict(type="raw"),
                        aqmask=dict(type="raw"),
                        vfio_adapters=ids(),
                        vfio_domains=ids(),
                    ),
                ),
                mdevs=dict(
                    type="list",
                    elements="dict",
                    options=dict(
                        uuid=dict(type="str"),
                        name=dict(type="str"),
                        autostart=dict(type="bool"),
                        adapters=ids(),
                        domains=ids(),
                        control_domains=ids(),
                    ),
                ),
            ),
        ),
        src=dict(type="path"),
        prune=dict(type="bool", default=False),
    )
    spec.update(COMMON_ARGS)
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("state", "src")],
        required_one_of=[("state", "src")],
        supports_check_mode=True,
    )
    apctl = Apctl(module)
    if module.params["state"] is not None:
        try:
            text = to_toml(module.params["state"])
        except StateError as e:
            module.fail_json(msg="state: %s" % e)
        path = os.path.join(module.tmpdir, "desired-state.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        # Absolute, so that apctl never reads it as `-` (standard input) or an option.
        path = os.path.abspath(module.params["src"])

    before = apctl.text("export", "--format", "toml") if module._diff else None

    args = ["--json", "apply", path]
    if module.params["prune"]:
        args.append("--prune")
    if module.check_mode:
        args.append("--dry-run")
    cmd = apctl.command(*args)
    rc, out, err = module.run_command(cmd)
    if rc != 0:
        apctl.fail(cmd, rc, out, err)
    try:
        steps = apctl_steps(out)
    except ValueError as e:
        module.fail_json(msg="%s printed no plan: %s" % (" ".join(cmd), e), cmd=cmd, stdout=out, stderr=err)

    result = dict(changed=bool(steps), steps=steps, cmd=cmd)
    if module._diff:
        if module.check_mode:
            planned = "".join("# would %s\n" % s.get("detail", s.get("action")) for s in steps)
            result["diff"] = dict(
                before=before,
                after=before + ("\n" + planned if planned else ""),
                before_header="apctl export (now)",
                after_header="apctl export (now) + apctl apply --dry-run",
            )
        else:
            after = apctl.text("export", "--format", "toml") if steps else before
            result["diff"] = dict(
                before=before,
                after=after,
                before_header="apctl export (before)",
                after_header="apctl export (after)",
            )
    module.exit_json(**result)


def apctl_steps(out):
    """The ``steps`` of ``apctl --json apply``'s plan."""
    plan = json.loads(out)
    steps = plan.get("steps") if isinstance(plan, dict) else None
    if not isinstance(steps, list):
        raise ValueError("no steps array")
    return steps


if __name__ == "__main__":
    main()
