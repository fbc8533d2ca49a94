"""An in-memory Vault behind hvac.Client's interface, for the Vault modules' unit tests.

It answers as Vault's HTTP API does for what the modules use (seal status, init, unseal, token / AppRole /
Kubernetes logins, sys/auth mounts and their tune, ACL policies, Kubernetes auth config and roles, KV v2, raft
snapshots, health), raising hvac's exceptions for 4xx/5xx answers, and records every write, so a test sees exactly
what a module sent - or that it sent nothing."""

import copy
import json

from hvac import exceptions

from ansible_collections.ephemeral.castle.plugins.module_utils import vault

TOKEN = 'hvs.root-token'
SYSTEM_TTL = 2764800  # Vault's default max lease TTL (768h), what tune returns for a mount without its own


class FakeVault(object):

    def __init__(self, sealed=False, initialized=True, threshold=3, shares=5):
        self.sealed, self.initialized = sealed, initialized
        self.threshold, self.shares, self.progress, self.parts = threshold, shares, 0, set()
        self.unseal_keys = ['key-{0}'.format(number) for number in range(shares)] if initialized else []
        self.tokens = {TOKEN}
        self.approles = {}  # (mount, role_id) -> secret_id
        self.kubernetes_roles = {}  # (mount, role) -> jwt
        self.docs = {'sys/auth': {'token/': {'type': 'token', 'accessor': 'auth_token_0'}}}
        self.kv = {}  # path under the mount -> {'current': n, 'versions': {n: {...}}}
        self.writes = []  # (method, path, body) of every write the server accepted
        self.failures = []  # exceptions the next calls raise, first one first
        self.calls = 0
        # What a snapshot needs: 'raft'. Over other storage ('inmem') the raft paths are not registered (404);
        # with raft as the HA backend only ('raft-ha') they are, and refuse (400).
        self.storage = 'raft'
        self.health_checks = 0

    # ------------------------------------------------------------ what tests set up and look at

    def client(self, url=None, verify=None, timeout=None):
        return FakeClient(self, url)

    def enable(self, path, kind, **tune):
        self.docs['sys/auth'][path + '/'] = {'type': kind, 'accessor': 'auth_{0}_1234'.format(kind)}
        self.docs['sys/auth/{0}/tune'.format(path)] = dict(dict(
            default_lease_ttl=SYSTEM_TTL, max_lease_ttl=SYSTEM_TTL, description='', token_type='default-service',
            force_no_cache=False), **tune)

    def put_kv(self, path, data, deleted=False):
        secret = self.kv.setdefault(path, {'current': 0, 'versions': {}})
        secret['current'] += 1
        secret['versions'][secret['current']] = dict(data=copy.deepcopy(data), deletion_time='2026-01-01T00:00:00Z'
                                                     if deleted else '', destroyed=False)
        return secret['current']

    def written(self, method=None):
        return [(verb, path, body) for verb, path, body in self.writes if method in (None, verb)]

    # ------------------------------------------------------------ the HTTP API

    def answer(self, method, path, body=None):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        if self.sealed:
            raise exceptions.VaultDown('Vault is sealed', method=method, url='/v1/' + path)
        path = path.split('?', 1)[0]
        if path.split('/', 1)[0] not in ('sys', 'auth', 'kv'):
            raise exceptions.InvalidPath('no handler for route "{0}"'.format(path), method=method, url='/v1/' + path)
        if path.startswith('kv/'):
            return self.answer_kv(method, path[len('kv/'):], body)
        if method == 'GET':
            return {'data': copy.deepcopy(self.found(path, method))}
        if method == 'LIST':
            prefix = path + '/'
            keys = sorted({key[len(prefix):].split('/', 1)[0] for key in self.docs if key.startswith(prefix)})
            if not keys:
                raise exceptions.InvalidPath(method=method, url='/v1/' + path)
            return {'data': {'keys': keys}}
        self.writes.append((method, path, copy.deepcopy(body)))
        parts = path.split('/')
        if method == 'DELETE':
            if path.startswith('sys/auth/'):
                self.docs['sys/auth'].pop(parts[2] + '/', None)
                for key in [key for key in self.docs if key.startswith(('auth/{0}/'.format(parts[2]), path + '/'))]:
                    del self.docs[key]
            else:
                self.docs.pop(path, None)
            return None
        if path.startswith('sys/auth/') and path.endswith('/tune'):
            self.found(path, method).update(body)
        elif path.startswith('sys/auth/'):
            self.enable(parts[2], body['type'], description=body.get('description', ''), **body.get('config', {}))
        elif path.startswith('auth/') and parts[2] == 'config':
            config = {key: value for key, value in body.items() if key != 'token_reviewer_jwt'}
            self.docs[path] = dict(config, token_reviewer_jwt_set=bool(body.get('token_reviewer_jwt')))
        elif path.startswith('auth/') and parts[2] == 'role':
            self.docs.setdefault(path, {}).update(body)
        else:
            self.docs[path] = dict(body)
        return None

    def found(self, path, method):
        if path not in self.docs:
            raise exceptions.InvalidPath(method=method, url='/v1/' + path)
        return self.docs[path]

    def answer_kv(self, method, path, body):
        action, name = path.split('/', 1)
        secret = self.kv.get(name)
        if method == 'GET':
            if not secret:
                raise exceptions.InvalidPath(method=method, url='/v1/kv/' + path)
            if action == 'metadata':
                return {'data': {'current_version': secret['current'], 'versions': {
                    str(number): {'deletion_time': info['deletion_time'], 'destroyed': info['destroyed']}
                    for number, info in secret['versions'].items()}}}
            latest = secret['versions'][secret['current']]
            if latest['deletion_time'] or latest['destroyed']:
                raise exceptions.InvalidPath(method=method, url='/v1/kv/' + path)
            return {'data': {'data': copy.deepcopy(latest['data']), 'metadata': {'version': secret['current']}}}
        if action == 'data' and method == 'POST':
            cas = (body.get('options') or {}).get('cas')
            if cas is not None and cas != (secret or {}).get('current', 0):
                raise exceptions.InvalidRequest('check-and-set parameter did not match the current version',
                                                method=method, url='/v1/kv/' + path)
        self.writes.append((method, 'kv/' + path, copy.deepcopy(body)))
        if action == 'data' and method == 'POST':
            return {'data': {'version': self.put_kv(name, body['data'])}}
        if action == 'data':  # DELETE: soft-delete the latest version
            secret['versions'][secret['current']]['deletion_time'] = '2026-01-02T00:00:00Z'
        elif action == 'metadata':
            del self.kv[name]
        else:
            for number in body['versions']:
                info = secret['versions'][number]
                if action == 'destroy':
                    info.update(destroyed=True, data=None)
                elif action == 'undelete':
                    info['deletion_time'] = ''
        return None

    def snapshot(self):
        """The raft snapshot of this server: its data and the unseal keys it was taken under."""
        return json.dumps(dict(keys=self.unseal_keys, kv=self.kv, docs=self.docs)).encode()

    def raft_answer(self, method, path):
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        if self.sealed:
            raise exceptions.VaultDown('Vault is sealed', method=method, url='/v1/' + path)
        if self.storage == 'raft-ha':
            raise exceptions.InvalidRequest('raft storage is not in use', method=method, url='/v1/' + path)
        if self.storage != 'raft':
            raise exceptions.InvalidPath('1 error occurred:\n\t* unsupported path\n\n', method=method, url='/v1/' + path)

    def restore(self, handle, force):
        path = 'sys/storage/raft/snapshot' + ('-force' if force else '')
        self.raft_answer('POST', path)
        found = json.loads(handle.read())
        if found['keys'] != self.unseal_keys and not force:
            raise exceptions.InvalidRequest('could not verify hash file, possibly the snapshot is using a different '
                                            'set of unseal keys; use the snapshot-force API to bypass this check',
                                            method='POST', url='/v1/' + path)
        self.writes.append(('POST', path, found))
        self.kv = {name: dict(secret, versions={int(number): info for number, info in secret['versions'].items()})
                   for name, secret in found['kv'].items()}
        self.docs, self.unseal_keys = found['docs'], found['keys']

    def seal_status(self):
        self.calls += 1
        return dict(type='shamir', initialized=self.initialized, sealed=self.sealed, t=self.threshold,
                    n=self.shares, progress=self.progress)


class FakeClient(object):
    """hvac.Client's surface the Vault client uses, answered by a FakeVault."""

    def __init__(self, server, url):
        self.server, self.url, self.token = server, url, None
        self.adapter = _Adapter(server)
        self.sys = _Sys(server)
        self.auth = _Auth(self)


class _Adapter(object):
    def __init__(self, server):
        self.server = server

    def get(self, url):
        return self.server.answer('GET', url[len('/v1/'):])

    def list(self, url):
        return self.server.answer('LIST', url[len('/v1/'):])

    def post(self, url, json=None):
        return self.server.answer('POST', url[len('/v1/'):], json)

    def delete(self, url):
        return self.server.answer('DELETE', url[len('/v1/'):])


class _Sys(object):
    def __init__(self, server):
        self.server = server

    def read_seal_status(self):
        if self.server.failures:
            raise self.server.failures.pop(0)
        return self.server.seal_status()

    def take_raft_snapshot(self):
        self.server.raft_answer('GET', 'sys/storage/raft/snapshot')
        return _Streamed(self.server.snapshot())

    def restore_raft_snapshot(self, snapshot):
        return self.server.restore(snapshot, force=False)

    def force_restore_raft_snapshot(self, snapshot):
        return self.server.restore(snapshot, force=True)

    def read_health_status(self, method='HEAD'):
        self.server.health_checks += 1
        if self.server.sealed:
            return _Streamed(b'', status_code=503)
        return dict(initialized=True, sealed=False, standby=False)

    def initialize(self, secret_shares=None, secret_threshold=None):
        server = self.server
        if server.initialized:
            raise exceptions.InvalidRequest('Vault is already initialized', method='PUT', url='/v1/sys/init')
        server.writes.append(('PUT', 'sys/init', dict(secret_shares=secret_shares, secret_threshold=secret_threshold)))
        server.initialized, server.sealed = True, True
        server.shares, server.threshold = secret_shares, secret_threshold
        server.unseal_keys = ['key-{0}'.format(number) for number in range(secret_shares)]
        return dict(keys=[key.encode().hex() for key in server.unseal_keys], keys_base64=list(server.unseal_keys),
                    root_token=TOKEN)

    def submit_unseal_key(self, key=None, reset=False):
        server = self.server
        server.writes.append(('PUT', 'sys/unseal', dict(reset=True) if reset else dict(key=key)))
        if reset:
            server.progress, server.parts = 0, set()
        elif key not in server.unseal_keys:
            raise exceptions.InvalidRequest('invalid key', method='PUT', url='/v1/sys/unseal')
        elif server.sealed and key not in server.parts:  # a key given twice counts once
            server.parts.add(key)
            server.progress += 1
            if server.progress >= server.threshold:
                server.sealed, server.progress, server.parts = False, 0, set()
        return server.seal_status()


class _Streamed(object):
    """requests.Response's surface for a body read in chunks."""

    def __init__(self, body, status_code=200):
        self.body, self.status_code, self.closed = body, status_code, False

    def iter_content(self, chunk_size=1):
        return (self.body[start:start + chunk_size] for start in range(0, len(self.body), chunk_size))

    def close(self):
        self.closed = True


class _Auth(object):
    def __init__(self, client):
        self.token = _TokenAuth(client)
        self.approle = _Login(client, lambda mount, role_id, secret_id: client.server.approles.get((mount, role_id)) == secret_id)
        self.kubernetes = _Login(client, lambda mount, role, jwt: client.server.kubernetes_roles.get((mount, role)) == jwt)


class _TokenAuth(object):
    def __init__(self, client):
        self.client = client

    def lookup_self(self):
        self.client.server.answer('GET', 'sys/auth')
        if self.client.token not in self.client.server.tokens:
            raise exceptions.Forbidden('permission denied', method='GET', url='/v1/auth/token/lookup-self')
        return {'data': {'id': self.client.token}}


class _Login(object):
    def __init__(self, client, accepts):
        self.client, self.accepts = client, accepts

    def login(self, mount_point, **credentials):
        self.client.server.answer('GET', 'sys/auth')
        if not self.accepts(mount_point, *credentials.values()):
            raise exceptions.InvalidRequest('invalid credentials', method='POST',
                                            url='/v1/auth/{0}/login'.format(mount_point))
        self.client.token = TOKEN
        return {'auth': {'client_token': TOKEN}}


def connect(monkeypatch, server):
    """Make the Vault client of the modules reach `server`, and never wait between two attempts."""
    monkeypatch.setattr(vault.hvac, 'Client', server.client)
    monkeypatch.setattr(vault.Vault, 'sleep', staticmethod(lambda seconds: None))
    return server


LOGIN = dict(vault_addr='https://bao.example.org:8200', vault_token=TOKEN)
