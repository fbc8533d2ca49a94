#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: vault_policy
short_description: Keep an ACL policy of Vault or OpenBao
version_added: 0.1.0
description:
  - Reads the policy (C(sys/policies/acl/<name>)) and writes it only when the text given means something
    else. Both texts are parsed and compared normalised, so whitespace, comments, the order of path blocks
    and attributes, string quoting and heredocs, and the order or repetition of list entries (such as
    C(capabilities)) make no difference. Anything else (another path, capability, parameter or value)
    does. Text the parser cannot read is compared line by line, ignoring indentation and blank lines.
  - When it writes, the text given is stored as is.
  - O(state=absent) deletes the policy; a missing policy is no change. The C(root) and C(default) policies
    cannot be deleted.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.vault
  - ephemeral.castle.vault.RETRIES
  - ephemeral.castle.vault.AUTH
  - ephemeral.castle.vault.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  name:
    description:
      - Name of the policy, in lower case (Vault stores policy names in lower case).
    type: str
    required: true
  policy:
    description:
      - The policy, HCL (or JSON). With O(state=present), exactly one of O(policy) and O(policy_file) is required.
    type: str
  policy_file:
    description:
      - File on the controller holding the policy.
    type: path
  state:
    description:
      - Whether the policy exists.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Read access to the KV secrets of kaze-runtime
  ephemeral.castle.vault_policy:
    name: kaze-runtime-read
    policy: |
      path "kv/data/kaze-runtime/*" {
        capabilities = ["read"]
      }

- name: A policy kept in a file
  ephemeral.castle.vault_policy:
    name: operators
    policy_file: files/operators.hcl

- name: Policy no longer used
  ephemeral.castle.vault_policy:
    name: legacy
    state: absent
"""

RETURN = r"""
name:
  description: Name of the policy.
  returned: always
  type: str
  sample: kaze-runtime-read
policy:
  description: Text of the policy as Vault keeps it after the task (as it would, in check mode); null when absent.
  returned: always
  type: str
  sample: "path \"kv/data/kaze-runtime/*\" {\n  capabilities = [\"read\"]\n}\n"
"""

from ansible_collections.ephemeral.castle.plugins.module_utils import vault
from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.vault_hcl import PolicySyntaxError, normalise_policy, policies_equal

PROTECTED = ('root', 'default')


def desired_text(params):
    if params['policy_file']:
        try:
            with open(params['policy_file']) as handle:
                return handle.read()
        except (IOError, OSError) as exc:
            raise vault.VaultError('policy_file {0} cannot be read: {1}'.format(params['policy_file'], exc))
    return params['policy']


def keep(module):
    params = module.params
    name, state = params['name'], params['state']
    if not name or name != name.lower() or '/' in name:
        raise vault.VaultError('name {0!r}: a policy name is lower case, without "/"'.format(name))
    if name == 'root':
        raise vault.VaultError('name root: the root policy cannot be changed')
    if state == 'absent' and name in PROTECTED:
        raise vault.VaultError('name {0}: this policy cannot be deleted'.format(name))
    text = desired_text(params) if state == 'present' else None
    if state == 'present':
        if not text or not text.strip():
            raise vault.VaultError('policy for {0} is empty'.format(name))
        try:
            normalise_policy(text)
        except PolicySyntaxError as exc:
            raise vault.VaultError('policy for {0} is not valid HCL: {1}'.format(name, exc))
    server = vault.Vault(params)
    path = 'sys/policies/acl/' + name
    found = server.api_read(path)
    current = ((found or {}).get('data') or {}).get('policy')
    if state == 'present':
        changed = current is None or not policies_equal(current, text)
        after = text if changed else current
    else:
        changed = current is not None
        after = None
    if changed and not module.check_mode:
        server.before_write()
        if state == 'present':
            server.api_write(path, {'policy': text})
        else:
            server.api_delete(path)
    result = dict(changed=changed, name=name, policy=after)
    if module._diff:
        result['diff'] = dict(before=current or '', after=after or '',
                              before_header='policy {0}'.format(name), after_header='policy {0}'.format(name))
    return result


def main():
    spec = dict(name=dict(type='str', required=True), policy=dict(type='str'), policy_file=dict(type='path'),
                state=dict(type='str', default='present', choices=['present', 'absent']))
    module = vault.layer().module(spec, mutually_exclusive=[('policy', 'policy_file')],
                                  required_if=[('state', 'present', ('policy', 'policy_file'), True)])
    run_module(module, lambda: keep(module))


if __name__ == '__main__':
    main()
