#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to apctl
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vfio_ap_info
short_description: The AP crypto view of an s390 host - vfio_ap mdevs, queues and their owners, masks, apd status
version_added: "0.1.0"
description:
  - Returns what C(apctl --json list), C(apctl --json queues), C(apctl --json masks) and C(apctl --json status) print
    on the target, as structured data.
  - The module only calls apctl and passes its JSON on; it changes nothing.
author:
  - apctl maintainers (!UNKNOWN)
requirements:
  - C(apctl) on the target, and C(apd) running there.
options:
  gather:
    description:
      - Which of the four views to return; the others are not asked for.
    type: list
    elements: str
    choices: [mdevs, queues, masks, status]
    default: [mdevs, queues, masks, status]
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
    description: The module only reads, in check mode as otherwise.
    support: full
  diff_mode:
    description: Nothing changes, so there is nothing to show.
    support: none
notes:
  - Tested with ansible-core 2.19.
  - Reading is open to every user on the target; apd needs no privileges for it.
seealso:
  - module: apctl.vfio_ap.vfio_ap_state
"""

EXAMPLES = r"""
- name: What each host's crypto adapters are doing
  apctl.vfio_ap.vfio_ap_info:
  register: ap

- name: Every active mdev, with its guest matrix
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.guest_matrix | join(',') }}"
  loop: "{{ ap.mdevs | selectattr('active') }}"

- name: Queues nobody owns yet
  apctl.vfio_ap.vfio_ap_info:
    gather: [queues]
  register: ap_queues
"""

RETURN = r"""
mdevs:
  description:
    - C(apctl --json list) - one entry per mdev, defined by apd or made by another tool.
    - Id lists are ascending integers; for an active mdev they are the live assignment, else the definition.
  returned: when V(mdevs) is in O(gather)
  type: list
  elements: dict
  sample:
    - uuid: 62177883-f1bb-47f0-914d-32a22e3a8804
      name: guest1
      defined: true
      active: true
      autostart: true
      adapters: [5, 6]
      domains: [4, 171]
      control_domains: []
      guest_matrix: ["05.0004", "05.00ab", "06.0004", "06.00ab"]
      persistent: null
queues:
  description:
    - C(apctl --json queues) - one entry per APQN with its card, state, driver and owner
      (V(host), V(free) or V(mdev) with the mdev's name and UUID).
  returned: when V(queues) is in O(gather)
  type: list
  elements: dict
  sample:
    - apqn: "05.0004"
      card_type: CEX7C
      mode: cca
      config: true
      online: true
      chkstop: false
      driver: vfio_ap
      owner: mdev
      owner_uuid: 62177883-f1bb-47f0-914d-32a22e3a8804
      owner_name: guest1
masks:
  description: C(apctl --json masks) - the live and persistent masks, and the adapters and domains given to vfio_ap.
  returned: when V(masks) is in O(gather)
  type: dict
  sample:
    apmask: "0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    aqmask: "0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe"
    persistent_apmask: "0xf9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    persistent_aqmask: "0xf7fffffffffffffffeffffffffffffffffffffffffeffffffffffffffffffffe"
    vfio_adapters: [5, 6]
    vfio_domains: [4, 71, 171, 255]
status:
  description:
    - C(apctl --json status) - apd's version and backend, a host summary, and the definitions that failed to load or start.
  returned: when V(status) is in O(gather)
  type: dict
  sample:
    version: 0.1.0
    vfio_ap_loaded: true
    adapters: 7
    queues: 35
    defined: 2
    active: 2
    load_errors: []
    start_failures: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.apctl.vfio_ap.plugins.module_utils.apctl import COMMON_ARGS, Apctl

# Each view and the apctl command that prints it.
VIEWS = (
    ("mdevs", "list"),
    ("queues", "queues"),
    ("masks", "masks"),
    ("status", "status"),
)


def main():
    spec = dict(
        gather=dict(
            type="list",
            elements="str",
            choices=[name for name, _ in VIEWS],
            default=[name for name, _ in VIEWS],
        ),
    )
    spec.update(COMMON_ARGS)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    apctl = Apctl(module)
    result = dict(changed=False)
    for name, command in VIEWS:
        if name in module.params["gather"]:
            result[name] = apctl.json(command)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
