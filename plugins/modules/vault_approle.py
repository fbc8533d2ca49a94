#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: vault_approle
short_description: Keep an AppRole of Vault or OpenBao, read its role ID and issue secret IDs
version_added: 0.1.0
description:
  - Reads the role (C(auth/<mount>/role/<name>)) and writes the fields given when one differs; fields left
    out are neither compared nor changed (the server keeps them). Lists are compared as sets and durations in
    seconds, as the server returns them.
  - Returns the role ID (C(auth/<mount>/role/<name>/role-id)), which is not secret.
  - With O(issue_secret_id=true) it issues a new secret ID (C(auth/<mount>/role/<name>/secret-id)) on every
    run. The collection's action plugin marks a result that holds one C(no_log), so Ansible hides the whole
    result; set C(no_log=true) on such a task all the same. The module keeps the value out of its messages and
    its diff.
  - The mount is enabled with M(ephemeral.castle.vault_auth_method) (type C(approle)).
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.vault
  - ephemeral.castle.vault.RETRIES
  - ephemeral.castle.vault.AUTH
  - ephemeral.castle.vault.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  mount:
    description:
      - Path of the AppRole auth mount, without C(auth/).
    type: str
    default: approle
  name:
    description:
      - Name of the role.
    type: str
    required: true
  token_policies:
    description:
      - Policies of the tokens a login gets.
    type: list
    elements: str
  token_ttl:
    description:
      - TTL of those tokens, in seconds or as a duration (V(1h)); V(0) takes the mount's.
    type: str
  token_max_ttl:
    description:
      - Maximum TTL of those tokens, in seconds or as a duration.
    type: str
  token_bound_cidrs:
    description:
      - Addresses (or CIDR blocks) those tokens may be used from.
    type: list
    elements: str
  token_type:
    description:
      - Type of those tokens.
    type: str
    choices: [default, service, batch]
  secret_id_ttl:
    description:
      - Validity of a new secret ID, in seconds or as a duration; V(0) for no expiry.
    type: str
  secret_id_num_uses:
    description:
      - Logins a new secret ID allows; V(0) for any number.
    type: int
  secret_id_bound_cidrs:
    description:
      - CIDR blocks a login with a secret ID may come from.
    type: list
    elements: str
  issue_secret_id:
    description:
      - Issue a new secret ID, returned in RV(secret_id) and RV(secret_id_accessor); the task always reports a
        change. Nothing is issued in check mode. Set C(no_log=true) on the task.
    type: bool
    default: false
  secret_id_metadata:
    description:
      - Metadata of the new secret ID (string values), kept by the server with it and on the tokens of its logins.
    type: dict
  destroy_secret_id_accessors:
    description:
      - Accessors of secret IDs of the role to destroy, for example the previous one after a rotation. An
        accessor the role does not know is no change.
    type: list
    elements: str
    default: []
  state:
    description:
      - Whether the role exists. Deleting it invalidates its secret IDs.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: The AppRole of one machine
  ephemeral.castle.vault_approle:
    name: fleet-railiance01
    token_policies: [fleet-railiance01-sign]
    token_ttl: 10m
    token_max_ttl: 30m
    secret_id_ttl: 0
  register: machine_role

- name: Its secret ID, issued once and kept on the machine
  ephemeral.castle.vault_approle:
    name: fleet-railiance01
    issue_secret_id: true
    secret_id_metadata:
      host: railiance01
  register: machine_secret
  no_log: true

- name: Rotation - a new secret ID, then the old one destroyed
  ephemeral.castle.vault_approle:
    name: fleet-railiance01
    issue_secret_id: true
    destroy_secret_id_accessors: ["{{ old_accessor }}"]
  no_log: true
"""

RETURN = r"""
role_id:
  description: Role ID of the role (not secret); null when it is absent (or would be created, in check mode).
  returned: always
  type: str
  sample: 1484fa68-f68b-f369-58f9-91c98c9e393f
role:
  description: The fields given, normalised as they compare (durations in seconds, lists sorted); null when absent.
  returned: always
  type: dict
  sample: {token_policies: [fleet-railiance01-sign], token_ttl: 600}
secret_id:
  description: The new secret ID. Secret - the result that holds it is marked C(no_log).
  returned: when O(issue_secret_id=true), not in check mode
  type: str
secret_id_accessor:
  description: Accessor of the new secret ID (not secret), to destroy it later.
  returned: when O(issue_secret_id=true), not in check mode
  type: str
  sample: 26d7818b-b972-01a9-00fb-7443f849f236
destroyed_secret_id_accessors:
  description: Accessors of O(destroy_secret_id_accessors) the role knew and that were (or would be) destroyed.
  returned: always
  type: list
  elements: str
  sample: []
"""

import json

from ansible_collections.ephemeral.castle.plugins.module_utils import vault
from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module

LISTS = ('token_policies', 'token_bound_cidrs', 'secret_id_bound_cidrs')
DURATIONS = ('token_ttl', 'token_max_ttl', 'secret_id_ttl')
FIELDS = LISTS + DURATIONS + ('secret_id_num_uses', 'token_type')


def value(name, given):
    if name in LISTS:
        return sorted(set(given or []))
    if name in DURATIONS:
        return vault.duration_seconds(given or 0, name)
    return given


def keep(module):
    params = module.params
    mount, name, present = params['mount'].strip('/'), params['name'], params['state'] == 'present'
    if not name or '/' in name:
        raise vault.VaultError('name {0!r}: a role name is not empty and has no "/"'.format(name))
    if not present and (params['issue_secret_id'] or params['destroy_secret_id_accessors']):
        raise vault.VaultError('issue_secret_id and destroy_secret_id_accessors need state=present')
    given = {field: value(field, params[field]) for field in FIELDS if params[field] is not None}
    if params['secret_id_num_uses'] is not None and params['secret_id_num_uses'] < 0:
        raise vault.VaultError('secret_id_num_uses must be 0 or more, not {0}'.format(params['secret_id_num_uses']))
    server = vault.Vault(params)
    vault.require_mount(server, mount, 'approle', auth=True)
    path = 'auth/{0}/role/{1}'.format(mount, name)
    found = (server.api_read(path) or {}).get('data')
    current = {field: value(field, found.get(field)) for field in given} if found else None
    write = present and current != given
    delete = not present and found is not None
    result = dict(changed=write or delete, role=given if present else None, role_id=None,
                  destroyed_secret_id_accessors=[])
    if (write or delete) and not module.check_mode:
        server.before_write()
        if write:
            server.api_write(path, given)
        else:
            server.api_delete(path)
    if present and (found is not None or not module.check_mode):
        result['role_id'] = ((server.api_read(path + '/role-id') or {}).get('data') or {}).get('role_id')
    after = dict(given) if present else {}
    if params['issue_secret_id']:
        result['changed'] = True
        after['secret_id'] = '<new secret ID>'
        if module.check_mode:
            result['msg'] = 'check mode: no secret ID issued'
        else:
            metadata = {str(key): str(item) for key, item in (params['secret_id_metadata'] or {}).items()}
            issued = (server.api_write(path + '/secret-id', {'metadata': json.dumps(metadata)} if metadata else {})
                      or {}).get('data') or {}
            result.update(secret_id=issued.get('secret_id'), secret_id_accessor=issued.get('secret_id_accessor'))
    if found is not None:
        result['destroyed_secret_id_accessors'] = destroy(module, server, mount, name)
    if result['destroyed_secret_id_accessors']:
        result['changed'] = True
        after['destroyed_secret_id_accessors'] = result['destroyed_secret_id_accessors']
    if module._diff:
        result['diff'] = dict(before=current or {}, after=after)
    return result


def destroy(module, server, mount, name):
    """Destroy the secret IDs of these accessors that the role knows; their list."""
    known = [accessor for accessor in dict.fromkeys(module.params['destroy_secret_id_accessors'])
             if vault.secret_id_accessor(server, mount, name, accessor)]
    if known and not module.check_mode:
        server.before_write()
        for accessor in known:
            server.api_write('auth/{0}/role/{1}/secret-id-accessor/destroy'.format(mount, name),
                             {'secret_id_accessor': accessor})
    return known


def main():
    spec = dict(mount=dict(type='str', default='approle'), name=dict(type='str', required=True),
                token_policies=dict(type='list', elements='str', no_log=False), token_ttl=dict(type='str', no_log=False),
                token_max_ttl=dict(type='str', no_log=False),
                token_bound_cidrs=dict(type='list', elements='str', no_log=False),
                token_type=dict(type='str', no_log=False, choices=['default', 'service', 'batch']),
                secret_id_ttl=dict(type='str', no_log=False), secret_id_num_uses=dict(type='int', no_log=False),
                secret_id_bound_cidrs=dict(type='list', elements='str', no_log=False),
                issue_secret_id=dict(type='bool', default=False, no_log=False),
                secret_id_metadata=dict(type='dict', no_log=False),
                destroy_secret_id_accessors=dict(type='list', elements='str', default=[], no_log=False),
                state=dict(type='str', default='present', choices=['present', 'absent']))
    module = vault.layer().module(spec)
    run_module(module, lambda: keep(module))


if __name__ == '__main__':
    main()
