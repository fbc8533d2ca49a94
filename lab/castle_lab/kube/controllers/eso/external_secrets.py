"""ExternalSecrets synced each refresh interval from Vault into a Secret, and ClusterExternalSecrets that put an
ExternalSecret into every namespace they select."""

import base64
import copy
import json
import time

from ...api.errors import ApiError
from ...api.objects import now
from ...api.selectors import selector_matches
from ..flux.objects import parse_duration
from .common import (ANNOTATION_DATA_HASH, CLUSTER_EXTERNAL_SECRETS, CLUSTER_STORES, DEFAULT_NAMESPACE_REFRESH,
                     DEFAULT_REFRESH, ERR_PROVIDER_DATA, ERR_UPDATE_SECRET, EXTERNAL_SECRETS, GROUP, LABEL_MANAGED,
                     LABEL_OWNER, MANAGER, MSG_SYNCED, NAMESPACES, SECRETS, STORE_KEYS, EsoController, ProviderError,
                     SyncFailed, eso_available, eso_condition, object_hash, resource_version)
from .vault import VaultSession, vault_config


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
        except SyncFailed as exc:
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
            raise SyncFailed('{0}: {1}'.format(ERR_PROVIDER_DATA, exc)) from None

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
                    raise SyncFailed('{0}: the desired secret {1} was not found. With creationPolicy=Merge the '
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
                        raise SyncFailed('{0}: Object {1}/{2} is already owned by another {3} controller {4}'.format(
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
            raise SyncFailed('{0}: {1}'.format(ERR_UPDATE_SECRET, exc.status().get('message', exc))) from None
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
            except (ApiError, SyncFailed) as exc:
                failed[target] = exc.message if isinstance(exc, SyncFailed) else \
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
            raise SyncFailed('external secret already exists in namespace')
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
