# SPDX-License-Identifier: MIT OR Apache-2.0

"""The collection's TOML writer (ansible/plugins/module_utils/toml_state.py)
against Python's own TOML reader: what it writes reads back as the same
state. Run by tests/tests/ansible.rs: ``python3 -m unittest`` in this
directory, with the module's directory on PYTHONPATH."""

import tomllib
import unittest

from toml_state import StateError, to_toml


class ToToml(unittest.TestCase):
    def read(self, state):
        return tomllib.loads(to_toml(state))

    def test_the_seed_layout_reads_back(self):
        state = {
            "masks": {"vfio_adapters": [5, 6], "vfio_domains": [4, 0x47, 0xAB, 0xFF]},
            "mdevs": [
                {"uuid": "62177883-f1bb-47f0-914d-32a22e3a8804", "name": "guest1", "autostart": True,
                 "adapters": [5, 6], "domains": [4, 0xAB], "control_domains": []},
                {"name": "guest2", "autostart": False, "adapters": [5], "domains": [0x47, 0xFF]},
            ],
        }
        self.assertEqual(
            self.read(state),
            {
                "masks": {"vfio_adapters": [5, 6], "vfio_domains": [4, 71, 171, 255]},
                "mdev": [
                    {"uuid": "62177883-f1bb-47f0-914d-32a22e3a8804", "name": "guest1", "autostart": True,
                     "adapters": [5, 6], "domains": [4, 171], "control_domains": []},
                    {"name": "guest2", "autostart": False, "adapters": [5], "domains": [71, 255]},
                ],
            },
        )

    def test_none_is_left_out_and_an_empty_state_is_an_empty_file(self):
        self.assertEqual(to_toml({}), "")
        self.assertEqual(to_toml(None), "")
        self.assertEqual(to_toml({"masks": {"apmask": None, "vfio_domains": None}, "mdevs": None}), "")
        self.assertEqual(
            self.read({"mdevs": [{"name": "g", "uuid": None, "autostart": None, "adapters": None}]}),
            {"mdev": [{"name": "g"}]},
        )

    def test_masks_stay_strings(self):
        mask = "0xf9" + "f" * 62
        self.assertEqual(self.read({"masks": {"apmask": mask, "aqmask": "0x"}}),
                         {"masks": {"apmask": mask, "aqmask": "0x"}})
        with self.assertRaisesRegex(StateError, "masks.apmask must be a quoted string"):
            to_toml({"masks": {"apmask": 0xF9FF}})

    def test_strings_are_escaped(self):
        name = 'a "quoted"\\name\twith\ncontrol\x01\x7f and ünïcode'
        self.assertEqual(self.read({"mdevs": [{"name": name}]}), {"mdev": [{"name": name}]})

    def test_ids_must_be_integers_not_booleans(self):
        with self.assertRaisesRegex(StateError, r"mdevs\[0\].adapters\[1\] must be an integer"):
            to_toml({"mdevs": [{"name": "g", "adapters": [5, True]}]})
        with self.assertRaisesRegex(StateError, "must be an integer"):
            to_toml({"masks": {"vfio_domains": ["0x47"]}})
        with self.assertRaisesRegex(StateError, "autostart must be a boolean"):
            to_toml({"mdevs": [{"name": "g", "autostart": "yes"}]})


if __name__ == "__main__":
    unittest.main()
