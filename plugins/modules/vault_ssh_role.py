#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: vault_ssh_role
short_description: Keep a certificate-signing role of an SSH secrets engine of Vault or OpenBao
version_added: 0.1.0
description:
  - Reads the role (C(<mount>/roles/<name>)) and writes it only when a field differs. The role signs
    certificates with the mount's CA (C(key_type=ca)); tokens allowed to update C(<mount>/sign/<name>) get
    their public keys signed as it says.
  - The server replaces a role whole on every write, so the module owns the whole role. An option left out
    counts with its default (the server's), and is compared and written as such; settings the module has no
    option for go back to the server's defaults when the role is written.
  - Fields are compared as the server returns them - durations in seconds (V(1h) equals C(3600)), the
    comma-separated lists as sets, extension and critical option values as strings.
  - The mount needs a CA to sign (M(ephemeral.castle.vault_ssh_ca)), not to keep roles.
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
      - Path of the SSH secrets engine.
    type: str
    default: ssh
  name:
    description:
      - Name of the role; the signing path is C(<mount>/sign/<name>).
    type: str
    required: true
  allowed_users:
    description:
      - Principals a certificate may carry (V(*) for any). The server allows none when the list is empty.
      - Required with O(state=present).
    type: list
    elements: str
  default_user:
    description:
      - Principal of a certificate whose request names none.
    type: str
    default: ""
  allowed_extensions:
    description:
      - Extensions a signing request may ask for (V(*) for any). Empty, a request may ask for none and gets
        O(default_extensions).
    type: list
    elements: str
    default: []
  default_extensions:
    description:
      - Extensions of a certificate whose request asks for none, for example V(permit-port-forwarding) with an empty value.
    type: dict
    default: {}
  allowed_critical_options:
    description:
      - Critical options a signing request may ask for. Empty, the server allows any.
    type: list
    elements: str
    default: []
  default_critical_options:
    description:
      - Critical options of a certificate whose request asks for none, for example V(source-address) with a list of CIDR blocks.
    type: dict
    default: {}
  ttl:
    description:
      - Validity of a certificate whose request asks for none, in seconds or as a duration (V(1h)). V(0) takes
        the mount's default lease TTL.
    type: str
    default: "0"
  max_ttl:
    description:
      - Longest validity a request may ask for. V(0) takes the mount's maximum lease TTL.
    type: str
    default: "0"
  not_before_duration:
    description:
      - How far back a certificate's validity starts, against clock skew.
    type: str
    default: "30"
  allow_user_certificates:
    description:
      - Whether the role signs user certificates.
    type: bool
    default: true
  allow_host_certificates:
    description:
      - Whether the role signs host certificates.
    type: bool
    default: false
  allow_user_key_ids:
    description:
      - Whether a request may set the certificate's key ID.
    type: bool
    default: false
  key_id_format:
    description:
      - Format of the key ID (C({{role_name}}), C({{token_display_name}}), C({{public_key_hash}})); empty, the
        server's own.
    type: str
    default: ""
  algorithm_signer:
    description:
      - Signature algorithm of an RSA CA; V(default) lets the server choose.
    type: str
    default: default
    choices: [default, ssh-rsa, rsa-sha2-256, rsa-sha2-512]
  state:
    description:
      - Whether the role exists.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Certificates for the tunnels of one actor
  ephemeral.castle.vault_ssh_role:
    mount: ssh-fleet
    name: gateway
    allowed_users: [gateway]
    default_user: gateway
    allowed_extensions: [permit-port-forwarding]
    default_extensions:
      permit-port-forwarding: ""
    ttl: 1h
    max_ttl: 4h
"""

RETURN = r"""
role:
  description:
    - The role's fields this module keeps, after the task (as they would be, in check mode), normalised
      (durations in seconds, lists sorted); null when the role is absent.
  returned: always
  type: dict
  sample: {allowed_users: [gateway], default_user: gateway, ttl: 3600, max_ttl: 14400, key_type: ca}
"""

from ansible_collections.ephemeral.castle.plugins.module_utils import vault
from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module

LISTS = ('allowed_users', 'allowed_extensions', 'allowed_critical_options')
MAPS = ('default_extensions', 'default_critical_options')
DURATIONS = ('ttl', 'max_ttl', 'not_before_duration')
PLAIN = ('default_user', 'allow_user_certificates', 'allow_host_certificates', 'allow_user_key_ids', 'key_id_format',
         'algorithm_signer')


def normalised(role, where):
    """A role's fields as they compare: lists (the server keeps comma-separated strings) sorted without
    duplicates, durations in seconds, map values as strings."""
    found = dict(key_type=role.get('key_type'))
    for name in LISTS:
        value = role.get(name) or []
        items = value.split(',') if isinstance(value, str) else value
        found[name] = sorted({item.strip() for item in items if item.strip()})
    for name in MAPS:
        found[name] = {str(key): str(value) for key, value in (role.get(name) or {}).items()}
    for name in DURATIONS:
        found[name] = vault.duration_seconds(role.get(name) or 0, where + name)
    for name in PLAIN:
        found[name] = role.get(name)
    if not found['algorithm_signer']:
        found['algorithm_signer'] = 'default'
    for name in ('default_user', 'key_id_format'):
        found[name] = found[name] or ''
    return found


def desired(params):
    for name in LISTS:
        bad = [item for item in params[name] or [] if ',' in item]
        if bad:
            raise vault.VaultError('{0}: {1!r} holds a comma; give one entry per list item'.format(name, bad[0]))
    role = normalised(dict(params, key_type='ca'), '')
    if role['ttl'] and role['max_ttl'] and role['ttl'] > role['max_ttl']:
        raise vault.VaultError('ttl ({0}s) is longer than max_ttl ({1}s)'.format(role['ttl'], role['max_ttl']))
    if not role['allow_user_certificates'] and not role['allow_host_certificates']:
        raise vault.VaultError('allow_user_certificates or allow_host_certificates must be true')
    return role


def body(role):
    """What the server takes: the lists comma-separated."""
    sent = dict(role)
    sent.update((name, ','.join(role[name])) for name in LISTS)
    return sent


def keep(module):
    params = module.params
    mount, name = params['mount'].strip('/'), params['name']
    if not name or '/' in name:
        raise vault.VaultError('name {0!r}: a role name is not empty and has no "/"'.format(name))
    role = desired(params) if params['state'] == 'present' else None
    server = vault.Vault(params)
    vault.require_mount(server, mount, 'ssh')
    path = '{0}/roles/{1}'.format(mount, name)
    found = (server.api_read(path) or {}).get('data')
    current = normalised(found, 'the role read back: ') if found else None
    changed = current != role
    if changed and not module.check_mode:
        server.before_write()
        if role is None:
            server.api_delete(path)
        else:
            server.api_write(path, body(role))
    result = dict(changed=changed, role=role)
    if module._diff:
        result['diff'] = dict(before=current or {}, after=role or {})
    return result


def main():
    spec = dict(mount=dict(type='str', default='ssh'), name=dict(type='str', required=True),
                allowed_users=dict(type='list', elements='str'), default_user=dict(type='str', default=''),
                allowed_extensions=dict(type='list', elements='str', default=[]),
                default_extensions=dict(type='dict', default={}),
                allowed_critical_options=dict(type='list', elements='str', default=[]),
                default_critical_options=dict(type='dict', default={}),
                ttl=dict(type='str', default='0'), max_ttl=dict(type='str', default='0'),
                not_before_duration=dict(type='str', default='30'),
                allow_user_certificates=dict(type='bool', default=True),
                allow_host_certificates=dict(type='bool', default=False),
                allow_user_key_ids=dict(type='bool', default=False, no_log=False),
                key_id_format=dict(type='str', default='', no_log=False),
                algorithm_signer=dict(type='str', default='default',
                                      choices=['default', 'ssh-rsa', 'rsa-sha2-256', 'rsa-sha2-512']),
                state=dict(type='str', default='present', choices=['present', 'absent']))
    module = vault.layer().module(spec, required_if=[('state', 'present', ('allowed_users',))])
    run_module(module, lambda: keep(module))


if __name__ == '__main__':
    main()
