# -*- coding: utf-8 -*-
# Copyright: contributors to apctl
# SPDX-License-Identifier: MIT OR Apache-2.0

"""The desired-state file (design.md, "Desired-state file") as TOML text.

Written with the Python standard library only, so nothing beyond Python 3
is needed on a managed host. The module arguments are already typed by
Ansible's argument spec; this only writes them in the file format, and
leaves every rule (valid ids, names, UUIDs, masks) to apctl, which reads
the file.
"""

from __future__ import annotations

MASK_KEYS = ("apmask", "aqmask")
MASK_ID_KEYS = ("vfio_adapters", "vfio_domains")
MDEV_STR_KEYS = ("uuid", "name")
MDEV_ID_KEYS = ("adapters", "domains", "control_domains")


class StateError(ValueError):
    """An argument that cannot be written as the file format says."""


def toml_string(value):
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append("\\u%04x" % code)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_int(value, where):
    """A TOML integer; booleans (a Python int subclass) are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise StateError("%s must be an integer, not %r" % (where, value))
    return str(value)


def toml_ids(values, where):
    """An array of integers, e.g. ``[5, 6]``."""
    if not isinstance(values, (list, tuple)):
        raise StateError("%s must be a list of integers, not %r" % (where, values))
    return "[" + ", ".join(toml_int(v, "%s[%d]" % (where, i)) for i, v in enumerate(values)) + "]"


def mask_string(value, where):
    """A mask in the kernel's absolute syntax, always written as a string.

    YAML reads an unquoted ``0xf9ff...`` as a number, which loses the
    mask's length (the kernel syntax is left-aligned: the first hex digit
    is bits 0-3), so a number is refused rather than guessed at.
    """
    if isinstance(value, str):
        return toml_string(value)
    raise StateError(
        "%s must be a quoted string such as \"0xf9ff...\" (YAML reads an unquoted 0x... as a "
        "number, which loses the mask's length), not %r" % (where, value)
    )


def to_toml(state):
    """The desired-state file for ``state``: ``{'masks': {...}, 'mdevs': [{...}]}``.

    Keys whose value is None are left out (apctl's defaults apply); an
    absent or empty ``masks`` writes no ``[masks]`` table (the masks are
    left alone).
    """
    state = state or {}
    lines = []
    masks = state.get("masks") or {}
    mask_lines = []
    for key in MASK_KEYS:
        if masks.get(key) is not None:
            mask_lines.append("%s = %s" % (key, mask_string(masks[key], "masks.%s" % key)))
    for key in MASK_ID_KEYS:
        if masks.get(key) is not None:
            mask_lines.append("%s = %s" % (key, toml_ids(masks[key], "masks.%s" % key)))
    if mask_lines:
        lines.append("[masks]")
        lines.extend(mask_lines)
    for i, mdev in enumerate(state.get("mdevs") or []):
        where = "mdevs[%d]" % i
        if not isinstance(mdev, dict):
            raise StateError("%s must be a dictionary, not %r" % (where, mdev))
        if lines:
            lines.append("")
        lines.append("[[mdev]]")
        for key in MDEV_STR_KEYS:
            value = mdev.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise StateError("%s.%s must be a string, not %r" % (where, key, value))
            lines.append("%s = %s" % (key, toml_string(value)))
        autostart = mdev.get("autostart")
        if autostart is not None:
            if not isinstance(autostart, bool):
                raise StateError("%s.autostart must be a boolean, not %r" % (where, autostart))
            lines.append("autostart = %s" % ("true" if autostart else "false"))
        for key in MDEV_ID_KEYS:
            if mdev.get(key) is not None:
                lines.append("%s = %s" % (key, toml_ids(mdev[key], "%s.%s" % (where, key))))
    return "\n".join(lines) + "\n" if lines else ""
