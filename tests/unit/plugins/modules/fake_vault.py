"""An in-memory Vault behind hvac.Client's interface, for the Vault modules' unit tests.

It answers as Vault's HTTP API does for what the modules use (seal status, init, unseal, token / AppRole /
Kubernetes logins, sys/auth mounts and their tune, ACL policies, Kubernetes auth config and roles, KV v2, raft
snapshots, health, secrets engine mounts, SSH CAs and roles, AppRole roles and secret IDs), raising hvac's
exceptions for 4xx/5xx answers, and records every write, so a test sees exactly what a module sent - or that it sent
nothing."""

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
        self.engines = FakeEngines(self)  # sys/mounts, SSH mounts, AppRole roles

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
        if self.engines.handles(path):
            return self.engines.answer(method, path, body)
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


# What OpenBao reads back of an SSH role written with key_type=ca and nothing else (builtin/logical/ssh/path_roles.go).
SSH_ROLE_DEFAULTS = dict(
    key_type='ca', allowed_users='', allowed_users_template=False, default_user='', default_user_template=False,
    allowed_domains='', allowed_domains_template=False, allowed_extensions='', default_extensions={},
    default_extensions_template=False, allowed_critical_options='', default_critical_options={}, ttl=0, max_ttl=0,
    not_before_duration=30, allow_user_certificates=False, allow_host_certificates=False, allow_bare_domains=False,
    allow_subdomains=False, allow_user_key_ids=False, allow_empty_principals=False, key_id_format='',
    allowed_user_key_lengths={}, algorithm_signer='default', issuer_ref='default')
SSH_ROLE_STRINGS = ('allowed_users', 'allowed_domains', 'allowed_extensions', 'allowed_critical_options', 'default_user',
                    'key_id_format', 'algorithm_signer')
SSH_KEY_TYPES = {'ed25519': 'ssh-ed25519', 'ssh-ed25519': 'ssh-ed25519', 'ec': 'ecdsa-sha2-nistp256',
                 'ecdsa-sha2-nistp256': 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384': 'ecdsa-sha2-nistp384',
                 'ecdsa-sha2-nistp521': 'ecdsa-sha2-nistp521', 'rsa': 'ssh-rsa', 'ssh-rsa': 'ssh-rsa'}
# What OpenBao reads back of an AppRole role written with no field (builtin/credential/approle/path_role.go).
APPROLE_DEFAULTS = dict(
    bind_secret_id=True, local_secret_ids=False, secret_id_bound_cidrs=None, secret_id_num_uses=0, secret_id_ttl=0,
    token_bound_cidrs=[], token_explicit_max_ttl=0, token_max_ttl=0, token_no_default_policy=False, token_num_uses=0,
    token_period=0, token_policies=[], token_strictly_bind_ip=False, token_ttl=0, token_type='default')
APPROLE_LISTS = ('token_policies', 'token_bound_cidrs', 'secret_id_bound_cidrs')
APPROLE_DURATIONS = ('token_ttl', 'token_max_ttl', 'secret_id_ttl', 'token_explicit_max_ttl', 'token_period')


class FakeEngines(object):
    """Secrets engine mounts (sys/mounts and their tune), SSH mounts (config/ca, roles) and AppRole roles (role-id,
    secret-id, secret-id-accessor lookup and destroy), answered as OpenBao does."""

    def __init__(self, server):
        self.server = server
        self.mounts = {'kv/': self.new_mount('kv', options={'version': '2'})}
        self.cas = {}  # SSH mount -> config/ca data (None: no CA)
        self.ssh_roles = {}  # (mount, name) -> role as read back
        self.approle_roles = {}  # (mount, name) -> role as read back
        self.role_ids = {}  # (mount, name) -> role_id
        self.secret_ids = {}  # accessor -> dict(role=(mount, name), secret_id=..., metadata=...)
        self.serial = 0

    # ------------------------------------------------------------ what tests set up

    @staticmethod
    def new_mount(kind, description='', options=None, default_lease_ttl=0, max_lease_ttl=0):
        return dict(type=kind, accessor='{0}_5678'.format(kind), description=description, options=options,
                    config=dict(default_lease_ttl=default_lease_ttl, max_lease_ttl=max_lease_ttl, force_no_cache=False),
                    local=False, seal_wrap=False)

    def mount(self, path, kind, **settings):
        self.mounts[path + '/'] = self.new_mount(kind, **settings)
        if kind == 'ssh':
            self.cas[path] = None

    def issue_ca(self, mount, key_type='ed25519'):
        self.serial += 1
        self.cas[mount] = dict(issuer_id='issuer-{0}'.format(self.serial), issuer_name='',
                               public_key='{0} AAAAfakeCAkey{1}\n'.format(SSH_KEY_TYPES[key_type], self.serial))
        return self.cas[mount]

    # ------------------------------------------------------------ the HTTP API

    def handles(self, path):
        parts = path.split('/')
        if parts[0] == 'sys':
            return path == 'sys/mounts' or path.startswith('sys/mounts/')
        if parts[0] == 'auth':
            return len(parts) >= 4 and parts[2] == 'role' and self.server.docs['sys/auth'].get(
                parts[1] + '/', {}).get('type') == 'approle'
        return self.mounts.get(parts[0] + '/', {}).get('type') == 'ssh'

    def answer(self, method, path, body):
        parts = path.split('/')
        if parts[0] == 'sys':
            return self.answer_mounts(method, path, path[len('sys/mounts'):].strip('/'), body)
        if parts[0] == 'auth':
            return self.answer_approle(method, path, (parts[1], parts[3]), '/'.join(parts[4:]), body or {})
        return self.answer_ssh(method, path, parts[0], '/'.join(parts[1:]), body or {})

    def wrote(self, method, path, body):
        self.server.writes.append((method, path, copy.deepcopy(body)))

    @staticmethod
    def refuse(message, method, path):
        raise exceptions.InvalidRequest(message, method=method, url='/v1/' + path)

    @staticmethod
    def missing(method, path):
        raise exceptions.InvalidPath(method=method, url='/v1/' + path)

    # sys/mounts

    def tune(self, name):
        mount = self.mounts[name + '/']
        found = dict(description=mount['description'], force_no_cache=False,
                     default_lease_ttl=mount['config']['default_lease_ttl'] or SYSTEM_TTL,
                     max_lease_ttl=mount['config']['max_lease_ttl'] or SYSTEM_TTL)
        if mount['options']:
            found['options'] = dict(mount['options'])
        return found

    def answer_mounts(self, method, path, name, body):
        if not name:
            return {'data': copy.deepcopy(self.mounts)}
        tuning = name.endswith('/tune')
        name = name[:-len('/tune')] if tuning else name
        mount = self.mounts.get(name + '/')
        if method == 'POST' and not tuning:
            if mount:
                self.refuse('path is already in use at {0}/'.format(name), method, path)
            self.wrote(method, path, body)
            config = {key: vault.duration_seconds(value, key) for key, value in (body.get('config') or {}).items()}
            self.mount(name, body['type'], description=body.get('description', ''), options={
                key: str(value) for key, value in body['options'].items()} if body.get('options') else None, **config)
            return None
        if method == 'DELETE':
            self.wrote(method, path, body)
            self.mounts.pop(name + '/', None)
            self.cas.pop(name, None)
            self.ssh_roles = {key: role for key, role in self.ssh_roles.items() if key[0] != name}
            return None
        if not mount:
            self.refuse('No secret engine mount at {0}/'.format(name), method, path)
        if method == 'GET':
            return {'data': self.tune(name) if tuning else copy.deepcopy(mount)}
        self.wrote(method, path, body)
        for key in ('default_lease_ttl', 'max_lease_ttl'):
            if key in body:
                mount['config'][key] = vault.duration_seconds(body[key], key)
        if 'description' in body:
            mount['description'] = body['description']
        if body.get('options'):
            mount['options'] = dict(mount['options'] or {}, **{key: str(value) for key, value in body['options'].items()})
        return None

    # an SSH mount

    def answer_ssh(self, method, path, mount, rest, body):
        if rest == 'config/ca':
            return self.answer_ca(method, path, mount, body)
        if not rest.startswith('roles/') or rest.count('/') != 1:
            self.missing(method, path)
        key = (mount, rest.split('/')[1])
        if method == 'GET':
            if key not in self.ssh_roles:
                self.missing(method, path)
            return {'data': copy.deepcopy(self.ssh_roles[key])}
        if method == 'DELETE':
            self.wrote(method, path, None)
            self.ssh_roles.pop(key, None)
            return None
        self.ssh_roles[key] = self.ssh_role(method, path, body)
        self.wrote(method, path, body)
        return None

    def ssh_role(self, method, path, body):
        """The role a write makes: the whole role, every field not given at its default."""
        if not body.get('key_type'):
            self.refuse('missing key type', method, path)
        role = copy.deepcopy(SSH_ROLE_DEFAULTS)
        role.update((key, copy.deepcopy(value)) for key, value in body.items() if key in role)
        for key in SSH_ROLE_STRINGS:
            if not isinstance(role[key], str):
                self.refuse('error converting input {0!r} for field "{1}": expected a string'.format(role[key], key),
                            method, path)
        for key in ('ttl', 'max_ttl', 'not_before_duration'):
            role[key] = vault.duration_seconds(role[key], key)
        for key in ('default_extensions', 'default_critical_options'):
            role[key] = {name: str(value) for name, value in role[key].items()}
        role['algorithm_signer'] = role['algorithm_signer'] or 'default'
        if not role['allow_user_certificates'] and not role['allow_host_certificates']:
            self.refuse("Either 'allow_user_certificates' or 'allow_host_certificates' must be set to 'true'", method, path)
        if role['ttl'] and role['max_ttl'] and role['ttl'] > role['max_ttl']:
            self.refuse('"ttl" value must be less than "max_ttl" when both are specified', method, path)
        return role

    def answer_ca(self, method, path, mount, body):
        if method == 'GET':
            if not self.cas.get(mount):
                self.refuse('no default issuer currently configured', method, path)
            return {'data': copy.deepcopy(self.cas[mount])}
        self.wrote(method, path, None if method == 'DELETE' else body)
        if method == 'DELETE':
            self.cas[mount] = None
            return None
        given = body.get('public_key') or body.get('private_key')
        if body.get('generate_signing_key', not given):
            if given:
                self.refuse('public_key and private_key must not be set when generate_signing_key is set to true',
                            method, path)
            return {'data': copy.deepcopy(self.issue_ca(mount, body.get('key_type', 'ssh-rsa')))}
        if not (body.get('public_key') and body.get('private_key')):
            self.refuse('only one of public_key and private_key set; both must be set to use, or both must be blank to '
                        'auto-generate', method, path)
        self.serial += 1
        self.cas[mount] = dict(issuer_id='issuer-{0}'.format(self.serial), issuer_name='', public_key=body['public_key'])
        return {'data': copy.deepcopy(self.cas[mount])}

    # an AppRole role

    def answer_approle(self, method, path, key, rest, body):
        role = self.approle_roles.get(key)
        if rest == '':
            if method == 'GET':
                if role is None:
                    self.missing(method, path)
                return {'data': copy.deepcopy(role)}
            self.wrote(method, path, None if method == 'DELETE' else body)
            if method == 'DELETE':
                self.approle_roles.pop(key, None)
                self.secret_ids = {accessor: found for accessor, found in self.secret_ids.items() if found['role'] != key}
                return None
            self.approle_roles[key] = self.approle_role(method, path, role, body)
            self.role_ids.setdefault(key, 'role-id-{0}-{1}'.format(*key))
            return None
        if role is None:
            self.refuse('role "{0}" does not exist'.format(key[1]), method, path)
        if rest == 'role-id' and method == 'GET':
            return {'data': {'role_id': self.role_ids[key]}}
        accessor = body.get('secret_id_accessor')
        if rest == 'secret-id' and method == 'POST':
            metadata = json.loads(body['metadata']) if body.get('metadata') else {}
            if any(not isinstance(value, str) for value in metadata.values()):
                self.refuse('failed to parse metadata: values must be strings', method, path)
            self.serial += 1
            accessor = 'accessor-{0}'.format(self.serial)
            self.secret_ids[accessor] = dict(role=key, secret_id='secret-id-{0}'.format(self.serial), metadata=metadata)
            self.wrote(method, path, body)
            return {'data': dict(secret_id=self.secret_ids[accessor]['secret_id'], secret_id_accessor=accessor,
                                 secret_id_ttl=role['secret_id_ttl'], secret_id_num_uses=role['secret_id_num_uses'])}
        known = (self.secret_ids.get(accessor) or {}).get('role') == key
        if rest == 'secret-id-accessor/lookup' and method == 'POST':
            if not known:
                self.missing(method, path)
            return {'data': dict(secret_id_accessor=accessor, metadata=self.secret_ids[accessor]['metadata'])}
        if rest == 'secret-id-accessor/destroy' and method == 'POST':
            if not known:  # OpenBao answers 500 here
                raise exceptions.InternalServerError('failed to find accessor entry for secret_id_accessor: {0!r}'.format(
                    accessor), method=method, url='/v1/' + path)
            self.wrote(method, path, body)
            del self.secret_ids[accessor]
            return None
        self.missing(method, path)
        return None

    def approle_role(self, method, path, role, body):
        """The role after a write: the fields given replace those of the role (or of a new one's defaults)."""
        role = copy.deepcopy(role or APPROLE_DEFAULTS)
        for key, value in body.items():
            if key not in role:
                continue
            if key in APPROLE_LISTS:
                value = [item.strip() for item in (value.split(',') if isinstance(value, str) else value) if item.strip()]
            elif key in APPROLE_DURATIONS:
                value = vault.duration_seconds(value, key)
            elif key == 'token_type' and value not in ('default', 'service', 'batch'):
                self.refuse('invalid token_type {0!r}'.format(value), method, path)
            role[key] = value
        return role
