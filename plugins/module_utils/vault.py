# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Vault layer's one client. PRIVATE to the collection: other collections must not import it.

An hvac client from explicit options (VAULT_ADDR, VAULT_TOKEN and VAULT_CACERT as fallbacks), logged in
with a token, AppRole or Kubernetes auth. Every call goes through Vault.call: connection errors and 5xx
answers are retried a bounded number of times with a short jittered backoff, 4xx answers are not, and a
sealed or uninitialised server becomes one specific error. Modules call before_write() before their first
write, so a server sealed since the module connected fails the module before anything is written.
Policies are compared in vault_hcl.

A Vault module asks layer() for its AnsibleModule:

    module = vault.layer(auth=True, kv=False).module(dict(...))
    run_module(module, lambda: work(module))

A module of another layer that also uses Vault takes connection_argument_spec() beside its own options.
"""

import time
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.ephemeral.castle.plugins.module_utils._wait import Deadline, backoff, wait_until
from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError, Layer, option

try:
    import hvac
    from hvac import exceptions as hvac_exceptions
    import requests
    HAS_HVAC = True
    HVAC_IMPORT_ERROR = None
except ImportError:
    HAS_HVAC = False
    HVAC_IMPORT_ERROR = traceback.format_exc()

SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token'
AUTH_METHODS = ('token', 'approle', 'kubernetes')
# Longest wait between two attempts of a call (seconds).
BACKOFF_CAP = 2.0
# Bytes read at a time from a raft snapshot being downloaded.
SNAPSHOT_CHUNK = 1024 * 1024


def server_argument_spec():
    """How to reach the server (doc fragment ephemeral.castle.vault)."""
    return dict(
        vault_addr=option('str', fallback=(env_fallback, ['VAULT_ADDR'])),
        vault_ca_cert=option('path', fallback=(env_fallback, ['VAULT_CACERT'])),
        validate_certs=option('bool', True),
        vault_timeout=option('int', 30),
    )


def auth_argument_spec():
    """How to log in (doc fragment ephemeral.castle.vault.AUTH)."""
    return dict(
        vault_auth_method=option('str', 'token', choices=list(AUTH_METHODS)),
        vault_auth_mount=option('str'),
        vault_token=option('str', no_log=True, fallback=(env_fallback, ['VAULT_TOKEN'])),
        vault_role_id=option('str'),
        vault_secret_id=option('str', no_log=True),
        vault_kubernetes_role=option('str'),
        vault_kubernetes_jwt=option('str', no_log=True),
        vault_kubernetes_jwt_file=option('path'),
    )


def _options(kv, auth):
    spec = server_argument_spec()
    if auth:
        spec.update(auth_argument_spec())
    if kv:
        spec['vault_mount'] = option('str', 'kv')
    return spec


def layer(auth=True, kv=False):
    """The Layer of a Vault module: the server, the login (unless auth=False), with kv=True the KV v2 mount
    (doc fragment ephemeral.castle.vault.KV), and `retries` (ephemeral.castle.vault.RETRIES, older name
    vault_retries). Its modules fail naming hvac when it is missing."""
    spec = _options(kv, auth)
    spec['retries'] = option('int', 3, aliases=['vault_retries'])
    return Layer(spec, requires=('hvac', HAS_HVAC, HVAC_IMPORT_ERROR))


def connection_argument_spec(kv=False, auth=True):
    """Vault options of a module of another layer, whose own `retries` is that layer's: the server, the login
    (unless auth=False), with kv=True the KV v2 mount, and vault_retries (ephemeral.castle.vault.VAULT_RETRIES)."""
    spec = _options(kv, auth)
    spec['vault_retries'] = option('int', 3)
    return spec


def _retries_option(params):
    """The name of the option holding the client's retries: vault_retries beside another layer's retries."""
    return 'vault_retries' if params.get('vault_retries') is not None else 'retries'


class VaultError(CastleError):
    """A Vault call failed; the message names the path or the input and why."""


class VaultSealed(VaultError):
    """The server is sealed or not initialised: nothing can be read or written."""


def _retryable(exc):
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return not isinstance(exc, requests.exceptions.SSLError)
    if isinstance(exc, (hvac_exceptions.InternalServerError, hvac_exceptions.BadGateway, hvac_exceptions.VaultDown)):
        return True
    return isinstance(exc, hvac_exceptions.UnexpectedError) and (getattr(exc, 'status', None) or 0) >= 500


class Vault(object):
    """One Vault (or OpenBao) server, reached and logged in as the module's options say."""

    # How the client waits between two attempts of a call (tests replace it).
    sleep = staticmethod(time.sleep)

    def __init__(self, params, login=True):
        if not HAS_HVAC:
            raise VaultError(missing_required_lib('hvac'))
        if not params.get('vault_addr'):
            raise VaultError('vault_addr (or VAULT_ADDR) is required to reach Vault')
        retries = _retries_option(params)
        if params[retries] < 0:
            raise VaultError('{0} must be 0 or more, not {1}'.format(retries, params[retries]))
        verify = params['validate_certs']
        if verify and params.get('vault_ca_cert'):
            verify = params['vault_ca_cert']
        self.addr = params['vault_addr'].rstrip('/')
        self.retries = params[retries]
        self.client = hvac.Client(url=self.addr, verify=verify, timeout=params['vault_timeout'])
        if login:
            self.require_unsealed()
            self.login(params)

    # ------------------------------------------------------------ calls, retries, seal status

    def call(self, what, fn, *args, **kwargs):
        """fn(*args, **kwargs), retried on connection errors and 5xx; `what` names the call in errors.
        missing=<value> returns that value on 404 instead of failing."""
        missing = kwargs.pop('missing', VaultError)
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except hvac_exceptions.InvalidPath as exc:
                if missing is not VaultError:
                    return missing
                raise VaultError('{0}: not found ({1})'.format(what, _first_line(exc)))
            except hvac_exceptions.Forbidden as exc:
                raise VaultError('{0}: permission denied (403): {1}'.format(what, _first_line(exc)))
            except hvac_exceptions.VaultNotInitialized:
                raise self.not_initialised()
            except requests.exceptions.SSLError as exc:
                raise VaultError('TLS verification of {0} failed (set vault_ca_cert): {1}'.format(self.addr, exc))
            except (requests.exceptions.RequestException, hvac_exceptions.VaultError) as exc:
                if isinstance(exc, hvac_exceptions.VaultError) and 'is sealed' in str(exc).lower():
                    raise self.sealed()
                if not _retryable(exc):
                    raise VaultError('{0} failed: {1}'.format(what, _first_line(exc)))
                if attempt >= self.retries:
                    # A 5xx may come from a server sealed meanwhile: say so when it is.
                    if self._sealed_now():
                        raise self.sealed()
                    raise VaultError('{0} failed after {1} attempt(s) on {2}: {3}'.format(
                        what, attempt + 1, self.addr, _first_line(exc) or type(exc).__name__))
            self.sleep(backoff(attempt, BACKOFF_CAP))
            attempt += 1

    def sealed(self):
        return VaultSealed('Vault at {0} is sealed: unseal it first (ephemeral.castle.vault_unseal)'.format(self.addr))

    def not_initialised(self):
        return VaultSealed('Vault at {0} is not initialised: initialise it first '
                           '(ephemeral.castle.vault_init)'.format(self.addr))

    def seal_status(self):
        """sys/seal-status (unauthenticated): initialized, sealed, t, n, progress, ..."""
        return self.call('reading the seal status of ' + self.addr, self.client.sys.read_seal_status)

    def _sealed_now(self):
        """One unretried look at the seal status: True only when the server answers that it is sealed."""
        try:
            return bool(self.client.sys.read_seal_status().get('sealed'))
        except (requests.exceptions.RequestException, hvac_exceptions.VaultError, AttributeError):
            return False

    def require_unsealed(self):
        """Raise VaultSealed when the server is sealed or not initialised."""
        status = self.seal_status()
        if not status.get('initialized', True):
            raise self.not_initialised()
        if status.get('sealed'):
            raise self.sealed()

    def before_write(self):
        """Called by every module before its first write: a sealed server fails it with nothing written."""
        self.require_unsealed()

    # ------------------------------------------------------------ login

    def login(self, params):
        method = params['vault_auth_method']
        mount = params.get('vault_auth_mount') or method
        if method == 'token':
            if not params.get('vault_token'):
                raise VaultError('vault_token (or VAULT_TOKEN) is required with vault_auth_method=token')
            self.client.token = params['vault_token']
            try:
                self.call('token lookup on ' + self.addr, self.client.auth.token.lookup_self)
            except VaultSealed:
                raise
            except VaultError as exc:
                if 'permission denied' in str(exc):
                    raise VaultError('Vault at {0} refused the token (403): check vault_token'.format(self.addr))
                raise
        elif method == 'approle':
            missing = [name for name in ('vault_role_id', 'vault_secret_id') if not params.get(name)]
            if missing:
                raise VaultError('{0} required with vault_auth_method=approle'.format(' and '.join(missing)))
            self._login('AppRole login at auth/{0} (vault_role_id, vault_secret_id)'.format(mount),
                        self.client.auth.approle.login, role_id=params['vault_role_id'],
                        secret_id=params['vault_secret_id'], mount_point=mount)
        else:
            if not params.get('vault_kubernetes_role'):
                raise VaultError('vault_kubernetes_role is required with vault_auth_method=kubernetes')
            jwt = params.get('vault_kubernetes_jwt')
            if not jwt:
                path = params.get('vault_kubernetes_jwt_file') or SERVICE_ACCOUNT_TOKEN
                try:
                    with open(path) as handle:
                        jwt = handle.read().strip()
                except (IOError, OSError) as exc:
                    raise VaultError('cannot read vault_kubernetes_jwt_file {0}: {1}'.format(path, exc))
            self._login('Kubernetes login at auth/{0} as role {1} (vault_kubernetes_role, vault_kubernetes_jwt)'.format(
                mount, params['vault_kubernetes_role']), self.client.auth.kubernetes.login,
                role=params['vault_kubernetes_role'], jwt=jwt, mount_point=mount)

    def _login(self, what, fn, **kwargs):
        try:
            self.call(what, fn, **kwargs)
        except VaultSealed:
            raise
        except VaultError as exc:
            detail = str(exc)
            if detail.startswith(what):
                detail = detail[len(what):].lstrip(' :')
            if detail.startswith('failed: '):
                detail = detail[len('failed: '):]
            raise VaultError('{0} refused: {1}'.format(what, detail))

    # ------------------------------------------------------------ raw API

    def api_read(self, path, missing=None):
        """GET /v1/<path>: the answer's JSON (with `data`), or `missing` on 404."""
        return self.call('reading ' + path, self.client.adapter.get, '/v1/' + path, missing=missing)

    def api_list(self, path):
        """LIST /v1/<path>: its keys, [] when there are none."""
        found = self.call('listing ' + path, self.client.adapter.list, '/v1/' + path, missing=None)
        return ((found or {}).get('data') or {}).get('keys') or []

    def api_write(self, path, data):
        """POST /v1/<path> with data."""
        return self.call('writing ' + path, self.client.adapter.post, '/v1/' + path, json=data)

    def api_delete(self, path):
        return self.call('deleting ' + path, self.client.adapter.delete, '/v1/' + path)

    # ------------------------------------------------------------ raft snapshots (sys/storage/raft)

    def raft_snapshot(self, out):
        """Stream the raft snapshot (GET sys/storage/raft/snapshot) into the binary file out."""
        what = 'taking a raft snapshot of {0} (sys/storage/raft/snapshot)'.format(self.addr)
        response = self.call(what, self.client.sys.take_raft_snapshot, missing=None)
        if response is None:
            raise self.not_raft('sys/storage/raft/snapshot')
        try:
            for block in response.iter_content(SNAPSHOT_CHUNK):
                out.write(block)
        except requests.exceptions.RequestException as exc:
            raise VaultError('{0} failed while reading it: {1}'.format(what, _first_line(exc)))
        finally:
            response.close()

    def restore_raft_snapshot(self, path, force=False):
        """Send the snapshot file at path to POST sys/storage/raft/snapshot, or snapshot-force (a snapshot of a
        server with other unseal keys). The server answers at once and restores it afterwards."""
        self.before_write()
        endpoint = 'sys/storage/raft/snapshot' + ('-force' if force else '')
        restore = self.client.sys.force_restore_raft_snapshot if force else self.client.sys.restore_raft_snapshot

        def send():
            with open(path, 'rb') as handle:  # opened again by a retried attempt
                restore(handle)
                return True
        if not self.call('restoring {0} into {1} ({2})'.format(path, self.addr, endpoint), send, missing=False):
            raise self.not_raft(endpoint)

    def wait_active(self, timeout, after):
        """Wait up to timeout seconds until sys/health answers unsealed and active (200); `after` names what
        came before in the error."""
        def active():
            status = self.call('reading the health of ' + self.addr, self.client.sys.read_health_status, method='GET')
            return isinstance(status, dict) and not status.get('sealed') and not status.get('standby')

        def late():
            # A server that fails to apply a snapshot seals itself.
            return VaultError('Vault at {0} is not active {1}s after {2}{3}'.format(
                self.addr, timeout, after, ': it is sealed (a failed restore seals it; see its log)'
                if self._sealed_now() else ''))
        return wait_until(active, Deadline(timeout), late, sleep=self.sleep)

    def not_raft(self, endpoint):
        """The server registers the sys/storage/raft paths only when its storage is raft: 404 otherwise. (With
        raft registered but not its storage, it answers 400 `raft storage is not in use`.)"""
        return VaultError('Vault at {0} does not use raft storage: {1} answered 404 (unsupported path)'.format(
            self.addr, endpoint))


def _first_line(exc):
    """The error on one line (Vault's multi-error answers span several)."""
    text = ' '.join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


class VaultKV(Vault):
    """KV v2 on one mount (vault_mount) of one Vault server."""

    def __init__(self, params, login=True):
        super(VaultKV, self).__init__(params, login=login)
        self.mount = params['vault_mount']
        self._checked = False

    def where(self, path):
        return '{0}/{1}'.format(self.mount, path)

    def metadata(self, path):
        """The secret's metadata (current_version, versions, ...), or None when it was never written."""
        found = self.api_read('{0}/metadata/{1}'.format(self.mount, path))
        return (found or {}).get('data')

    def read(self, path, version=None):
        """The secret's data, or None when there is none (never written, or its latest version deleted)."""
        url = '{0}/data/{1}'.format(self.mount, path) + ('?version={0}'.format(version) if version else '')
        found = self.call('reading ' + self.where(path), self.client.adapter.get, '/v1/' + url, missing=None)
        data = (found or {}).get('data') or {}
        if (data.get('metadata') or {}).get('deletion_time') or (data.get('metadata') or {}).get('destroyed'):
            return None
        return data.get('data')

    def _first_write(self):
        if not self._checked:
            self.before_write()
            self._checked = True

    def write(self, path, data, cas=None):
        """Write a new version; returns its version number. cas: the version the write expects (0: none)."""
        self._first_write()
        body = {'data': data}
        if cas is not None:
            body['options'] = {'cas': cas}
        try:
            found = self.call('writing ' + self.where(path), self.client.adapter.post,
                              '/v1/{0}/data/{1}'.format(self.mount, path), json=body)
        except VaultSealed:
            raise
        except VaultError as exc:
            if 'check-and-set' not in str(exc):
                raise
            # A retried write whose first attempt landed though its answer was lost (a 5xx from a proxy) finds
            # its own version in place: the write is done.
            current = self.metadata(path) or {}
            if cas is not None and current.get('current_version') == cas + 1 and self.read(path) == data:
                return cas + 1
            raise VaultError('writing {0}: cas={1} does not match the current version ({2})'.format(
                self.where(path), cas, _first_line(exc)))
        return ((found or {}).get('data') or {}).get('version')

    def delete_latest(self, path):
        self._first_write()
        self.call('deleting ' + self.where(path), self.client.adapter.delete, '/v1/{0}/data/{1}'.format(self.mount, path))

    def versions_call(self, action, path, versions):
        """undelete or destroy these versions."""
        self._first_write()
        self.call('{0} versions {1} of {2}'.format(action, versions, self.where(path)), self.client.adapter.post,
                  '/v1/{0}/{1}/{2}'.format(self.mount, action, path), json={'versions': versions})

    def delete_all(self, path):
        """Every version and the metadata."""
        self._first_write()
        self.call('deleting the metadata of ' + self.where(path), self.client.adapter.delete,
                  '/v1/{0}/metadata/{1}'.format(self.mount, path))


DURATION_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400}


def duration_seconds(value, name):
    """Seconds of a Vault duration (an int, '3600', '90s', '1h30m', '7d'); `name` names the input in errors."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        text = str(value).strip()
        if text.isdigit():
            seconds = int(text)
        else:
            seconds, number = 0, ''
            for char in text:
                if char.isdigit():
                    number += char
                elif char in DURATION_UNITS and number:
                    seconds += int(number) * DURATION_UNITS[char]
                    number = ''
                else:
                    raise VaultError('{0}: {1!r} is not a duration (seconds, or like 90s, 1h30m, 7d)'.format(name, value))
            if number or not text:
                raise VaultError('{0}: {1!r} is not a duration (seconds, or like 90s, 1h30m, 7d)'.format(name, value))
    if seconds < 0:
        raise VaultError('{0}: {1!r} is negative'.format(name, value))
    return seconds


# ---------------------------------------------------------------- KV: diffs that never show a value

HIDDEN = '<hidden>'
OLD, NEW = '<old value>', '<new value>'


def kv_changes(before, after):
    """Keys added, changed, removed and unchanged from data `before` to data `after` (dicts; None is empty)."""
    before, after = before or {}, after or {}
    return dict(added=sorted(key for key in after if key not in before),
                changed=sorted(key for key in after if key in before and before[key] != after[key]),
                removed=sorted(key for key in before if key not in after),
                unchanged=sorted(key for key in after if key in before and before[key] == after[key]))


def kv_masked_diff(before, after):
    """The before/after of a KV write with every value replaced by a marker: an unchanged key shows
    <hidden> on both sides, a changed one <old value> then <new value>. Values never appear."""
    changes = kv_changes(before, after)
    masked_before = {key: HIDDEN for key in changes['unchanged']}
    masked_after = dict(masked_before)
    masked_before.update((key, OLD) for key in changes['changed'] + changes['removed'])
    masked_after.update((key, NEW) for key in changes['changed'] + changes['added'])
    return masked_before, masked_after


# ---------------------------------------------------------------- mounts, the SSH CA, AppRole secret IDs

# What <mount>/config/ca answers (400) on an SSH mount without a CA: OpenBao has no default issuer, Vault no keys.
NO_SSH_CA = ('no default issuer currently configured', "keys haven't been configured yet")


def secrets_mount(server, path):
    """The secrets engine at path as sys/mounts lists it (type, accessor, description, options, config), or None."""
    mounts = (server.api_read('sys/mounts') or {}).get('data') or {}
    return mounts.get(path + '/')


def require_mount(server, mount, kind, auth=False):
    """Raise naming the option `mount` unless a mount of this kind is enabled at mount (auth=True: auth/<mount>)."""
    if auth:
        found = (((server.api_read('sys/auth') or {}).get('data')) or {}).get(mount + '/')
        where, module = 'auth/' + mount, 'vault_auth_method'
    else:
        found = secrets_mount(server, mount)
        where, module = mount, 'vault_secrets_engine'
    if not found:
        raise VaultError('mount: {0} is not enabled; enable it first (ephemeral.castle.{1}, type {2})'.format(
            where, module, kind))
    if found.get('type') != kind:
        raise VaultError('mount: {0} is a {1} mount, not {2}'.format(where, found.get('type'), kind))


def ssh_ca(server, mount):
    """The CA of an SSH mount as <mount>/config/ca returns it (public_key; OpenBao adds issuer_id, issuer_name),
    or None when the mount has none."""
    def read():
        try:
            return server.client.adapter.get('/v1/{0}/config/ca'.format(mount))
        except hvac_exceptions.InvalidRequest as exc:
            if any(text in str(exc) for text in NO_SSH_CA):
                return None
            raise
    found = server.call('reading the SSH CA of {0} ({0}/config/ca)'.format(mount), read)
    return (found or {}).get('data') or None


def secret_id_accessor(server, mount, role, accessor):
    """What auth/<mount>/role/<role>/secret-id-accessor/lookup tells of a secret ID's accessor, or None when the
    role has no such secret ID (404)."""
    found = server.call('looking up secret_id_accessor {0} of auth/{1}/role/{2}'.format(accessor, mount, role),
                        server.client.adapter.post, '/v1/auth/{0}/role/{1}/secret-id-accessor/lookup'.format(mount, role),
                        json={'secret_id_accessor': accessor}, missing=None)
    return (found or {}).get('data') or None
