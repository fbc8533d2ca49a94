"""A small in-memory Kubernetes API behind the kubernetes library's DynamicClient: discovery of the kinds it
serves, get/list, server-side apply (a merge; a dry run stores nothing) and delete, with metadata the server
keeps. Applies are answered the way Flux's controllers and the Deployment controller would settle them
(Deployments Available, CRDs Established, sources fetched, Kustomizations applied), but for the kinds in
`stalled`, which keep no status."""

import copy
import datetime
import itertools

from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from ansible_collections.ephemeral.castle.plugins.module_utils import kube

HOST = 'https://kube.test:6443'
REVISION = 'main@sha1:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c'
SERVED = {
    ('v1', 'Namespace'): False, ('v1', 'ConfigMap'): True, ('v1', 'Secret'): True,
    ('apps/v1', 'Deployment'): True, ('apiextensions.k8s.io/v1', 'CustomResourceDefinition'): False,
}
LONGHORN_API = 'longhorn.io/v1beta2'
LONGHORN_KINDS = ('Volume', 'Replica', 'Snapshot', 'Backup', 'BackupVolume', 'BackupTarget')
BACKUP_TARGET_URL = 's3://castle-backups@us-east-1/'
FLUX_KINDS = {('source.toolkit.fluxcd.io/v1', 'GitRepository'), ('kustomize.toolkit.fluxcd.io/v1', 'Kustomization'),
              ('helm.toolkit.fluxcd.io/v2', 'HelmRelease')}


class _Answer(dict):
    def to_dict(self):
        return copy.deepcopy(dict(self))


class _Resource(object):
    def __init__(self, api_version, kind, namespaced):
        self.api_version, self.kind, self.namespaced = api_version, kind, namespaced
        self.name = kind.lower() + 's'


def merged(old, new):
    """new over old, dicts merged key by key (what a server-side apply of one manager comes to here)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return copy.deepcopy(new)
    out = copy.deepcopy(old)
    for key, value in new.items():
        out[key] = merged(old.get(key), value)
    return out


class FakeKube(object):

    def __init__(self):
        self.objects = {}
        self.served = dict(SERVED)
        self.stalled = set()
        self.applied = []
        self._uids = itertools.count(1)
        # The flux kinds are served once Flux's CRDs are applied; a cluster may start with them.
        self.resources = self

    # --------------------------------------------------------- DynamicClient

    def client(self, api_client, cache_file=None):
        assert api_client.configuration.host == HOST
        return self

    def get(self, resource=None, api_version=None, kind=None, name=None, namespace=None, label_selector=None,
            **_options):
        if resource is None:  # resources.get(api_version=, kind=)
            if (api_version, kind) not in self.served:
                raise ResourceNotFoundError('no {0} in {1}'.format(kind, api_version))
            return _Resource(api_version, kind, self.served[(api_version, kind)])
        if name is None:
            wanted = dict(term.split('=', 1) for term in label_selector.split(',')) if label_selector else {}
            items = [o for k, o in sorted(self.objects.items())
                     if k[:2] == (resource.api_version, resource.kind) and namespace in (None, k[2])
                     and all((o['metadata'].get('labels') or {}).get(key) == value for key, value in wanted.items())]
            return _Answer(items=copy.deepcopy(items))
        found = self.objects.get((resource.api_version, resource.kind, namespace, name))
        if found is None:
            raise ApiException(status=404, reason='Not Found')
        return _Answer(found)

    def invalidate_cache(self):
        """Discovery read again: nothing to do, the fake always knows what it serves."""

    def server_side_apply(self, resource, body, name, namespace, field_manager, force_conflicts, dry_run=None,
                          **_options):
        key = (resource.api_version, resource.kind, namespace, name)
        before = self.objects.get(key)
        after = merged(before or {}, body)
        meta = after['metadata']
        if before is None:
            meta.update(uid='uid-{0}'.format(next(self._uids)), resourceVersion='1', generation=1)
        elif {k: v for k, v in after.items() if k not in ('metadata', 'status')} != \
                {k: v for k, v in before.items() if k not in ('metadata', 'status')}:
            meta['generation'] = before['metadata']['generation'] + 1
        if dry_run:
            return _Answer(after)
        self.applied.append((field_manager, key))
        self.objects[key] = after
        if after['kind'] not in self.stalled:
            self.settle(after)
        return _Answer(after)

    def delete(self, resource, name, namespace=None, **_options):
        if self.objects.pop((resource.api_version, resource.kind, namespace, name), None) is None:
            raise ApiException(status=404, reason='Not Found')

    # ----------------------------------------------------------- controllers

    def settle(self, obj):
        """Status as the cluster's controllers would write it for obj."""
        kind, meta = obj['kind'], obj['metadata']
        generation = meta.get('generation', 1)
        if kind == 'CustomResourceDefinition':
            obj['status'] = {'conditions': [{'type': 'Established', 'status': 'True'}]}
            version = obj['spec']['versions'][0]['name']
            self.served[(obj['spec']['group'] + '/' + version, obj['spec']['names']['kind'])] = True
        elif kind == 'Deployment':
            obj['status'] = {'observedGeneration': generation, 'updatedReplicas': 1,
                             'conditions': [{'type': 'Available', 'status': 'True'}]}
        elif (obj['apiVersion'], kind) in FLUX_KINDS:
            status = {'observedGeneration': generation, 'conditions': [
                {'type': 'Ready', 'status': 'True', 'reason': 'Succeeded', 'message': 'Applied revision: ' + REVISION}]}
            if kind == 'GitRepository':
                status['artifact'] = {'revision': REVISION}
            if kind == 'Kustomization':
                status['lastAppliedRevision'] = REVISION
            requested = (meta.get('annotations') or {}).get('reconcile.fluxcd.io/requestedAt')
            if requested:
                status['lastHandledReconcileAt'] = requested
            obj['status'] = status
        elif obj['apiVersion'] == LONGHORN_API:
            self.settle_longhorn(obj)
        elif kind == 'PersistentVolumeClaim' and (obj.get('spec') or {}).get('volumeName'):
            obj['status'] = {'phase': 'Bound'}

    # -------------------------------------------------------------- Longhorn

    def serve_longhorn(self):
        """Serve Longhorn's kinds and the core kinds a restore writes, with the BackupTarget `default` available."""
        for kind in LONGHORN_KINDS:
            self.served[(LONGHORN_API, kind)] = True
        self.served[('v1', 'PersistentVolume')] = False
        self.served[('v1', 'PersistentVolumeClaim')] = True
        self.put({'apiVersion': LONGHORN_API, 'kind': 'BackupTarget',
                  'metadata': {'name': 'default', 'namespace': 'longhorn-system'},
                  'spec': {'backupTargetURL': BACKUP_TARGET_URL}, 'status': {'available': True}})

    def settle_longhorn(self, obj):
        """Status as longhorn-manager writes it once done: snapshots ready, backups Completed (or Error for a
        volume in `backup_errors`), a backup target synced on request (unavailable while `store_down` says why),
        volumes from a backup restored and detached (or failing with a RestoreFailure for one in `restore_errors`)."""
        kind, meta, spec = obj['kind'], obj['metadata'], obj.get('spec') or {}
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        if kind == 'Snapshot':
            obj['status'] = {'readyToUse': True, 'creationTime': stamp}
        elif kind == 'Backup':
            volume_name = meta['labels']['backup-volume']
            volume = self.find(LONGHORN_API, 'Volume', volume_name, meta['namespace']) or {}
            error = getattr(self, 'backup_errors', {}).get(volume_name)
            obj['status'] = {'state': 'Error' if error else 'Completed', 'progress': 0 if error else 100,
                             'url': '{0}?backup={1}&volume={2}'.format(BACKUP_TARGET_URL, meta['name'], volume_name),
                             'snapshotName': spec.get('snapshotName'), 'snapshotCreatedAt': stamp,
                             'backupCreatedAt': '' if error else stamp, 'size': '' if error else '2097152',
                             'volumeName': volume_name, 'volumeSize': (volume.get('spec') or {}).get('size', ''),
                             'labels': dict(spec.get('labels') or {})}
            if error:
                obj['status']['error'] = error
        elif kind == 'BackupTarget' and spec.get('syncRequestedAt'):
            # A sync asked for: the store reached again (unless `store_down` names why not).
            down = getattr(self, 'store_down', None)
            obj['status'] = dict(obj.get('status') or {}, available=not down, lastSyncedAt=spec['syncRequestedAt'],
                                 conditions=[{'type': 'Unavailable', 'status': 'True', 'reason': 'Unavailable',
                                              'message': down}] if down else [])
        elif kind == 'Volume' and spec.get('fromBackup'):
            error = getattr(self, 'restore_errors', {}).get(meta['name'])
            obj['status'] = {'state': 'attached' if error else 'detached', 'robustness': 'unknown',
                             'restoreRequired': bool(error)}
            if error:
                obj['status']['conditions'] = [{'type': 'Restore', 'status': 'False', 'reason': 'RestoreFailure',
                                                'message': error}]

    def put(self, obj):
        """Store obj as the server would hold it (for a test's starting state)."""
        obj = copy.deepcopy(obj)
        obj['metadata'].setdefault('uid', 'uid-{0}'.format(next(self._uids)))
        obj['metadata'].setdefault('generation', 1)
        self.served.setdefault((obj['apiVersion'], obj['kind']), 'namespace' in obj['metadata'])
        self.objects[(obj['apiVersion'], obj['kind'], obj['metadata'].get('namespace'), obj['metadata']['name'])] = obj
        return obj

    def find(self, api_version, kind, name, namespace=None):
        return self.objects.get((api_version, kind, namespace, name))


def install(monkeypatch):
    """A fake API server every KubeClient of the test talks to (connect with host=HOST)."""
    fake = FakeKube()
    monkeypatch.setattr(kube, 'DynamicClient', fake.client)
    return fake
