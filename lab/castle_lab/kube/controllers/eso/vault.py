"""External Secrets' vault provider: a store's configuration read from the cluster, the HTTP session it logs
in and reads KV with (Kubernetes auth: a TokenRequest for the store's ServiceAccount, login, lookup, reads,
revoke), and the count of every request sent, reported on the control API (GET /eso/vault-requests)."""

import asyncio
import base64
import collections
import json
import logging
import os
import ssl
import time
import urllib.parse

import aiohttp
from aiohttp import web

from .common import CONFIG_MAPS, SECRETS, SERVICE_ACCOUNTS, TOKEN_SECONDS, VAULT_TIMEOUT, ProviderError

log = logging.getLogger(__name__)


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
