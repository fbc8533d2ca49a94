#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: vault_auth_method
short_description: Enable, tune or disable an auth method mount of Vault or OpenBao
version_added: 0.1.0
description:
  - Reads the mount (C(sys/auth) and C(sys/auth/<path>/tune)); enables it when missing (with its
    settings), tunes only the settings given that differ, and disables it with O(state=absent).
  - Settings left out are not compared and not changed. TTLs are compared in seconds, as Vault returns the
    effective values (the system's when the mount has none of its own); give explicit durations.
  - A mount at O(path) of another type fails the task; it is never replaced (disabling a mount deletes
    its roles and configuration).
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
      - Where the method is mounted, without C(auth/), for example C(kubernetes-lab). Defaults to O(type).
      - One of O(path) and O(type) is required.
    type: str
  type:
    description:
      - The auth method, for example C(kubernetes), C(approle), C(userpass). Required to enable a mount.
    type: str
  description:
    description:
      - Human-readable description of the mount.
    type: str
  default_lease_ttl:
    description:
      - Default TTL of tokens issued by the mount, in seconds or as a duration (V(1h), V(30m)).
    type: str
  max_lease_ttl:
    description:
      - Maximum TTL of tokens issued by the mount, in seconds or as a duration.
    type: str
  listing_visibility:
    description:
      - Whether the mount is listed by the unauthenticated C(sys/internal/ui/mounts) endpoint.
    type: str
    choices: [unauth, hidden]
  token_type:
    description:
      - Type of tokens the mount issues.
    type: str
    choices: [default-service, default-batch, service, batch]
  audit_non_hmac_request_keys:
    description:
      - Request keys the audit devices log without HMAC. Compared as a set.
    type: list
    elements: str
  audit_non_hmac_response_keys:
    description:
      - Response keys the audit devices log without HMAC. Compared as a set.
    type: list
    elements: str
  passthrough_request_headers:
    description:
      - Request headers passed to the auth method. Compared as a set.
    type: list
    elements: str
  state:
    description:
      - Whether the mount exists.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Kubernetes auth for the lab cluster
  ephemeral.castle.vault_auth_method:
    path: kubernetes-lab
    type: kubernetes
    description: Service accounts of the lab cluster
    default_lease_ttl: 1h
    max_lease_ttl: 24h

- name: Mount no longer used (its roles and configuration go with it)
  ephemeral.castle.vault_auth_method:
    path: kubernetes-old
    state: absent
"""

RETURN = r"""
path:
  description: Path of the mount, without C(auth/) and without a trailing slash.
  returned: always
  type: str
  sample: kubernetes-lab
type:
  description: Type of the mount; null when it is absent.
  returned: always
  type: str
  sample: kubernetes
accessor:
  description: Accessor of the mount, as Vault reported it before the task (null for a new mount or in check mode).
  returned: always
  type: str
  sample: auth_kubernetes_fcdd05e7
tuned:
  description: Names of the settings this run changed (or would change) on an existing mount.
  returned: always
  type: list
  elements: str
  sample: [default_lease_ttl]
"""

from ansible_collections.ephemeral.castle.plugins.module_utils import vault
from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module

TTLS = ('default_lease_ttl', 'max_lease_ttl')
LISTS = ('audit_non_hmac_request_keys', 'audit_non_hmac_response_keys', 'passthrough_request_headers')
PLAIN = ('description', 'listing_visibility', 'token_type')
SETTINGS = TTLS + LISTS + PLAIN


def wanted(params):
    """The settings given, normalised as Vault's tune endpoint returns them."""
    found = {}
    for name in SETTINGS:
        value = params[name]
        if value is None:
            continue
        if name in TTLS:
            value = vault.duration_seconds(value, name)
        elif name in LISTS:
            value = sorted(set(value))
        found[name] = value
    return found


def current(tune):
    found = {}
    for name in SETTINGS:
        value = tune.get(name)
        if name in LISTS:
            value = sorted(set(value or []))
        elif name in PLAIN and value is None:
            value = ''
        found[name] = value
    return found


def keep(module):
    params = module.params
    path = (params['path'] or params['type'] or '').strip('/')
    if not path:
        raise vault.VaultError('path (or type) is required')
    desired = wanted(params)
    server = vault.Vault(params)
    mounts = ((server.api_read('sys/auth') or {}).get('data')) or {}
    mount = mounts.get(path + '/')
    result = dict(changed=False, path=path, type=(mount or {}).get('type'), accessor=(mount or {}).get('accessor'),
                  tuned=[])
    before = after = None
    if mount:
        if params['type'] and params['type'] != mount['type']:
            raise vault.VaultError('auth/{0} is a {1} mount, not {2}: disable it first (state=absent); it is never '
                                   'replaced'.format(path, mount['type'], params['type']))
        tune = current((server.api_read('sys/auth/{0}/tune'.format(path)) or {}).get('data') or {})
        before = dict(path=path, type=mount['type'], **{name: tune[name] for name in desired})
    if params['state'] == 'absent':
        if mount:
            result.update(changed=True, type=None)
            if not module.check_mode:
                server.before_write()
                server.api_delete('sys/auth/' + path)
    elif not mount:
        if not params['type']:
            raise vault.VaultError('type is required to enable an auth method at auth/{0}'.format(path))
        result.update(changed=True, type=params['type'])
        after = dict(path=path, type=params['type'], **desired)
        if not module.check_mode:
            config = {name: value for name, value in desired.items() if name != 'description'}
            body = dict(type=params['type'], config=config)
            if 'description' in desired:
                body['description'] = desired['description']
            server.before_write()
            server.api_write('sys/auth/' + path, body)
    else:
        changes = {name: value for name, value in desired.items() if tune[name] != value}
        after = {**before, **changes}
        if changes:
            result.update(changed=True, tuned=sorted(changes))
            if not module.check_mode:
                server.before_write()
                server.api_write('sys/auth/{0}/tune'.format(path), changes)
    if module._diff:
        result['diff'] = dict(before=before or {}, after=after or {})
    return result


def main():
    spec = dict(path=dict(type='str'), type=dict(type='str'), description=dict(type='str'),
                default_lease_ttl=dict(type='str'), max_lease_ttl=dict(type='str'),
                listing_visibility=dict(type='str', choices=['unauth', 'hidden']),
                token_type=dict(type='str', choices=['default-service', 'default-batch', 'service', 'batch']),
                audit_non_hmac_request_keys=dict(type='list', elements='str', no_log=False),
                audit_non_hmac_response_keys=dict(type='list', elements='str', no_log=False),
                passthrough_request_headers=dict(type='list', elements='str', no_log=False),
                state=dict(type='str', default='present', choices=['present', 'absent']))
    module = vault.layer().module(spec, required_one_of=[('path', 'type')])
    run_module(module, lambda: keep(module))


if __name__ == '__main__':
    main()
