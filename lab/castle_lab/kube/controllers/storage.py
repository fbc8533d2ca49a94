"""Dynamic provisioning as the PersistentVolume controller and a CSI provisioner do it: a claim whose
StorageClass names a provisioner the lab knows gets a PersistentVolume and is Bound; a claim naming its
PersistentVolume (spec.volumeName) binds to it when it is free or reserved for the claim; others stay Pending. Whether a
Longhorn volume then attaches to a pod's node is longhorn.py's."""

import copy

from ..api.objects import now
from . import longhorn
from .charts import LONGHORN_PROVISIONER
from .manager import Controller

CLAIMS = ('', 'persistentvolumeclaims')
VOLUMES = ('', 'persistentvolumes')
STORAGE_CLASSES = ('storage.k8s.io', 'storageclasses')
PODS = ('', 'pods')
DEFAULT_CLASS = 'storageclass.kubernetes.io/is-default-class'
KNOWN_PROVISIONERS = (LONGHORN_PROVISIONER,)
MANAGER = 'kube-controller-manager'


def default_class(classes):
    """The default StorageClass; with several, the newest, as the API server picks."""
    defaults = [c for c in classes if (c['metadata'].get('annotations') or {}).get(DEFAULT_CLASS) == 'true']
    defaults.sort(key=lambda c: (c['metadata']['creationTimestamp'], c['metadata']['name']))
    return defaults[-1] if defaults else None


def requested_storage(claim):
    spec = claim.get('spec') or {}
    return ((spec.get('resources') or {}).get('requests') or {}).get('storage') if spec.get('accessModes') else None


def volume_for(claim, storage_class, name):
    """The PersistentVolume a CSI provisioner creates for the claim, already bound to it."""
    spec = claim['spec']
    return {'metadata': {'name': name, 'annotations': {
                'pv.kubernetes.io/provisioned-by': storage_class['provisioner'],
                'volume.kubernetes.io/provisioner-deletion-secret-name': '',
                'volume.kubernetes.io/provisioner-deletion-secret-namespace': ''}},
            'spec': {'capacity': {'storage': spec['resources']['requests']['storage']},
                     'accessModes': list(spec['accessModes']),
                     'claimRef': {'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim',
                                  'namespace': claim['metadata']['namespace'], 'name': claim['metadata']['name'],
                                  'uid': claim['metadata']['uid'],
                                  'resourceVersion': claim['metadata']['resourceVersion']},
                     'persistentVolumeReclaimPolicy': storage_class.get('reclaimPolicy') or 'Delete',
                     'storageClassName': storage_class['metadata']['name'],
                     'volumeMode': spec.get('volumeMode') or 'Filesystem',
                     'csi': {'driver': storage_class['provisioner'], 'volumeHandle': name,
                             'fsType': (storage_class.get('parameters') or {}).get('fsType', 'ext4'),
                             'volumeAttributes': dict(storage_class.get('parameters') or {})}}}


class VolumeBinder(Controller):
    """Binds claims to freshly provisioned volumes; deletes a Delete-policy volume with its claim."""

    name = 'volume-binder'
    watches = (CLAIMS, STORAGE_CLASSES, VOLUMES)

    def notify(self, key, event, obj):
        if key == STORAGE_CLASSES:
            for claim in self.api.store.list(CLAIMS):
                if (claim.get('status') or {}).get('phase') != 'Bound':
                    self.enqueue(CLAIMS, claim['metadata']['namespace'], claim['metadata']['name'])
        elif key == VOLUMES:
            # A claim waiting for the volume it names.
            for claim in self.api.store.list(CLAIMS):
                if (claim.get('spec') or {}).get('volumeName') == obj['metadata']['name'] and \
                        (claim.get('status') or {}).get('phase') != 'Bound':
                    self.enqueue(CLAIMS, claim['metadata']['namespace'], claim['metadata']['name'])
        elif key == CLAIMS and event == 'DELETED':
            self.release_volume(obj)
        elif key == PODS:
            # A pod using a WaitForFirstConsumer claim lets it bind.
            for volume in (obj.get('spec') or {}).get('volumes') or []:
                claim = volume.get('persistentVolumeClaim')
                if claim:
                    self.enqueue(CLAIMS, obj['metadata']['namespace'], claim['claimName'])
        else:
            super().notify(key, event, obj)

    def reconcile(self, key, namespace, name):
        if key != CLAIMS:
            return None
        claim = self.api.store.get(CLAIMS, namespace, name)
        if claim is None or claim['metadata'].get('deletionTimestamp'):
            return None
        claim_type = self.api.registry.get('', 'v1', 'persistentvolumeclaims')
        claim = self.api.served_as(claim_type, claim)
        if (claim.get('status') or {}).get('phase') == 'Bound':
            return None
        if claim['spec'].get('volumeName'):
            self.bind_named(claim_type, claim)
            return None
        storage_class = self.storage_class(claim_type, claim) if requested_storage(claim) else None
        if storage_class is None or storage_class['provisioner'] not in KNOWN_PROVISIONERS or not self.may_bind(
                storage_class, claim):
            self.set_phase(claim_type, claim, {'phase': 'Pending'})
            return None
        self.bind(claim_type, claim, storage_class)
        return None

    def storage_class(self, claim_type, claim):
        """The claim's StorageClass; an unset class becomes the default one, as retroactive assignment does."""
        wanted = claim['spec'].get('storageClassName')
        if wanted is None:
            found = default_class(self.api.store.list(STORAGE_CLASSES))
            if found is None:
                return None
            claim['spec']['storageClassName'] = found['metadata']['name']
            claim.update(self.api.replace(claim_type, claim['metadata']['namespace'], claim['metadata']['name'],
                                          claim, MANAGER))
            return found
        return self.api.store.get(STORAGE_CLASSES, None, wanted) if wanted else None

    def may_bind(self, storage_class, claim):
        """Immediate binding, or WaitForFirstConsumer with a pod that mounts the claim."""
        if storage_class.get('volumeBindingMode', 'Immediate') == 'Immediate':
            return True
        return any(v.get('persistentVolumeClaim', {}).get('claimName') == claim['metadata']['name']
                   for pod in self.api.store.list(PODS, claim['metadata']['namespace'])
                   for v in (pod.get('spec') or {}).get('volumes') or [])

    def bind(self, claim_type, claim, storage_class):
        volume_type = self.api.registry.get('', 'v1', 'persistentvolumes')
        volume_name = 'pvc-' + claim['metadata']['uid']
        if self.api.store.get(VOLUMES, None, volume_name) is None:
            volume = self.api.create(volume_type, None, volume_for(claim, storage_class, volume_name), MANAGER)
            self.api.replace(volume_type, None, volume_name, dict(volume, status={
                'phase': 'Bound', 'lastPhaseTransitionTime': now()}), MANAGER, subresource='status')
        claim = copy.deepcopy(claim)
        claim['spec']['volumeName'] = volume_name
        annotations = claim['metadata'].setdefault('annotations', {})
        annotations.update({'pv.kubernetes.io/bind-completed': 'yes', 'pv.kubernetes.io/bound-by-controller': 'yes',
                            'volume.beta.kubernetes.io/storage-provisioner': storage_class['provisioner'],
                            'volume.kubernetes.io/storage-provisioner': storage_class['provisioner']})
        claim = self.api.replace(claim_type, claim['metadata']['namespace'], claim['metadata']['name'], claim, MANAGER)
        self.set_phase(claim_type, claim, {
            'phase': 'Bound', 'accessModes': list(claim['spec']['accessModes']),
            'capacity': {'storage': claim['spec']['resources']['requests']['storage']}})

    def bind_named(self, claim_type, claim):
        """A claim that names its PersistentVolume binds to it when the volume exists and is free or reserved for
        this claim (its claimRef); otherwise it stays Pending."""
        volume = self.api.store.get(VOLUMES, None, claim['spec']['volumeName'])
        meta = claim['metadata']
        ref = ((volume or {}).get('spec') or {}).get('claimRef') or {}
        if volume is None or (ref and (ref.get('namespace'), ref.get('name')) != (meta['namespace'], meta['name'])) \
                or (ref.get('uid') and ref['uid'] != meta['uid']):
            self.set_phase(claim_type, claim, {'phase': 'Pending'})
            return
        volume_type = self.api.registry.get('', 'v1', 'persistentvolumes')
        body = self.api.served_as(volume_type, volume)
        body['spec']['claimRef'] = {'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim',
                                    'namespace': meta['namespace'], 'name': meta['name'], 'uid': meta['uid'],
                                    'resourceVersion': meta['resourceVersion']}
        if body['spec'] != volume['spec']:
            body = self.api.replace(volume_type, None, volume['metadata']['name'], body, MANAGER)
        if (body.get('status') or {}).get('phase') != 'Bound':
            self.api.replace(volume_type, None, volume['metadata']['name'], dict(body, status={
                'phase': 'Bound', 'lastPhaseTransitionTime': now()}), MANAGER, subresource='status')
        claim = copy.deepcopy(claim)
        claim['metadata'].setdefault('annotations', {})['pv.kubernetes.io/bind-completed'] = 'yes'
        claim = self.api.replace(claim_type, meta['namespace'], meta['name'], claim, MANAGER)
        self.set_phase(claim_type, claim, {'phase': 'Bound',
                                           'accessModes': list(volume['spec'].get('accessModes') or []),
                                           'capacity': dict(volume['spec'].get('capacity') or {})})

    def set_phase(self, claim_type, claim, status):
        if claim.get('status') != status:
            meta = claim['metadata']
            self.api.replace(claim_type, meta['namespace'], meta['name'], dict(claim, status=status), MANAGER,
                             subresource='status')

    def release_volume(self, claim):
        """A deleted claim's volume goes too when its reclaim policy is Delete (the provisioner deletes it)."""
        volume_name = (claim.get('spec') or {}).get('volumeName')
        volume = self.api.store.get(VOLUMES, None, volume_name) if volume_name else None
        if volume and volume['spec'].get('persistentVolumeReclaimPolicy') == 'Delete':
            self.api.store.delete(VOLUMES, None, volume_name)


def controllers(api):
    return [VolumeBinder(api), *longhorn.controllers(api)]
