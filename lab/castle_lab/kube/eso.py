"""External Secrets Operator's controllers for the vault provider, acting only while the external-secrets controller
Deployment is Available in the cluster.

SecretStores and ClusterSecretStores are validated as ESO does (build a client, which logs in, then look the token up
and check the KV mount). ExternalSecrets are synced each refresh interval the way ESO does it with Kubernetes auth:
a TokenRequest for the store's ServiceAccount, a login to the real OpenBao (which reviews the token with this API
server), a token lookup, one KV read per item and a revoke of the token. Every HTTP request sent to Vault is counted
per object and reported on the control API (GET /eso/vault-requests)."""

import asyncio
import base64
import collections
import copy
import hashlib
import json
import logging
import os
import ssl
import time
import urllib.parse

import aiohttp
from aiohttp import web

from .api import now
from .controllers import Controller
from .errors import ApiError
from .flux import DEPLOYMENTS, replace_status
from .flux_objects import parse_duration
from .selectors import labels_match

log = logging.getLogger(__name__)

GROUP = 'external-secrets.io'
STORES = (GROUP, 'secretstores')
CLUSTER_STORES = (GROUP, 'clustersecretstores')
EXTERNAL_SECRETS = (GROUP, 'externalsecrets')
CLUSTER_EXTERNAL_SECRETS = (GROUP, 'clusterexternalsecrets')
NAMESPACES = ('', 'namespaces')
STORE_KEYS = {'SecretStore': STORES, 'ClusterSecretStore': CLUSTER_STORES}
SECRETS = ('', 'secrets')
CONFIG_MAPS = ('', 'configmaps')
SERVICE_ACCOUNTS = ('', 'serviceaccounts')
DEPLOYMENT = 'external-secrets'
MANAGER = 'external-secrets'
# ESO's --store-requeue-interval, its ExternalSecret refreshInterval and ClusterExternalSecret refreshTime defaults.
STORE_REQUEUE = 300.0
DEFAULT_REFRESH = '1h0m0s'
DEFAULT_NAMESPACE_REFRESH = '1m'
# ESO asks for ten-minute ServiceAccount tokens.
TOKEN_SECONDS = 600
VAULT_TIMEOUT = 10.0
# Failed reconciles come back sooner and sooner less often, as controller-runtime's rate limiter does.
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
LABEL_OWNER = 'reconcile.external-secrets.io/created-by'
LABEL_MANAGED = 'reconcile.external-secrets.io/managed'
ANNOTATION_DATA_HASH = 'reconcile.external-secrets.io/data-hash'
ANNOTATION_FORCE_SYNC = 'force-sync'
MSG_STORE_VALID = 'store validated'
MSG_SYNCED = 'Secret was synced'
ERR_CLIENT = 'unable to create client'
ERR_VALIDATE = 'unable to validate store: {0}'
ERR_PROVIDER_DATA = 'could not get secret data from provider'
ERR_UPDATE_SECRET = 'could not update Secret'


class ProviderError(Exception):
    """What the provider (Vault, or the store's configuration) answered instead of a secret."""


def eso_available(api):
    """Whether the external-secrets controller Deployment (the chart's `{fullname}`) is Available somewhere."""
    for deployment in api.store.list(DEPLOYMENTS):
        meta = deployment['metadata']
        labels = meta.get('labels') or {}
        named = meta['name'] == DEPLOYMENT or (labels.get('app.kubernetes.io/name') == 'external-secrets'
                                               and labels.get('app.kubernetes.io/component') == 'controller')
        if named and any(c.get('type') == 'Available' and c.get('status') == 'True'
                         for c in (deployment.get('status') or {}).get('conditions') or []):
            return True
    return False


def eso_condition(status, reason, message):
    return {'type': 'Ready', 'status': status, 'reason': reason, 'message': message, 'lastTransitionTime': now()}


def object_hash(value):
    return hashlib.md5(json.dumps(value, sort_keys=True).encode()).hexdigest()  # nosec - a label, as ESO's


def resource_version(obj):
    """ESO's view of an ExternalSecret's version: its generation and a hash of its labels and annotations."""
    meta = obj['metadata']
    return '{0}-{1}'.format(meta.get('generation', 1), object_hash({'annotations': meta.get('annotations') or {},
                                                                    'labels': meta.get('labels') or {}}))


class VaultRequests:
    """HTTP requests sent to Vault, per object: how many, over how long, and how many in the last minute."""

    def __init__(self):
        self.counts = {}

    def record(self, kind, key):
        entry = self.counts.setdefault((kind, key), {
            'requests': 0, 'first': time.monotonic(), 'recent': collections.deque(maxlen=10000)})
        entry['requests'] += 1
        entry['recent'].append(time.monotonic())

    def report(self):
        clock = time.monotonic()
        found = {'externalSecrets': {}, 'stores': {}}
        for (kind, key), entry in sorted(self.counts.items()):
            seconds = clock - entry['first']
            found['externalSecrets' if kind == 'ExternalSecret' else 'stores'][key] = {
                'requests': entry['requests'], 'seconds': round(seconds, 3),
                'perMinute': round(entry['requests'] * 60.0 / max(seconds, 1.0), 2),
                'lastMinute': sum(1 for t in entry['recent'] if clock - t <= 60.0)}
        return found

    def routes(self, app):
        async def vault_requests(request):
            return web.json_response(self.report())

        async def reset(request):
            self.counts.clear()
            return web.json_response({'reset': True})

        app.router.add_get('/eso/vault-requests', vault_requests)
        app.router.add_post('/eso/vault-requests/reset', reset)


def _go_error(method, url, exc):
    """A transport error as Go's HTTP client words it (what ESO reports)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = 'tls: failed to verify certificate: x509: certificate signed by unknown authority'
        if 'hostname' in str(exc.certificate_error).lower() or 'IP address mismatch' in str(exc.certificate_error):
            cause = 'tls: failed to verify certificate: {0}'.format(exc.certificate_error)
    elif isinstance(exc, aiohttp.ClientConnectorError):
        number = getattr(exc.os_error, 'errno', None)
        reason = os.strerror(number).lower() if number else str(exc.os_error or exc)
        cause = 'dial tcp {0}:{1}: connect: {2}'.format(exc.host, exc.port, reason)
    elif isinstance(exc, asyncio.TimeoutError):
        cause = 'context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    else:
        cause = str(exc) or type(exc).__name__
    return '{0} "{1}": {2}'.format(method.capitalize(), url, cause)


class VaultSession:
    """Vault's HTTP API as ESO's vault provider uses it, every request counted for one object."""

    def __init__(self, config, requests, kind, key):
        self.config, self.requests, self.kind, self.key = config, requests, kind, key
        self.token = None
        self.session = None

    async def __aenter__(self):
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=VAULT_TIMEOUT))
        return self

    async def __aexit__(self, *exc_info):
        await self.session.close()

    async def call(self, method, path, body=None, query=None, token=None):
        """The JSON body of a 2xx answer (None for 204); ProviderError worded as Vault's Go client words it."""
        url = self.config['server'].rstrip('/') + '/v1/' + path.lstrip('/')
        if query:
            url += '?' + urllib.parse.urlencode(query)
        headers = dict(self.config['headers'])
        if token or self.token:
            headers['X-Vault-Token'] = token or self.token
        if self.config['namespace']:
            headers['X-Vault-Namespace'] = self.config['namespace']
        self.requests.record(self.kind, self.key)
        try:
            async with self.session.request(method, url, json=body, headers=headers,
                                            ssl=self.config['ssl']) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ProviderError(_go_error(method, url, exc)) from None
        if status == 204:
            return None
        try:
            answer = json.loads(text) if text else {}
        except ValueError:
            answer = None
        if 200 <= status < 300 and isinstance(answer, dict):
            return answer
        message = 'Error making API request.\n\n'
        if self.config['namespace']:
            message += 'Namespace: {0}\n'.format(self.config['namespace'])
        message += 'URL: {0} {1}\nCode: {2}. '.format(method, url, status)
        errors = (answer or {}).get('errors') if isinstance(answer, dict) else None
        if errors:
            message += 'Errors:\n\n' + '\n'.join('* ' + str(e) for e in errors)
        else:
            message += 'Raw Message:\n\n' + text
        raise ProviderError(message)

    async def authenticate(self, api):
        """Logs in as the store's auth says (Kubernetes auth), or takes the store's static token."""
        auth_config = self.config['auth']
        if 'token' in auth_config:
            self.token = auth_config['token']
            return False
        jwt = auth_config['jwt'] or request_token(api, auth_config['account'], auth_config['audiences'])
        answer = await self.call('PUT', 'auth/{0}/login'.format(auth_config['mount']),
                                 {'role': auth_config['role'], 'jwt': jwt})
        self.token = ((answer or {}).get('auth') or {}).get('client_token')
        if not self.token:
            raise ProviderError('no client token in the login response from {0}'.format(self.config['server']))
        return True

    async def lookup_self(self):
        return await self.call('GET', 'auth/token/lookup-self')

    async def revoke_self(self):
        try:
            await self.call('PUT', 'auth/token/revoke-self')
        except ProviderError as exc:
            log.warning('vault: revoking the token of %s %s failed: %s', self.kind, self.key, exc)

    async def read(self, key, version=None):
        """The secret's data map at `key` (a KV v2 version if given); ProviderError if there is none."""
        mount, rest = self._split(key)
        if self.config['version'] == 'v2':
            path = '{0}/data/{1}'.format(mount, rest)
        else:
            path = '{0}/{1}'.format(mount, rest)
        try:
            answer = await self.call('GET', path, query={'version': version} if version else None)
        except ProviderError as exc:
            if 'Code: 404.' in str(exc):
                raise ProviderError('Secret does not exist') from None
            raise
        data = (answer or {}).get('data') or {}
        if self.config['version'] == 'v2':
            data = data.get('data')
        if data is None:
            raise ProviderError('Secret does not exist')
        return data

    def _split(self, key):
        key = key.strip('/')
        path = (self.config['path'] or '').strip('/')
        if path:
            if key.startswith(path + '/'):
                key = key[len(path) + 1:]
            return path, key
        mount, rest = (key.split('/', 1) + [''])[:2]
        return mount, rest

    async def check_mount(self):
        """ESO's mount check: the store's path must be a KV engine of the store's version."""
        path = (self.config['path'] or '').strip('/')
        if not path:
            return
        try:
            answer = await self.call('GET', 'sys/internal/ui/mounts/' + path)
        except ProviderError:
            return
        data = (answer or {}).get('data') or {}
        mount_type = data.get('type', '<missing>')
        if mount_type != 'kv':
            raise ProviderError('vault mount path "{0}" is not a kv secret engine, got "{1}"'.format(
                path, mount_type))
        is_v2 = str((data.get('options') or {}).get('version')) == '2'
        if is_v2 != (self.config['version'] == 'v2'):
            raise ProviderError('vault mount path "{0}" uses kv version {1} but store is configured for kv version '
                                '{2}'.format(path, 'v2' if is_v2 else 'v1', self.config['version']))


def request_token(api, account, audiences):
    """A TokenRequest for the ServiceAccount (namespace, name), as the API server answers it."""
    namespace, name = account
    found = api.store.get(SERVICE_ACCOUNTS, namespace, name)
    if found is None:
        raise ProviderError('cannot create service account token for "{0}": serviceaccounts "{0}" not found'.format(
            name))
    return api.signer.issue(namespace, name, found['metadata']['uid'], audiences or None, TOKEN_SECONDS)[0]


def _ref_namespace(store_kind, store_namespace, ref, fallback, field):
    """The namespace a reference in a store points into (ESO's referent rules)."""
    given = ref.get('namespace')
    if store_kind == 'SecretStore':
        if given and given != store_namespace:
            raise ProviderError('invalid {0}: namespace should either be empty or match the namespace of the '
                                'SecretStore for a namespaced SecretStore'.format(field))
        return store_namespace
    return given or fallback


def _secret_value(api, namespace, ref, default_key, field):
    key = ref.get('key') or default_key
    secret = api.store.get(SECRETS, namespace, ref.get('name')) if namespace else None
    if secret is None:
        raise ProviderError('cannot get Kubernetes secret "{0}" for {1}: secrets "{0}" not found'.format(
            ref.get('name'), field))
    value = (secret.get('data') or {}).get(key)
    if value is None:
        raise ProviderError('cannot find secret data for key: "{0}"'.format(key))
    return base64.b64decode(value).decode(errors='replace')


def _ca_bundle(api, store_kind, store_namespace, vault, fallback):
    """The PEM the store trusts for Vault's certificate: caBundle, or caProvider's Secret or ConfigMap key."""
    if vault.get('caBundle'):
        try:
            return base64.b64decode(vault['caBundle'], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            raise ProviderError('cannot set Vault CA certificate: caBundle is not valid base64 PEM') from None
    provider = vault.get('caProvider')
    if not provider:
        return None
    namespace = _ref_namespace(store_kind, store_namespace, provider, fallback, 'CAProvider')
    key = (CONFIG_MAPS if provider.get('type') == 'ConfigMap' else SECRETS)
    found = api.store.get(key, namespace, provider.get('name')) if namespace else None
    kind = 'configmaps' if key == CONFIG_MAPS else 'secrets'
    if found is None:
        raise ProviderError('failed to get caProvider {0} "{1}": {0} "{1}" not found'.format(
            kind, provider.get('name')))
    value = (found.get('data') or {}).get(provider.get('key') or '')
    if value is None:
        raise ProviderError('failed to get caProvider {0} "{1}": no key "{2}"'.format(
            kind, provider.get('name'), provider.get('key')))
    return base64.b64decode(value).decode(errors='replace') if key == SECRETS else value


def vault_config(api, store, namespace):
    """A store's vault provider as a client configuration, for ExternalSecrets in `namespace` (None: the store's
    own validation). ProviderError names what is wrong; {'referent': True} when only an ExternalSecret can tell."""
    store_kind = store['kind']
    store_namespace = store['metadata'].get('namespace')
    provider = (store.get('spec') or {}).get('provider') or {}
    names = sorted(provider)
    if names != ['vault']:
        raise ProviderError('the castle-lab External Secrets emulation supports the vault provider only, '
                            'not {0}'.format(', '.join('"{0}"'.format(n) for n in names) or 'an empty provider'))
    vault = provider['vault']
    server = vault.get('server') or ''
    parsed = urllib.parse.urlparse(server)
    if parsed.scheme not in ('http', 'https') or not parsed.hostname:
        raise ProviderError('invalid vault server address "{0}"'.format(server))
    fallback = namespace if store_kind == 'ClusterSecretStore' else store_namespace
    auth_spec = vault.get('auth') or {}
    config = {'server': server, 'path': vault.get('path'), 'version': vault.get('version') or 'v2',
              'namespace': vault.get('namespace') or '', 'headers': dict(vault.get('headers') or {})}
    kube = auth_spec.get('kubernetes')
    if kube:
        auth_config = {'mount': (kube.get('mountPath') or 'kubernetes').strip('/'), 'role': kube.get('role', ''),
                       'jwt': None, 'account': None, 'audiences': None}
        account = kube.get('serviceAccountRef')
        if account:
            account_namespace = _ref_namespace(store_kind, store_namespace, account, fallback,
                                               'Auth.Kubernetes.ServiceAccountRef')
            if account_namespace is None:
                return {'referent': True}
            auth_config.update(account=(account_namespace, account['name']), audiences=account.get('audiences'))
        elif kube.get('secretRef'):
            ref = kube['secretRef']
            ref_namespace = _ref_namespace(store_kind, store_namespace, ref, fallback, 'Auth.Kubernetes.SecretRef')
            if ref_namespace is None:
                return {'referent': True}
            auth_config['jwt'] = _secret_value(api, ref_namespace, ref, 'token', 'Auth.Kubernetes.SecretRef')
        else:
            raise ProviderError('cannot read Kubernetes service account token from file system: open '
                                '/var/run/secrets/kubernetes.io/serviceaccount/token: no such file or directory')
    elif auth_spec.get('tokenSecretRef'):
        ref = auth_spec['tokenSecretRef']
        ref_namespace = _ref_namespace(store_kind, store_namespace, ref, fallback, 'Auth.TokenSecretRef')
        if ref_namespace is None:
            return {'referent': True}
        auth_config = {'token': _secret_value(api, ref_namespace, ref, 'token', 'Auth.TokenSecretRef')}
    else:
        raise ProviderError('the castle-lab External Secrets emulation supports vault auth.kubernetes and '
                            'auth.tokenSecretRef only, not {0}'.format(', '.join(sorted(auth_spec)) or 'no auth'))
    config['auth'] = auth_config
    if parsed.scheme == 'https':
        pem = _ca_bundle(api, store_kind, store_namespace, vault, fallback)
        try:
            config['ssl'] = ssl.create_default_context(cadata=pem) if pem else ssl.create_default_context()
        except (ssl.SSLError, ValueError) as exc:
            raise ProviderError('cannot set Vault CA certificate: failed to parse certificates from CA bundle '
                                '({0})'.format(exc)) from None
    else:
        config['ssl'] = False
    return config


class EsoController(Controller):
    """Acts while the external-secrets controller is Available; reconciles its kinds on creation, spec, label or
    annotation changes and deletion, not on its own status writes; one pending timer per object."""

    kinds = ()

    def __init__(self, api, requests):
        super().__init__(api)
        self.requests = requests
        self.watches = self.kinds
        self.seen = {}
        self.timers = {}
        self.failures = {}
        self.available = False

    def enqueue(self, key, namespace, name, delay=0.0):
        item = (key, namespace, name)
        timer = self.timers.pop(item, None)
        if timer is not None:
            timer.cancel()
        if delay:
            self.timers[item] = asyncio.get_running_loop().call_later(delay, self.enqueue, key, namespace, name)
        else:
            super().enqueue(key, namespace, name)

    def notify(self, key, event, obj):
        if key == DEPLOYMENTS:
            available = eso_available(self.api)
            if available and not self.available:
                for kind in self.kinds:
                    for item in self.api.store.list(kind):
                        self.enqueue(kind, item['metadata'].get('namespace', ''), item['metadata']['name'])
            self.available = available
        elif key in self.kinds:
            meta = obj['metadata']
            ident = (key, meta.get('namespace', ''), meta['name'])
            marker = None if event == 'DELETED' else (meta['uid'], resource_version(obj),
                                                      meta.get('deletionTimestamp'))
            if self.seen.get(ident) != marker:
                self.seen[ident] = marker
                self.enqueue(*ident)
        else:
            self.related(key, event, obj)

    def related(self, key, event, obj):
        """Events of other kinds this controller reacts to."""

    def backoff(self, ident):
        count = self.failures.get(ident, 0)
        self.failures[ident] = count + 1
        return min(BACKOFF_FIRST * 2 ** count, BACKOFF_MAX)

    def write_status(self, key, namespace, name, status):
        rtype = self.api.registry.get(key[0], 'v1', key[1])
        current = self.api.store.get(key, namespace or None, name)
        if rtype is not None and current is not None:
            replace_status(self.api, rtype, current, status, MANAGER)


class SecretStoreController(EsoController):
    """SecretStores and ClusterSecretStores: Ready (Valid) when ESO could build a client and validate it."""

    name = 'eso-secretstores'
    kinds = (STORES, CLUSTER_STORES)

    async def reconcile(self, key, namespace, name):
        store = self.api.store.get(key, namespace or None, name)
        ident = (key, namespace, name)
        if store is None or store['metadata'].get('deletionTimestamp'):
            self.failures.pop(ident, None)
            return None
        if not eso_available(self.api):
            return None
        kind = store['kind']
        label = '{0}/{1}'.format(kind, '{0}/{1}'.format(namespace, name) if namespace else name)
        status = copy.deepcopy(store.get('status') or {})
        try:
            await self.validate(store, label)
        except _StoreInvalid as exc:
            status['conditions'] = [eso_condition('False', exc.reason, exc.message)]
            status.pop('capabilities', None)
            self.write_status(key, namespace, name, status)
            return self.backoff(ident)
        self.failures.pop(ident, None)
        status['conditions'] = [eso_condition('True', 'Valid', MSG_STORE_VALID)]
        status['capabilities'] = 'ReadWrite'
        self.write_status(key, namespace, name, status)
        interval = (store.get('spec') or {}).get('refreshInterval')
        return float(interval) if isinstance(interval, int) and interval > 0 else STORE_REQUEUE

    async def validate(self, store, label):
        try:
            config = vault_config(self.api, store, store['metadata'].get('namespace'))
        except ProviderError as exc:
            raise _StoreInvalid('InvalidProviderConfig', '{0}: {1}'.format(ERR_CLIENT, exc)) from None
        if config.get('referent'):
            return  # which namespace's ServiceAccount logs in is known per ExternalSecret only
        async with VaultSession(config, self.requests, store['kind'], label) as vault:
            try:
                logged_in = await vault.authenticate(self.api)
            except ProviderError as exc:
                raise _StoreInvalid('InvalidProviderConfig', '{0}: {1}'.format(ERR_CLIENT, exc)) from None
            try:
                try:
                    await vault.lookup_self()
                except ProviderError as exc:
                    raise _StoreInvalid('ValidationFailed', ERR_VALIDATE.format(
                        'invalid vault credentials: {0}'.format(exc))) from None
                try:
                    await vault.check_mount()
                except ProviderError as exc:
                    raise _StoreInvalid('ValidationFailed', ERR_VALIDATE.format(exc)) from None
            finally:
                if logged_in:
                    await vault.revoke_self()


class _StoreInvalid(Exception):
    def __init__(self, reason, message):
        super().__init__(message)
        self.reason, self.message = reason, message


class _SyncFailed(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


class ExternalSecretController(EsoController):
    """ExternalSecrets: the target Secret from Vault each refresh interval, Ready SecretSynced or SecretSyncedError."""

    name = 'eso-externalsecrets'
    kinds = (EXTERNAL_SECRETS,)

    def __init__(self, api, requests):
        super().__init__(api, requests)
        self.synced = {}
        self.written_keys = {}

    def related(self, key, event, obj):
        if key == SECRETS and event == 'DELETED':
            # An owned Secret deleted by hand comes back at once, as ESO watches what it owns.
            for ref in obj['metadata'].get('ownerReferences') or []:
                if ref.get('kind') == 'ExternalSecret' and ref.get('controller'):
                    self.enqueue(EXTERNAL_SECRETS, obj['metadata']['namespace'], ref['name'])
        elif key in STORE_KEYS.values() and event != 'DELETED':
            for es in self.api.store.list(EXTERNAL_SECRETS):
                ref = (es.get('spec') or {}).get('secretStoreRef') or {}
                kind = STORE_KEYS.get(ref.get('kind') or 'SecretStore')
                same_namespace = key == CLUSTER_STORES or es['metadata']['namespace'] == obj['metadata'].get(
                    'namespace')
                if kind == key and ref.get('name') == obj['metadata']['name'] and same_namespace and \
                        self._failed(es):
                    self.enqueue(EXTERNAL_SECRETS, es['metadata']['namespace'], es['metadata']['name'])

    @staticmethod
    def _failed(es):
        return any(c.get('type') == 'Ready' and c.get('status') == 'False'
                   for c in (es.get('status') or {}).get('conditions') or [])

    async def reconcile(self, key, namespace, name):
        es = self.api.store.get(EXTERNAL_SECRETS, namespace, name)
        ident = (key, namespace, name)
        if es is None or es['metadata'].get('deletionTimestamp'):
            for memory in (self.synced, self.failures, self.written_keys):
                memory.pop(ident, None)
            return None
        if not eso_available(self.api):
            return None
        spec = es.get('spec') or {}
        try:
            refresh = parse_duration(spec.get('refreshInterval') or DEFAULT_REFRESH)
        except ValueError:
            refresh = parse_duration(DEFAULT_REFRESH)
        version = resource_version(es)
        target = spec.get('target') or {}
        secret_name = target.get('name') or name
        policy = target.get('creationPolicy') or 'Owner'
        last = self.synced.get(ident)
        secret_there = policy in ('None', 'Merge') or self.api.store.get(SECRETS, namespace, secret_name) is not None
        if last and last[0] == version and secret_there and not self._failed(es):
            if not refresh:
                return None
            due = last[1] + refresh - time.monotonic()
            if due > 0:
                return due
        started = now()
        status = copy.deepcopy(es.get('status') or {})
        try:
            data = await self.fetch(es)
            current = self.api.store.get(EXTERNAL_SECRETS, namespace, name)
            if current is None or current['metadata']['uid'] != es['metadata']['uid'] or \
                    current['metadata'].get('deletionTimestamp'):
                return None  # deleted while Vault answered: nothing to write, and no owner for a Secret
            self.write_secret(es, secret_name, policy, target, data)
        except _SyncFailed as exc:
            status['conditions'] = [eso_condition('False', 'SecretSyncedError', exc.message)]
            self.write_status(key, namespace, name, status)
            self.synced.pop(ident, None)
            return self.backoff(ident)
        self.failures.pop(ident, None)
        self.synced[ident] = (version, time.monotonic())
        status['conditions'] = [eso_condition('True', 'SecretSynced', MSG_SYNCED)]
        status.update(refreshTime=started, syncedResourceVersion=version)
        if policy != 'None':
            status['binding'] = {'name': secret_name}
        self.write_status(key, namespace, name, status)
        return refresh or None

    def _store_of(self, es):
        ref = (es.get('spec') or {}).get('secretStoreRef') or {}
        kind = ref.get('kind') or 'SecretStore'
        if kind not in STORE_KEYS:
            raise ProviderError('unsupported store kind "{0}"'.format(kind))
        namespace = es['metadata']['namespace'] if kind == 'SecretStore' else None
        store = self.api.store.get(STORE_KEYS[kind], namespace, ref.get('name'))
        if store is None:
            raise ProviderError('could not get {0} "{1}": {0}.external-secrets.io "{1}" not found'.format(
                kind, ref.get('name')))
        ready = next((c for c in (store.get('status') or {}).get('conditions') or [] if c.get('type') == 'Ready'), None)
        if ready is not None and ready.get('status') != 'True':
            raise ProviderError('{0} "{1}" is not ready'.format(kind, ref.get('name')))
        return store

    async def fetch(self, es):
        """The Secret's data (name -> bytes) from Vault, with the requests ESO sends in one cycle."""
        namespace, name = es['metadata']['namespace'], es['metadata']['name']
        spec = es.get('spec') or {}
        try:
            store = self._store_of(es)
            config = vault_config(self.api, store, namespace)
            if config.get('referent'):
                raise ProviderError('the store needs a namespace for its references')
            async with VaultSession(config, self.requests, 'ExternalSecret',
                                    '{0}/{1}'.format(namespace, name)) as vault:
                logged_in = await vault.authenticate(self.api)
                try:
                    await vault.lookup_self()
                    return await self._read_all(vault, spec)
                finally:
                    if logged_in:
                        await vault.revoke_self()
        except ProviderError as exc:
            raise _SyncFailed('{0}: {1}'.format(ERR_PROVIDER_DATA, exc)) from None

    async def _read_all(self, vault, spec):
        data = {}
        for index, source in enumerate(spec.get('dataFrom') or []):
            extract = source.get('extract')
            if not extract:
                raise ProviderError('spec.dataFrom[{0}]: the castle-lab External Secrets emulation reads '
                                    'extract only, not {1}'.format(index, ', '.join(sorted(source))))
            values = await vault.read(extract.get('key', ''), extract.get('version'))
            if not isinstance(values, dict):
                raise ProviderError('cannot decode secret data at "{0}"'.format(extract.get('key')))
            for key, value in values.items():
                data[key] = _as_bytes(value)
        for item in spec.get('data') or []:
            ref = item.get('remoteRef') or {}
            values = await vault.read(ref.get('key', ''), ref.get('version'))
            prop = ref.get('property')
            if not prop:
                data[item['secretKey']] = json.dumps(values, separators=(',', ':')).encode()
                continue
            value = _property(values, prop)
            if value is None:
                raise ProviderError('cannot find secret data for key: "{0}"'.format(prop))
            data[item['secretKey']] = _as_bytes(value)
        return data

    def write_secret(self, es, secret_name, policy, target, data):
        namespace, name = es['metadata']['namespace'], es['metadata']['name']
        ident = (EXTERNAL_SECRETS, namespace, name)
        if policy == 'None':
            return
        rtype = self.api.registry.get('', 'v1', 'secrets')
        manager = 'externalsecrets.external-secrets.io/' + name
        template = target.get('template') or {}
        template_meta = template.get('metadata') or {}
        encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
        existing = self.api.store.get(SECRETS, namespace, secret_name)
        try:
            if existing is None:
                if policy == 'Merge':
                    raise _SyncFailed('{0}: the desired secret {1} was not found. With creationPolicy=Merge the '
                                      'secret won\'t be created'.format(ERR_UPDATE_SECRET, secret_name))
                labels = {**(template_meta.get('labels') or {}), LABEL_MANAGED: 'true'}
                meta = {'name': secret_name, 'namespace': namespace, 'labels': labels,
                        'annotations': {**(template_meta.get('annotations') or {}),
                                        ANNOTATION_DATA_HASH: object_hash(encoded)}}
                if policy == 'Owner':
                    labels[LABEL_OWNER] = object_hash('{0}/{1}'.format(namespace, name))
                    meta['ownerReferences'] = [self._owner(es)]
                body = {'metadata': meta, 'type': template.get('type') or 'Opaque', 'data': encoded}
                self.api.create(rtype, namespace, body, manager)
            else:
                body = self.api.served_as(rtype, existing)
                meta = body['metadata']
                kept = {k: v for k, v in (body.get('data') or {}).items()
                        if k not in self.written_keys.get(ident, ()) or k in encoded}
                body['data'] = {**kept, **encoded}
                if policy == 'Owner':
                    refs = [r for r in meta.get('ownerReferences') or [] if r.get('uid') != es['metadata']['uid']]
                    if any(r.get('controller') for r in refs):
                        raise _SyncFailed('{0}: Object {1}/{2} is already owned by another {3} controller {4}'.format(
                            ERR_UPDATE_SECRET, namespace, secret_name, refs[0].get('kind'), refs[0].get('name')))
                    meta['ownerReferences'] = refs + [self._owner(es)]
                    meta.setdefault('labels', {})[LABEL_OWNER] = object_hash('{0}/{1}'.format(namespace, name))
                if policy != 'Merge':
                    meta.setdefault('labels', {}).update(template_meta.get('labels') or {})
                    meta['labels'][LABEL_MANAGED] = 'true'
                    meta.setdefault('annotations', {}).update(template_meta.get('annotations') or {})
                    if template.get('type'):
                        body['type'] = template['type']
                meta.setdefault('annotations', {})[ANNOTATION_DATA_HASH] = object_hash(body['data'])
                if body != self.api.served_as(rtype, existing):
                    self.api.replace(rtype, namespace, secret_name, body, manager)
        except ApiError as exc:
            raise _SyncFailed('{0}: {1}'.format(ERR_UPDATE_SECRET, exc.status().get('message', exc))) from None
        self.written_keys[ident] = set(encoded)

    @staticmethod
    def _owner(es):
        return {'apiVersion': GROUP + '/v1', 'kind': 'ExternalSecret', 'name': es['metadata']['name'],
                'uid': es['metadata']['uid'], 'controller': True, 'blockOwnerDeletion': True}


def _property(values, prop):
    """A property of a secret's data: a top-level key, else a dotted path into nested maps."""
    if prop in values:
        return values[prop]
    node = values
    for part in prop.split('.'):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _as_bytes(value):
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    return json.dumps(value, separators=(',', ':')).encode()


SELECTOR_OPERATORS = {'In': 'in', 'NotIn': 'notin', 'Exists': 'exists', 'DoesNotExist': '!exists'}


def selector_matches(selector, labels):
    """Whether a LabelSelector (matchLabels, matchExpressions) selects these labels."""
    requirements = [(key, 'in', [value]) for key, value in (selector.get('matchLabels') or {}).items()]
    for expression in selector.get('matchExpressions') or []:
        requirements.append((expression.get('key'), SELECTOR_OPERATORS.get(expression.get('operator'), 'in'),
                             expression.get('values') or []))
    return labels_match(requirements, labels)


class ClusterExternalSecretController(EsoController):
    """ClusterExternalSecrets: an ExternalSecret of their spec in every namespace they select, removed from the
    namespaces they stop selecting and with them; status provisionedNamespaces, failedNamespaces and Ready."""

    name = 'eso-clusterexternalsecrets'
    kinds = (CLUSTER_EXTERNAL_SECRETS,)

    def __init__(self, api, requests):
        super().__init__(api, requests)
        self.uids = {}

    def related(self, key, event, obj):
        if key == NAMESPACES:
            for ces in self.api.store.list(CLUSTER_EXTERNAL_SECRETS):
                self.enqueue(CLUSTER_EXTERNAL_SECRETS, '', ces['metadata']['name'])
        elif key == EXTERNAL_SECRETS and event == 'DELETED':
            for ref in obj['metadata'].get('ownerReferences') or []:
                if ref.get('kind') == 'ClusterExternalSecret' and ref.get('controller'):
                    self.enqueue(CLUSTER_EXTERNAL_SECRETS, '', ref['name'])

    def _owned(self, es, name, uid=None):
        return any(ref.get('kind') == 'ClusterExternalSecret' and ref.get('controller') and ref.get('name') == name
                   and (uid is None or ref.get('uid') == uid) for ref in es['metadata'].get('ownerReferences') or [])

    def _delete(self, namespace, es_name, name, uid=None):
        es = self.api.store.get(EXTERNAL_SECRETS, namespace, es_name)
        if es is not None and self._owned(es, name, uid):
            self.api.delete(self.api.registry.get(GROUP, 'v1', 'externalsecrets'), namespace, es_name)

    def _targets(self, spec):
        selectors = list(spec.get('namespaceSelectors') or [])
        if spec.get('namespaceSelector'):
            selectors.append(spec['namespaceSelector'])
        selectors += [{'matchLabels': {'kubernetes.io/metadata.name': n}} for n in spec.get('namespaces') or []]
        return sorted(ns['metadata']['name'] for ns in self.api.store.list(NAMESPACES)
                      if not ns['metadata'].get('deletionTimestamp')
                      and any(selector_matches(s, ns['metadata'].get('labels')) for s in selectors))

    async def reconcile(self, key, namespace, name):
        ces = self.api.store.get(CLUSTER_EXTERNAL_SECRETS, None, name)
        if ces is None:
            uid = self.uids.pop(name, None)
            # Its ExternalSecrets go with it (cluster-scoped owner, namespaced dependents).
            for es in self.api.store.list(EXTERNAL_SECRETS):
                if uid and self._owned(es, name, uid):
                    self._delete(es['metadata']['namespace'], es['metadata']['name'], name, uid)
            return None
        if not eso_available(self.api) or ces['metadata'].get('deletionTimestamp'):
            return None
        uid = ces['metadata']['uid']
        self.uids[name] = uid
        spec = ces.get('spec') or {}
        status = copy.deepcopy(ces.get('status') or {})
        es_name = spec.get('externalSecretName') or name
        provisioned = status.get('provisionedNamespaces') or []
        if status.get('externalSecretName') and status['externalSecretName'] != es_name:
            for target in provisioned:
                self._delete(target, status['externalSecretName'], name, uid)
        targets = self._targets(spec)
        for target in provisioned:
            if target not in targets:
                self._delete(target, es_name, name, uid)
        failed, done = {}, []
        for target in targets:
            try:
                self._provision(ces, target, es_name)
            except (ApiError, _SyncFailed) as exc:
                failed[target] = exc.message if isinstance(exc, _SyncFailed) else \
                    'could not create or update ExternalSecret: {0}'.format(exc.status().get('message'))
                continue
            done.append(target)
        condition = {'type': 'Ready', 'status': 'True'} if not failed else \
            {'type': 'Ready', 'status': 'False', 'message': 'one or more namespaces failed'}
        status.update(externalSecretName=es_name, provisionedNamespaces=done, conditions=[condition],
                      failedNamespaces=[{'namespace': n, 'reason': r} for n, r in sorted(failed.items())])
        if not failed:
            status.pop('failedNamespaces')
        if status != (ces.get('status') or {}):
            rtype = self.api.registry.get(GROUP, 'v1', 'clusterexternalsecrets')
            self.api.replace(rtype, None, name, {**self.api.served_as(rtype, ces), 'status': status}, MANAGER,
                             subresource='status')
        try:
            return parse_duration(spec.get('refreshTime') or DEFAULT_NAMESPACE_REFRESH) or None
        except ValueError:
            return parse_duration(DEFAULT_NAMESPACE_REFRESH)

    def _provision(self, ces, namespace, es_name):
        rtype = self.api.registry.get(GROUP, 'v1', 'externalsecrets')
        spec = ces.get('spec') or {}
        metadata = spec.get('externalSecretMetadata') or {}
        existing = self.api.store.get(EXTERNAL_SECRETS, namespace, es_name)
        if existing is not None and not self._owned(existing, ces['metadata']['name']):
            raise _SyncFailed('external secret already exists in namespace')
        owner = {'apiVersion': GROUP + '/v1', 'kind': 'ClusterExternalSecret', 'name': ces['metadata']['name'],
                 'uid': ces['metadata']['uid'], 'controller': True, 'blockOwnerDeletion': True}
        if existing is None:
            meta = {'name': es_name, 'namespace': namespace, 'ownerReferences': [owner]}
            for field in ('labels', 'annotations'):
                if metadata.get(field):
                    meta[field] = dict(metadata[field])
            self.api.create(rtype, namespace, {'metadata': meta, 'spec': copy.deepcopy(spec.get(
                'externalSecretSpec') or {})}, MANAGER)
            return
        body = self.api.served_as(rtype, existing)
        body['spec'] = copy.deepcopy(spec.get('externalSecretSpec') or {})
        for field in ('labels', 'annotations'):
            if metadata.get(field):
                body['metadata'][field] = dict(metadata[field])
            else:
                body['metadata'].pop(field, None)
        body['metadata']['ownerReferences'] = [owner]
        if body != self.api.served_as(rtype, existing):
            self.api.replace(rtype, namespace, es_name, body, MANAGER)


def controllers(api, requests=None):
    """ESO's SecretStore/ClusterSecretStore, ExternalSecret and ClusterExternalSecret controllers, counting Vault
    requests in `requests`."""
    if api.signer is None:
        return []
    requests = requests if requests is not None else VaultRequests()
    return [SecretStoreController(api, requests), ExternalSecretController(api, requests),
            ClusterExternalSecretController(api, requests)]
