#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: vault_unseal
short_description: Unseal a Vault or OpenBao server with its Shamir unseal keys
version_added: 0.1.0
description:
  - Submits unseal keys (C(sys/unseal)) one at a time until the server is unsealed, and reports the
    progress against the threshold.
  - An unsealed server is left alone (no change, no key sent). A server that is not initialised fails
    the task (see M(ephemeral.castle.vault_init)).
  - Progress left by an earlier, unfinished unseal is reset first, so only the keys given count.
  - Needs no token.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.vault
  - ephemeral.castle.vault.RETRIES
  - ephemeral.castle.vault.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  keys:
    description:
      - Unseal keys (base64 or hexadecimal), at least the server's threshold of them.
      - Exactly one of O(keys) and O(keys_file) is required.
    type: list
    elements: str
  keys_file:
    description:
      - JSON file holding the keys under C(unseal_keys_b64) (or C(unseal_keys_hex), C(keys_base64),
        C(keys)), as M(ephemeral.castle.vault_init) writes it at its O(ephemeral.castle.vault_init#module:dest)
        and C(bao operator init -format=json) prints it.
    type: path
"""

EXAMPLES = r"""
- name: Unseal OpenBao with the keys vault_init kept
  ephemeral.castle.vault_unseal:
    vault_addr: https://bao.example.org:8200
    keys_file: /srv/castle/private/bao-init.json

- name: Unseal with keys from ansible-vault encrypted vars
  ephemeral.castle.vault_unseal:
    keys: "{{ castle_bao_unseal_keys }}"
"""

RETURN = r"""
sealed:
  description: Whether the server is sealed after the task (still true in check mode).
  returned: always
  type: bool
  sample: false
progress:
  description: Keys accepted towards the threshold when the server is still sealed; 0 once unsealed.
  returned: always
  type: int
  sample: 0
threshold:
  description: Number of keys the server needs.
  returned: always
  type: int
  sample: 3
shares:
  description: Number of key shares of the server.
  returned: always
  type: int
  sample: 5
keys_submitted:
  description: How many keys this run sent.
  returned: always
  type: int
  sample: 3
"""

import json

from ansible_collections.ephemeral.castle.plugins.module_utils import vault
from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module

KEY_FIELDS = ('unseal_keys_b64', 'unseal_keys_hex', 'keys_base64', 'keys')


def read_keys(path):
    try:
        with open(path) as handle:
            found = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        raise vault.VaultError('keys_file {0} cannot be read as JSON: {1}'.format(path, exc))
    for field in KEY_FIELDS:
        if isinstance(found, dict) and isinstance(found.get(field), list) and found[field]:
            return [str(key) for key in found[field]]
    raise vault.VaultError('keys_file {0} holds no list of keys under {1}'.format(path, ', '.join(KEY_FIELDS)))


def unseal(module):
    params = module.params
    keys = params['keys'] if params['keys'] is not None else read_keys(params['keys_file'])
    module.no_log_values.update(keys)
    keys = [key.strip() for key in keys if key and key.strip()]
    source = 'keys' if params['keys'] is not None else 'keys_file ' + params['keys_file']
    if not keys:
        raise vault.VaultError('{0}: no unseal key given'.format(source))
    server = vault.Vault(params, login=False)
    status = server.seal_status()
    if not status.get('initialized'):
        raise server.not_initialised()
    result = dict(changed=False, sealed=bool(status['sealed']), progress=status.get('progress', 0),
                  threshold=status.get('t'), shares=status.get('n'), keys_submitted=0)
    if not status['sealed']:
        result['progress'] = 0
    elif len(keys) < status['t']:
        raise vault.VaultError('{0}: {1} key(s) given, the server needs {2}; it stays sealed'.format(
            source, len(keys), status['t']))
    elif not module.check_mode:
        result['changed'] = True
        if status.get('progress'):
            server.call('resetting the unseal progress', server.client.sys.submit_unseal_key, reset=True)
        for number, key in enumerate(keys, 1):
            try:
                status = server.call('unseal key #{0}'.format(number), server.client.sys.submit_unseal_key, key=key)
            except vault.VaultSealed:
                raise
            except vault.VaultError as exc:
                raise vault.VaultError('{0}: Vault at {1} refused unseal key #{2}; it stays sealed: {3}'.format(
                    source, server.addr, number, str(exc).split(' failed: ', 1)[-1]))
            result.update(keys_submitted=number, sealed=bool(status['sealed']), progress=status.get('progress', 0))
            if not status['sealed']:
                break
        if status['sealed']:
            raise vault.VaultError('{0}: {1} key(s) submitted and Vault at {2} is still sealed (progress {3}/{4}): '
                                   'the keys do not belong to this server'.format(
                                       source, result['keys_submitted'], server.addr, status.get('progress', 0),
                                       status.get('t')))
    else:
        result['changed'] = True
    if module._diff:
        result['diff'] = dict(before=dict(sealed=result['changed']), after=dict(sealed=False))
    return result


def main():
    spec = dict(keys=dict(type='list', elements='str', no_log=True), keys_file=dict(type='path'))
    module = vault.layer(auth=False).module(spec, mutually_exclusive=[('keys', 'keys_file')],
                                            required_one_of=[('keys', 'keys_file')])
    run_module(module, lambda: unseal(module))


if __name__ == '__main__':
    main()
