# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Proxmox VE layer's one client. PRIVATE to the collection: other collections must not import it.

Token or password auth, TLS verified against the system roots or a CA file, retries with
jittered backoff on connection errors, 5xx answers and lock timeouts only, and task waits
on a monotonic clock.
"""

import re
import threading
import time
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError, Layer, option
from ansible_collections.ephemeral.castle.plugins.module_utils._wait import Deadline, backoff, wait_until

try:
    import proxmoxer
    import requests
    HAS_PROXMOXER = True
    PROXMOXER_IMPORT_ERROR = None
except ImportError:
    HAS_PROXMOXER = False
    PROXMOXER_IMPORT_ERROR = traceback.format_exc()

LOCK_TIMEOUT = re.compile(r"can't lock file .* got timeout", re.IGNORECASE)
ALREADY_EXISTS = re.compile(r'already exists|config file .* exists', re.IGNORECASE)
DOES_NOT_EXIST = re.compile(r'does not exist|no such VM', re.IGNORECASE)


def connection_argument_spec():
    """Connection options shared by every Proxmox module (doc fragment ephemeral.castle.proxmox)."""
    return dict(
        api_host=dict(type='str', required=True, fallback=(env_fallback, ['PROXMOX_HOST'])),
        api_port=dict(type='int', default=8006, fallback=(env_fallback, ['PROXMOX_PORT'])),
        api_user=dict(type='str', fallback=(env_fallback, ['PROXMOX_USER'])),
        api_password=dict(type='str', no_log=True, fallback=(env_fallback, ['PROXMOX_PASSWORD'])),
        api_token_id=dict(type='str', no_log=False, fallback=(env_fallback, ['PROXMOX_TOKEN_ID'])),
        api_token_secret=dict(type='str', no_log=True, fallback=(env_fallback, ['PROXMOX_TOKEN_SECRET'])),
        validate_certs=dict(type='bool', default=True, fallback=(env_fallback, ['PROXMOX_VALIDATE_CERTS'])),
        ca_path=dict(type='path', fallback=(env_fallback, ['PROXMOX_CA'])),
        api_timeout=dict(type='int', default=30),
        retries=option('int', 4, aliases=['api_retries']),
    )


CONNECTION_OPTIONS = dict(
    required_together=[('api_token_id', 'api_token_secret')],
    mutually_exclusive=[('api_password', 'api_token_secret')],
)

# What every Proxmox VE module is built from: the connection options, their constraints, proxmoxer.
LAYER = Layer(connection_argument_spec(), requires=('proxmoxer', HAS_PROXMOXER, PROXMOXER_IMPORT_ERROR),
              **CONNECTION_OPTIONS)


class ProxmoxError(CastleError):
    """An API call or task failed; the message names what and why."""

    def __init__(self, message, status=None, task_log=None):
        super(ProxmoxError, self).__init__(message)
        self.status = status
        self.task_log = task_log or []

    def details(self):
        return {'task_log': self.task_log} if self.task_log else {}


def _split_token_id(token_id, user):
    """PVE names a token `user@realm!name`; accept that whole, or the name beside api_user."""
    if token_id and '!' in token_id:
        token_user, name = token_id.split('!', 1)
        if user and user != token_user:
            raise ProxmoxError('api_token_id {0!r} belongs to {1}, not api_user {2}'.format(token_id, token_user, user))
        return token_user, name
    return user, token_id


def is_retryable(exc, method='get'):
    """Connection errors, 5xx (but 501) and lock timeouts are worth another try; nothing else is.

    A POST that may have reached the server (the connection broke after sending) is not sent
    again: it creates things, and a re-run of the module reconciles instead."""
    if HAS_PROXMOXER and isinstance(exc, requests.ConnectTimeout):
        return True
    if HAS_PROXMOXER and isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return method != 'post'
    if HAS_PROXMOXER and isinstance(exc, proxmoxer.ResourceException):
        return (exc.status_code >= 500 and exc.status_code != 501) or bool(LOCK_TIMEOUT.search(error_text(exc)))
    return False


def error_text(exc):
    """PVE's message from an API error: status text, content and per-parameter errors."""
    if HAS_PROXMOXER and isinstance(exc, proxmoxer.ResourceException):
        parts = [str(exc.content or exc.status_message or '').strip()]
        if exc.errors:
            parts.append('; '.join('{0}: {1}'.format(k, v) for k, v in sorted(exc.errors.items()))
                         if isinstance(exc.errors, dict) else str(exc.errors))
        return ' '.join(p for p in parts if p)
    return str(exc)


class ProxmoxClient(object):
    """One authenticated connection; every call goes through call()."""

    def __init__(self, params, sleep=time.sleep, clock=time.monotonic):
        if not HAS_PROXMOXER:
            raise ProxmoxError(missing_required_lib('proxmoxer'))
        self.host = params['api_host']
        self.retries = max(0, params['retries'])
        self.requests = 0
        # Every wait of the layer sleeps and reads the time through these, so tests run without waiting.
        self.sleep = sleep
        self.clock = clock
        user, token_name = _split_token_id(params.get('api_token_id'), params.get('api_user'))
        if not user:
            raise ProxmoxError('api_user is required unless api_token_id names it (user@realm!token)')
        if not token_name and not params.get('api_password'):
            raise ProxmoxError('give api_token_id and api_token_secret, or api_password, to log in to {0}'.format(
                self.host))
        verify = params['validate_certs']
        if verify and params.get('ca_path'):
            verify = params['ca_path']
        auth = dict(token_name=token_name, token_value=params['api_token_secret']) if token_name \
            else dict(password=params['api_password'])
        self.who = '{0}!{1}'.format(user, token_name) if token_name else user
        try:
            # A password login asks for a ticket right here; a token is first used by the first call.
            self.api = self._retry('login', lambda: proxmoxer.ProxmoxAPI(
                self.host, port=params['api_port'], user=user, verify_ssl=verify,
                timeout=params['api_timeout'], **auth))
        except ProxmoxError:
            raise
        except Exception as exc:  # proxmoxer raises plain exceptions for a refused login
            raise ProxmoxError('login to {0} as {1} failed: {2}'.format(self.host, user, exc))

    # -------------------------------------------------------------- requests

    def _retry(self, what, action, method='get'):
        attempt = 0
        while True:
            try:
                return action()
            except Exception as exc:  # filtered by is_retryable; the rest is re-raised as is
                retryable = is_retryable(exc, method)
                if not retryable or attempt >= self.retries:
                    if attempt and retryable:
                        raise ProxmoxError('{0} failed after {1} tries: {2}'.format(what, attempt + 1, error_text(exc)),
                                           status=getattr(exc, 'status_code', None))
                    raise
                # Full jitter: a random wait up to an exponential cap, so parallel callers spread out.
                self.sleep(backoff(attempt))
                attempt += 1

    def call(self, method, path, **params):
        """One API request with retries; API errors become ProxmoxError naming the call."""
        what = '{0} {1}'.format(method.upper(), path)

        def request():
            self.requests += 1
            return getattr(self.api(path), method)(**params)
        try:
            return self._retry(what, request, method)
        except ProxmoxError:
            raise
        except proxmoxer.ResourceException as exc:
            if exc.status_code == 401:
                raise ProxmoxError('authentication as {0} to {1} was refused (401): check the token or password'.format(
                    self.who, self.host), status=401)
            raise ProxmoxError('{0}: {1} {2}'.format(what, exc.status_code, error_text(exc)), status=exc.status_code)
        except requests.exceptions.SSLError as exc:
            raise ProxmoxError('TLS verification of {0} failed (set ca_path to the CA that signed it): {1}'.format(
                self.host, exc))
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ProxmoxError('{0}: cannot reach {1}: {2}'.format(what, self.host, exc))

    def get(self, path, **params):
        return self.call('get', path, **params)

    def post(self, path, **params):
        return self.call('post', path, **params)

    def put(self, path, **params):
        return self.call('put', path, **params)

    def delete(self, path, **params):
        return self.call('delete', path, **params)

    # ----------------------------------------------------------------- tasks

    def wait_task(self, node, upid, timeout, what='task'):
        """Wait for a task on the monotonic clock; fail with its exit status and the tail of its log."""
        def stopped():
            status = self.get('nodes/{0}/tasks/{1}/status'.format(node, upid))
            if status.get('status') != 'stopped':
                return None
            exitstatus = status.get('exitstatus', '')
            if exitstatus == 'OK' or exitstatus.startswith('WARNINGS'):
                return status
            tail = self.task_log_tail(node, upid)
            raise ProxmoxError('{0} failed: {1}{2}'.format(
                what, exitstatus, ' (log: {0})'.format(' | '.join(tail)) if tail else ''), task_log=tail)

        return wait_until(stopped, Deadline(timeout, self.clock), lambda: ProxmoxError(
            '{0} still running after {1}s (task {2}); a re-run waits for it'.format(what, timeout, upid)),
            interval=0.25, max_interval=2.0, sleep=self.sleep)

    def task_log_tail(self, node, upid, lines=10):
        try:
            log = self.get('nodes/{0}/tasks/{1}/log'.format(node, upid), start=0, limit=500)
        except ProxmoxError:
            return []
        text = [entry.get('t', '') for entry in log if entry.get('t')]
        return text[-lines:]

    def run_task(self, node, method, path, what, wait, params=None):
        """Start a task (an API call answering a UPID) and wait up to `wait` seconds for it;
        retry it whole when it ended on a lock timeout."""
        attempt = 0
        while True:
            upid = self.call(method, path, **(params or {}))
            try:
                return self.wait_task(node, upid, wait, what) if upid else None
            except ProxmoxError as exc:
                if not LOCK_TIMEOUT.search(str(exc)) or attempt >= self.retries:
                    raise
                self.sleep(backoff(attempt))
                attempt += 1

    # ------------------------------------------------------------ inventory

    def vms(self):
        """Every VM in the cluster (templates included), from one request."""
        return [r for r in self.get('cluster/resources', type='vm') if r.get('type') == 'qemu']

    def next_vmid(self):
        return int(self.get('cluster/nextid'))


class VmidClaims(object):
    """VMIDs handed to threads of one process, so concurrent creates do not all ask for the same one."""

    def __init__(self):
        self._lock = threading.Lock()
        self._claimed = set()

    def claim(self, client):
        with self._lock:
            vmid = client.next_vmid()
            while vmid in self._claimed:
                vmid += 1
            self._claimed.add(vmid)
            return vmid


def allocate_vmid(client, create, attempts=5, claims=None):
    """Run create(vmid) with a VMID from /cluster/nextid; on a collision (another caller took it
    between the two requests) ask again. Returns (vmid, create's result)."""
    for attempt in range(attempts):
        vmid = claims.claim(client) if claims else client.next_vmid()
        try:
            return vmid, create(vmid)
        except ProxmoxError as exc:
            if not ALREADY_EXISTS.search(str(exc)) or attempt == attempts - 1:
                raise
    raise ProxmoxError('no free VMID after {0} attempts'.format(attempts))  # pragma: no cover
