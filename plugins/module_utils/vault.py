# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Vault layer's one client. PRIVATE to the collection: other collections must not import it.

An hvac client from explicit options (VAULT_ADDR, VAULT_TOKEN and VAULT_CACERT as fallbacks), checked
with a token lookup, and KV v2 reads and writes that name the path on failure.
"""

import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

try:
    import hvac
    from hvac import exceptions as hvac_exceptions
    import requests
    HAS_HVAC = True
    HVAC_IMPORT_ERROR = None
except ImportError:
    HAS_HVAC = False
    HVAC_IMPORT_ERROR = traceback.format_exc()


def connection_argument_spec():
    """Options of every module that keeps something in Vault (doc fragment ephemeral.castle.vault)."""
    return dict(
        vault_addr=dict(type='str', fallback=(env_fallback, ['VAULT_ADDR'])),
        vault_token=dict(type='str', no_log=True, fallback=(env_fallback, ['VAULT_TOKEN'])),
        vault_ca_cert=dict(type='path', fallback=(env_fallback, ['VAULT_CACERT'])),
        validate_certs=dict(type='bool', default=True),
        vault_mount=dict(type='str', default='kv'),
        vault_timeout=dict(type='int', default=30),
    )


class VaultError(Exception):
    """A Vault call failed; the message names the path and why."""


class VaultKV(object):
    """KV v2 on one mount of one Vault server."""

    def __init__(self, params):
        if not HAS_HVAC:
            raise VaultError(missing_required_lib('hvac'))
        if not params.get('vault_addr'):
            raise VaultError('vault_addr (or VAULT_ADDR) is required to keep secrets in Vault')
        if not params.get('vault_token'):
            raise VaultError('vault_token (or VAULT_TOKEN) is required to keep secrets in Vault')
        verify = params['validate_certs']
        if verify and params.get('vault_ca_cert'):
            verify = params['vault_ca_cert']
        self.addr = params['vault_addr']
        self.mount = params['vault_mount']
        self.client = hvac.Client(url=self.addr, token=params['vault_token'], verify=verify,
                                  timeout=params['vault_timeout'])
        try:
            self.client.auth.token.lookup_self()
        except hvac_exceptions.Forbidden:
            raise VaultError('Vault at {0} refused the token (403): check vault_token'.format(self.addr))
        except requests.exceptions.SSLError as exc:
            raise VaultError('TLS verification of {0} failed (set vault_ca_cert): {1}'.format(self.addr, exc))
        except (requests.exceptions.RequestException, hvac_exceptions.VaultError) as exc:
            raise VaultError('cannot reach Vault at {0}: {1}'.format(self.addr, exc))

    def where(self, path):
        return '{0}/{1}'.format(self.mount, path)

    def read(self, path):
        """The secret's data, or None when there is none (never written, or its latest version deleted)."""
        try:
            found = self.client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=self.mount, raise_on_deleted_version=True)
        except hvac_exceptions.InvalidPath:
            return None
        except hvac_exceptions.Forbidden:
            raise VaultError('permission denied reading {0}'.format(self.where(path)))
        except (requests.exceptions.RequestException, hvac_exceptions.VaultError) as exc:
            raise VaultError('reading {0} failed: {1}'.format(self.where(path), exc))
        return ((found or {}).get('data') or {}).get('data')

    def write(self, path, data):
        """Write a new version; returns its version number."""
        try:
            found = self.client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=data, mount_point=self.mount)
        except hvac_exceptions.Forbidden:
            raise VaultError('permission denied writing {0}'.format(self.where(path)))
        except (requests.exceptions.RequestException, hvac_exceptions.VaultError) as exc:
            raise VaultError('writing {0} failed: {1}'.format(self.where(path), exc))
        return ((found or {}).get('data') or {}).get('version')
