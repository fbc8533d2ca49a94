"""What External Secrets Operator's controllers share: names, conditions, hashes, and the reconcile loop that
acts only while the external-secrets controller Deployment is Available in the cluster."""

import asyncio
import hashlib
import json

from ...api.objects import now
from ..flux.common import DEPLOYMENTS, replace_status
from ..manager import Controller


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


class SyncFailed(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


