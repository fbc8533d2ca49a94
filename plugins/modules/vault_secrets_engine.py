#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: vault_secrets_engine
short_description: Enable, tune or disable a secrets engine mount of Vault or OpenBao
version_added: 0.1.0
description:
  - Reads the mount (C(sys/mounts) and C(sys/mounts/<path>/tune)); enables it when missing (with its settings),
    tunes only the settings given that differ, and disables it with O(state=absent).
  - Settings left out are not compared and not changed. TTLs are compared in seconds, as the tune endpoint
    returns the effective values (the system's when the mount has none of its own); give explicit durations.
  - A mount at O(path) of another type fails the task naming both types; it is never replaced (disabling a
    mount deletes everything stored under it, an SSH CA included).
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.vault
  - ephemeral.castle.vault.RETRIES
  - ephemeral.castle.vault.AUTH
  - ephemeral.castle.vault.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  path:
    description:
      - Where the engine is mounted, for example C(ssh-fleet). Defaults to O(type).
      - One of O(path) and O(type) is required.
    type: str
  type:
    description:
      - The secrets engine, for example C(ssh) or C(kv). Required to enable a mount.
      - V(kv-v2) stands for C(kv) with O(options) C(version=2), as the server lists such a mount.
    type: str
  description:
    description:
      - Human-readable description of the mount.
    type: str
  options:
    description:
      - Options of the engine, for example V(version=2) for KV. Values are compared as strings, as the
        server returns them; only the options given are compared.
    type: dict
  default_lease_ttl:
    description:
      - Default TTL of the leases the mount issues, in seconds or as a duration (V(1h), V(30m)).
    type: str
  max_lease_ttl:
    description:
      - Maximum TTL of the leases the mount issues, in seconds or as a duration.
    type: str
  state:
    description:
      - Whether the mount exists.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: SSH secrets engine of the fleet
  ephemeral.castle.vault_secrets_engine:
    path: ssh-fleet
    type: ssh
    description: SSH certificates of the fleet machines
    max_lease_ttl: 24h

- name: A KV version 2 store
  ephemeral.castle.vault_secrets_engine:
    path: kv-apps
    type: kv
    options:
      version: 2

- name: Mount no longer used (everything stored under it goes with it)
  ephemeral.castle.vault_secrets_engine:
    path: ssh-old
    state: absent
"""

RETURN = r"""
path:
  description: Path of the mount, without a trailing slash.
  returned: always
  type: str
  sample: ssh-fleet
type:
  description: Type of the mount; null when it is absent.
  returned: always
  type: str
  sample: ssh
mount:
  description:
    - The mount as C(sys/mounts) lists it after the task (type, accessor, description, options, config); in
      check mode as it was before the task. Null when there is none.
  returned: always
  type: dict
  sample: {type: ssh, accessor: ssh_3ab70b43, description: "", options: null, config: {default_lease_ttl: 0, max_lease_ttl: 0}}
tuned:
  description: Names of the settings this run changed (or would change) on an existing mount.
  returned: always
  type: list
  elements: str
  sample: [max_lease_ttl]
"""

from ansible_collections.ephemeral.castle.plugins.module_utils import vault
from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module

TTLS = ('default_lease_ttl', 'max_lease_ttl')


def requested(params):
    """The type and the settings given, normalised as the tune endpoint returns them."""
    kind, options = params['type'], params['options']
    if kind == 'kv-v2':
        kind, options = 'kv', dict(options or {}, version=2)
    settings = {name: vault.duration_seconds(params[name], name) for name in TTLS if params[name] is not None}
    if params['description'] is not None:
        settings['description'] = params['description']
    if options is not None:
        settings['options'] = {str(key): str(value) for key, value in options.items()}
    return kind, settings


def tuned_now(tune, settings):
    """The current value of each setting given; of the options only those given."""
    found = {name: tune.get(name) for name in settings if name != 'options'}
    if 'description' in found:
        found['description'] = found['description'] or ''
    if 'options' in settings:
        current = tune.get('options') or {}
        found['options'] = {key: current.get(key) for key in settings['options']}
    return found


def planned(state, path, kind, settings, mount, current):
    """The write the task needs - (HTTP method, path, body) - or None, and the mount's settings after it."""
    if state == 'absent':
        return ('DELETE', 'sys/mounts/' + path, None) if mount else None, {}
    if mount is None:
        if not kind:
            raise vault.VaultError('type is required to enable a secrets engine at {0}'.format(path))
        body = dict(type=kind, config={name: settings[name] for name in TTLS if name in settings})
        body.update((name, settings[name]) for name in ('description', 'options') if name in settings)
        return ('POST', 'sys/mounts/' + path, body), dict(settings, path=path, type=kind)
    changes = {name: value for name, value in settings.items() if current[name] != value}
    after = dict(current, path=path, type=mount['type'], **changes)
    return ('POST', 'sys/mounts/{0}/tune'.format(path), changes) if changes else None, after


def keep(module):
    params = module.params
    path = (params['path'] or params['type'] or '').strip('/')
    if not path:
        raise vault.VaultError('path (or type) is required')
    kind, settings = requested(params)
    server = vault.Vault(params)
    mount = vault.secrets_mount(server, path)
    current = before = {}
    if mount:
        if kind and kind != mount['type']:
            raise vault.VaultError('type: {0} is a {1} mount, not {2}: disable it first (state=absent); it is never '
                                   'replaced'.format(path, mount['type'], kind))
        current = tuned_now((server.api_read('sys/mounts/{0}/tune'.format(path)) or {}).get('data') or {}, settings)
        before = dict(current, path=path, type=mount['type'])
    write, after = planned(params['state'], path, kind, settings, mount, current)
    tuned = sorted(write[2]) if write and mount and params['state'] == 'present' else []
    if write and not module.check_mode:
        server.before_write()
        if write[0] == 'DELETE':
            server.api_delete(write[1])
        else:
            server.api_write(write[1], write[2])
        mount = vault.secrets_mount(server, path)
    result = dict(changed=bool(write), path=path, type=after.get('type'), mount=mount, tuned=tuned)
    if module._diff:
        result['diff'] = dict(before=before, after=after)
    return result


def main():
    spec = dict(path=dict(type='str'), type=dict(type='str'), description=dict(type='str'),
                options=dict(type='dict'), default_lease_ttl=dict(type='str'), max_lease_ttl=dict(type='str'),
                state=dict(type='str', default='present', choices=['present', 'absent']))
    module = vault.layer().module(spec, required_one_of=[('path', 'type')])
    run_module(module, lambda: keep(module))


if __name__ == '__main__':
    main()
