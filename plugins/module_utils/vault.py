# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Vault layer's one client. PRIVATE to the collection: other collections must not import it.

An hvac client from explicit options (VAULT_ADDR, VAULT_TOKEN and VAULT_CACERT as fallbacks), logged in
with a token, AppRole or Kubernetes auth. Every call goes through Vault.call: connection errors and 5xx
answers are retried a bounded number of times with a short backoff, 4xx answers are not, and a sealed or
uninitialised server becomes one specific error. Modules call before_write() before their first write,
so a server sealed since the module connected fails the module before anything is written.
"""

import json
import os
import tempfile
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

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


def server_argument_spec():
    """How to reach the server (doc fragment ephemeral.castle.vault)."""
    return dict(
        vault_addr=dict(type='str', fallback=(env_fallback, ['VAULT_ADDR'])),
        vault_ca_cert=dict(type='path', fallback=(env_fallback, ['VAULT_CACERT'])),
        validate_certs=dict(type='bool', default=True),
        vault_timeout=dict(type='int', default=30),
        vault_retries=dict(type='int', default=3),
    )


def auth_argument_spec():
    """How to log in (doc fragment ephemeral.castle.vault.AUTH)."""
    return dict(
        vault_auth_method=dict(type='str', default='token', choices=list(AUTH_METHODS)),
        vault_auth_mount=dict(type='str'),
        vault_token=dict(type='str', no_log=True, fallback=(env_fallback, ['VAULT_TOKEN'])),
        vault_role_id=dict(type='str'),
        vault_secret_id=dict(type='str', no_log=True),
        vault_kubernetes_role=dict(type='str'),
        vault_kubernetes_jwt=dict(type='str', no_log=True),
        vault_kubernetes_jwt_file=dict(type='path'),
    )


def connection_argument_spec(kv=False, auth=True):
    """Options of a module that talks to Vault: the server, the login (unless auth=False) and, with kv=True,
    the KV v2 mount (doc fragment ephemeral.castle.vault.KV)."""
    spec = server_argument_spec()
    if auth:
        spec.update(auth_argument_spec())
    if kv:
        spec['vault_mount'] = dict(type='str', default='kv')
    return spec


class VaultError(Exception):
    """A Vault call failed; the message names the path or the input and why."""


class VaultSealed(VaultError):
    """The server is sealed or not initialised: nothing can be read or written."""


def vault_module(argument_spec, **kwargs):
    """AnsibleModule for a Vault module; fails when hvac is missing."""
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, **kwargs)
    if not HAS_HVAC:
        module.fail_json(msg=missing_required_lib('hvac'), exception=HVAC_IMPORT_ERROR)
    return module


def run_module(module, action):
    """exit_json with what action() returns; fail_json with the VaultError's message."""
    result = {}
    try:
        result = action()
    except VaultError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


def write_private(path, content, check_mode=False):
    """Write content to path with mode 0600 (through a temporary file beside it); True when it changed."""
    try:
        with open(path) as handle:
            if handle.read() == content and os.stat(path).st_mode & 0o777 == 0o600:
                return False
    except (IOError, OSError):
        pass
    if check_mode:
        return True
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix='.castle-')
        with os.fdopen(fd, 'w') as handle:
            handle.write(content)
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except (IOError, OSError) as exc:
        raise VaultError('cannot write {0}: {1}'.format(path, exc))
    return True


def _retryable(exc):
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return not isinstance(exc, requests.exceptions.SSLError)
    if isinstance(exc, (hvac_exceptions.InternalServerError, hvac_exceptions.BadGateway, hvac_exceptions.VaultDown)):
        return True
    return isinstance(exc, hvac_exceptions.UnexpectedError) and (getattr(exc, 'status', None) or 0) >= 500


class Vault(object):
    """One Vault (or OpenBao) server, reached and logged in as the module's options say."""

    def __init__(self, params, login=True):
        if not HAS_HVAC:
            raise VaultError(missing_required_lib('hvac'))
        if not params.get('vault_addr'):
            raise VaultError('vault_addr (or VAULT_ADDR) is required to reach Vault')
        if params['vault_retries'] < 0:
            raise VaultError('vault_retries must be 0 or more, not {0}'.format(params['vault_retries']))
        verify = params['validate_certs']
        if verify and params.get('vault_ca_cert'):
            verify = params['vault_ca_cert']
        self.addr = params['vault_addr'].rstrip('/')
        self.retries = params['vault_retries']
        self.client = hvac.Client(url=self.addr, verify=verify, timeout=params['vault_timeout'])
        if login:
            self.require_unsealed()
            self.login(params)

    # ------------------------------------------------------------ calls, retries, seal status

    def call(self, what, fn, *args, **kwargs):
        """fn(*args, **kwargs), retried on connection errors and 5xx; `what` names the call in errors.
        missing=<value> returns that value on 404 instead of failing."""
        missing = kwargs.pop('missing', VaultError)
        delay = 0.25
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
            attempt += 1
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

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


# ---------------------------------------------------------------- policies: HCL normalised for comparison

class PolicySyntaxError(ValueError):
    """The policy text is not HCL (or JSON) this parser reads."""


_PUNCT = '{}[]=,:'


def _hcl_tokens(text):
    """(kind, value) tokens of HCL: str, word, num, or a punctuation character. Comments are dropped."""
    i, size = 0, len(text)
    while i < size:
        char = text[i]
        if char.isspace():
            i += 1
        elif char == '#' or text.startswith('//', i):
            end = text.find('\n', i)
            i = size if end < 0 else end + 1
        elif text.startswith('/*', i):
            end = text.find('*/', i + 2)
            if end < 0:
                raise PolicySyntaxError('unterminated /* comment')
            i = end + 2
        elif char == '"':
            value, i = _hcl_string(text, i + 1)
            yield 'str', value
        elif text.startswith('<<', i):
            value, i = _hcl_heredoc(text, i + 2)
            yield 'str', value
        elif char in _PUNCT:
            yield char, char
            i += 1
        elif char.isdigit() or (char == '-' and i + 1 < size and text[i + 1].isdigit()):
            start = i
            i += 1
            while i < size and (text[i].isdigit() or text[i] == '.'):
                i += 1
            number = text[start:i]
            try:
                yield 'num', float(number) if '.' in number else int(number)
            except ValueError:
                raise PolicySyntaxError('{0!r} is not a number'.format(number))
        elif char.isalpha() or char == '_':
            start = i
            while i < size and (text[i].isalnum() or text[i] in '_-.'):
                i += 1
            yield 'word', text[start:i]
        else:
            raise PolicySyntaxError('unexpected {0!r} at offset {1}'.format(char, i))


_ESCAPES = {'n': '\n', 't': '\t', 'r': '\r', '"': '"', '\\': '\\'}


def _hcl_string(text, i):
    out = []
    while i < len(text):
        char = text[i]
        if char == '"':
            return ''.join(out), i + 1
        if char == '\\' and i + 1 < len(text):
            out.append(_ESCAPES.get(text[i + 1], '\\' + text[i + 1]))
            i += 2
            continue
        if char == '\n':
            break
        out.append(char)
        i += 1
    raise PolicySyntaxError('unterminated string')


def _hcl_heredoc(text, i):
    indent = text.startswith('-', i)
    i += 1 if indent else 0
    end = text.find('\n', i)
    marker = text[i:end].strip() if end >= 0 else ''
    if not marker:
        raise PolicySyntaxError('heredoc without a marker')
    lines, pos = [], end + 1
    while pos <= len(text):
        nxt = text.find('\n', pos)
        line = text[pos:] if nxt < 0 else text[pos:nxt]
        if line.strip() == marker:
            body = [line.lstrip() for line in lines] if indent else lines
            return '\n'.join(body) + ('\n' if body else ''), (len(text) if nxt < 0 else nxt + 1)
        lines.append(line)
        if nxt < 0:
            break
        pos = nxt + 1
    raise PolicySyntaxError('unterminated heredoc ' + marker)


class _HclParser(object):
    def __init__(self, text):
        self.tokens = list(_hcl_tokens(text))
        self.pos = 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self, *kinds):
        kind, value = self.peek()
        if kind not in kinds:
            raise PolicySyntaxError('expected {0}, found {1!r}'.format(' or '.join(repr(kind) for kind in kinds), value if kind else 'the end'))
        self.pos += 1
        return value

    def body(self, closing=None):
        """Attributes and blocks up to `closing` (or the end): a list of (key, labels, value) items."""
        items = []
        while self.peek()[0] != closing:
            key = self.take('word', 'str')
            if self.peek()[0] in ('=', ':'):
                self.pos += 1
                items.append((key, None, self.value()))
            else:
                labels = []
                while self.peek()[0] in ('str', 'word'):
                    labels.append(self.take('str', 'word'))
                self.take('{')
                items.append((key, tuple(labels), self.body('}')))
                self.take('}')
            if self.peek()[0] == ',':
                self.pos += 1
        return items

    def value(self):
        kind, value = self.peek()
        if kind in ('str', 'num'):
            self.pos += 1
            return value
        if kind == 'word':
            self.pos += 1
            return {'true': True, 'false': False, 'null': None}.get(value, value)
        if kind == '[':
            self.pos += 1
            values = []
            while self.peek()[0] != ']':
                values.append(self.value())
                if self.peek()[0] != ']':
                    self.take(',')
            self.take(']')
            return values
        if kind == '{':
            self.pos += 1
            items = self.body('}')
            self.take('}')
            return items
        raise PolicySyntaxError('expected a value, found {0!r}'.format(value if kind else 'the end'))


def _canonical(value):
    """Items to sorted, JSON-able structures: attribute order never matters, lists of scalars are sets."""
    if isinstance(value, list) and all(isinstance(item, tuple) for item in value):
        attributes, blocks = {}, []
        for key, labels, inner in value:
            if labels is None:
                attributes[key] = _canonical(inner)
            else:
                blocks.append([key, list(labels), _canonical(inner)])
        blocks.sort(key=lambda block: json.dumps(block, sort_keys=True))
        return {'attributes': attributes, 'blocks': blocks}
    if isinstance(value, dict):
        return _canonical([(key, None, inner) for key, inner in value.items()])
    if isinstance(value, list):
        items = [_canonical(item) for item in value]
        if all(not isinstance(item, (dict, list)) for item in items):
            return sorted(set(items), key=lambda item: (str(type(item)), str(item)))
        return items
    return value


def _json_policy(found):
    """A JSON policy ({"path": {"a/*": {...}}}) as the items its HCL form parses to."""
    items = []
    for key, inner in found.items():
        if key == 'path' and isinstance(inner, dict):
            for label, body in inner.items():
                items.append(('path', (label,), [(name, None, value) for name, value in (body or {}).items()]))
        else:
            items.append((key, None, inner))
    return items


def normalise_policy(text):
    """Canonical JSON of a policy (HCL or JSON): equal for policies that differ only in whitespace,
    comments, attribute and block order, string quoting/heredocs, and the order or repetition of list
    entries such as capabilities. Raises PolicySyntaxError on text it cannot read."""
    stripped = text.strip()
    if stripped.startswith('{'):
        try:
            found = json.loads(stripped)
        except ValueError as exc:
            raise PolicySyntaxError('invalid JSON policy: {0}'.format(exc))
        items = _json_policy(found) if isinstance(found, dict) else None
        if items is None:
            raise PolicySyntaxError('a JSON policy is an object')
    else:
        items = _HclParser(text).body()
    return json.dumps(_canonical(items), sort_keys=True)


def policies_equal(first, second):
    """Whether two policy texts mean the same to Vault, as far as normalise_policy can tell; texts it cannot
    parse are compared line by line with surrounding whitespace and blank lines ignored."""
    try:
        return normalise_policy(first) == normalise_policy(second)
    except PolicySyntaxError:
        def lines(text):
            return [line.strip() for line in text.splitlines() if line.strip()]
        return lines(first) == lines(second)


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
