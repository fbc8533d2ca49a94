# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One shape for every module of the collection.

A layer (Talos, Vault, Proxmox, Kubernetes, fleet) describes once what its modules share - connection
options, the AnsibleModule constraints between them, a Python library it needs - as a `Layer`. A module
asks its layer for an AnsibleModule with its own options merged in, and hands its work to `run_module`,
which turns any CastleError (every layer's error derives from it) into fail_json with its details.

Options mean the same in every module:
  wait          bool, wait until the change has taken effect
  wait_timeout  int, seconds to wait at most
  wait_sleep    int/float, seconds between two looks
  retries       int, how many times a failed call is tried again
Older names stay accepted as aliases (see `option`)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.ephemeral.castle.plugins.module_utils._files import FileWriteError

# AnsibleModule constraints that are lists of option groups: a layer's and a module's are concatenated
# (required_by, a dict, is merged).
_LISTS = ('mutually_exclusive', 'required_together', 'required_one_of', 'required_if')


class CastleError(Exception):
    """What went wrong, in words that name the bad input or the failing call; details() adds structured
    context (rc, stdout, stderr, command, status, ...) for fail_json."""

    def details(self):
        return {}


class Layer(object):
    """What every module of one layer shares.

    argument_spec: the layer's options (connection, retries), documented in its doc fragment.
    options: AnsibleModule constraints between them (mutually_exclusive, required_together, ...).
    requires: (name, imported, import_error) of a library the layer needs; the module fails naming it."""

    def __init__(self, argument_spec=None, requires=None, **options):
        self.argument_spec = argument_spec or {}
        self.requires = requires
        self.options = options

    def module(self, argument_spec, **options):
        """An AnsibleModule taking the layer's options and argument_spec, check mode supported."""
        spec = dict(self.argument_spec)
        spec.update(argument_spec)
        merged = dict(self.options)
        for key, value in options.items():
            if key in _LISTS:
                value = list(merged.get(key, [])) + list(value)
            elif key == 'required_by':
                value = dict(merged.get(key, {}), **value)
            merged[key] = value
        module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **merged)
        if self.requires:
            name, imported, error = self.requires
            if not imported:
                module.fail_json(msg=missing_required_lib(name), exception=error)
        return module


def option(kind, default=None, aliases=None, **extra):
    """An argument_spec entry; `aliases` keeps an older name working."""
    spec = dict(type=kind, **extra)
    if default is not None:
        spec['default'] = default
    if aliases:
        spec['aliases'] = list(aliases)
    return spec


def wait_options(timeout, sleep=None, wait=True, timeout_aliases=None):
    """The wait vocabulary: wait, wait_timeout (older name in timeout_aliases) and, given a default, wait_sleep."""
    spec = dict(wait=option('bool', wait), wait_timeout=option('int', timeout, aliases=timeout_aliases))
    if sleep is not None:
        spec['wait_sleep'] = option('float', sleep)
    return spec


def run_module(module, action, errors=(), partial=None):
    """exit_json with the dict action() returns; fail_json when it raises a CastleError (with its details),
    a FileWriteError, or one of `errors` (with its message). `partial` is a dict the action fills as it
    goes: a failure returns it too, so what was done or seen before the error is not lost."""
    result = {}
    try:
        result = action()
    except CastleError as exc:
        module.fail_json(msg=str(exc), **dict(partial or {}, **exc.details()))
    except (FileWriteError,) + tuple(errors) as exc:
        module.fail_json(msg=str(exc), **(partial or {}))
    module.exit_json(**result)
