"""Longhorn objects as longhorn-manager keeps them, for the fake Kubernetes API of the longhorn_* module tests."""

import json

import fake_kube

NAMESPACE = 'longhorn-system'


def volume(name, claim=None, size='1073741824', replicas=2, state='attached', robustness='healthy', **status):
    kubernetes_status = {}
    if claim:
        namespace, pvc = claim.split('/')
        kubernetes_status = {'namespace': namespace, 'pvcName': pvc, 'pvName': name, 'pvStatus': 'Bound'}
    return {'apiVersion': fake_kube.LONGHORN_API, 'kind': 'Volume', 'metadata': {'name': name, 'namespace': NAMESPACE},
            'spec': {'size': size, 'numberOfReplicas': replicas, 'frontend': 'blockdev'},
            'status': dict({'state': state, 'robustness': robustness, 'kubernetesStatus': kubernetes_status}, **status)}


def replica(name, volume_name, node, state='running', failed_at=''):
    return {'apiVersion': fake_kube.LONGHORN_API, 'kind': 'Replica', 'metadata': {'name': name, 'namespace': NAMESPACE},
            'spec': {'volumeName': volume_name, 'nodeID': node, 'failedAt': failed_at},
            'status': {'currentState': state}}


def backup(name, volume_name, created, state='Completed', claim=None, volume_size='1073741824'):
    labels = {}
    if claim:
        namespace, pvc = claim.split('/')
        labels['KubernetesStatus'] = json.dumps({'namespace': namespace, 'pvcName': pvc})
    return {'apiVersion': fake_kube.LONGHORN_API, 'kind': 'Backup',
            'metadata': {'name': name, 'namespace': NAMESPACE,
                         'labels': {'backup-volume': volume_name, 'backup-target': 'default'}},
            'spec': {'snapshotName': name, 'labels': labels},
            'status': {'state': state, 'backupCreatedAt': created, 'volumeName': volume_name, 'volumeSize': volume_size,
                       'size': '2097152', 'labels': labels,
                       'url': '{0}?backup={1}&volume={2}'.format(fake_kube.BACKUP_TARGET_URL, name, volume_name)}}


def backup_volume(name, volume_name):
    return {'apiVersion': fake_kube.LONGHORN_API, 'kind': 'BackupVolume', 'metadata': {'name': name, 'namespace': NAMESPACE},
            'spec': {'backupTargetName': 'default', 'volumeName': volume_name}, 'status': {}}
