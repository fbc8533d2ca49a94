"""SecretStores and ClusterSecretStores, validated as ESO does: build a client (which logs in), look the token up
and check the KV mount."""

import copy

from .common import (CLUSTER_STORES, ERR_CLIENT, ERR_VALIDATE, MSG_STORE_VALID, STORES, STORE_REQUEUE, EsoController,
                     ProviderError, eso_available, eso_condition)
from .vault import VaultSession, vault_config


class _StoreInvalid(Exception):
    def __init__(self, reason, message):
        super().__init__(message)
        self.reason, self.message = reason, message


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
