"""Longhorn's backups against the lab's S3 store, in a lab of this module's own (kube and s3) so its Kubernetes API
can be started afresh: Longhorn installed from its chart with defaultBackupStore values naming the store, bytes
written into a claim through the control API, backed up (checked in the bucket with an S3 client), the volume deleted,
restored from the backup under a PersistentVolume and claim bound to it, and read back equal; a store that is down
fails a backup with the store's reason and makes the BackupTarget unavailable; a new Kubernetes API whose Longhorn
reads the same store lists the backups; the only replica's node lost faults an attached volume."""

import base64
import json
import urllib.error
import urllib.request
import uuid

import minio
import pytest
import urllib3
import yaml
from castle_lab.kube.controllers import charts, longhorn_backups
from conftest import LAB_NET, Lab, crashes, spare_net
from kube_helpers import PRIVILEGED_NAMESPACE, wait_for

pytestmark = pytest.mark.lab

LONGHORN = 'longhorn-system'
CREDENTIALS = 'lab-s3'
APPLY = ('apply', '--server-side', '--field-manager=castle-test', '--force-conflicts', '-f', '-')


class LonghornLab:
    """The module's lab and what the tests do through it: kubectl, the control API, the store."""

    def __init__(self, lab):
        self.lab = lab
        self.path = 'lab-' + uuid.uuid4().hex[:6]

    def up(self, *services):
        self.lab.castle_lab('up', *services)
        info = self.lab.info()
        self.env = dict(self.lab.env, **info['env'])
        self.s3 = info['services']['s3']

    def kubectl(self, *args):
        return self.lab.run('kubectl', *args, env=self.env, timeout=60)

    def apply_text(self, text):
        path = self.lab.dir / 'input-{0}.yaml'.format(uuid.uuid4().hex[:6])
        path.write_text(text)
        return self.lab.run('kubectl', *APPLY[:-1], str(path), env=self.env, timeout=60)

    def apply(self, *objects):
        return self.apply_text(yaml.safe_dump_all(objects))

    def get(self, kind, name=None, namespace=LONGHORN):
        args = ['get', kind, '-n', namespace, '-o', 'json'] + ([name, '--ignore-not-found'] if name else [])
        out = self.kubectl(*args).stdout
        return json.loads(out) if out.strip() else None

    def items(self, kind):
        return self.get(kind)['items']

    def control(self, path, body=None, method=None):
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.env['CASTLE_LAB_KUBE_CONTROL'] + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def outage(self, down):
        request = urllib.request.Request(self.env['CASTLE_LAB_S3_CONTROL'] + '/outage',
                                         method='PUT' if down else 'DELETE')
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)['down']

    def bucket(self):
        http = urllib3.PoolManager(ca_certs=self.env['CASTLE_S3_CA'], retries=False)
        return minio.Minio(self.env['CASTLE_S3_URL'].split('://', 1)[1], access_key=self.env['CASTLE_S3_ACCESS_KEY'],
                           secret_key=self.env['CASTLE_S3_SECRET_KEY'], region=self.env['CASTLE_S3_REGION'],
                           http_client=http)

    @property
    def target_url(self):
        return 's3://{0}@{1}/{2}/'.format(self.env['CASTLE_S3_BUCKET'], self.env['CASTLE_S3_REGION'], self.path)

    def install_longhorn(self):
        """Two more Ready nodes, Longhorn's chart with defaultBackupStore on the lab's store, its credential
        Secret as the operator creates it."""
        for name in ('lh-1', 'lh-2'):
            self.apply({'apiVersion': 'v1', 'kind': 'Node', 'metadata': {'name': name}})
            status = {'status': {'conditions': [{'type': 'Ready', 'status': 'True', 'reason': 'KubeletReady',
                                                 'message': 'kubelet is posting ready status'}]}}
            self.kubectl('patch', 'node', name, '--subresource=status', '--type=merge', '-p', json.dumps(status))
        chart = charts.CHARTS['longhorn']
        crds = charts.crds(chart, {})
        self.apply(*crds)
        self.kubectl('wait', '--for=condition=Established', '--timeout=60s',
                     *['crd/' + c['metadata']['name'] for c in crds])
        self.apply({'apiVersion': 'v1', 'kind': 'Namespace',
                    'metadata': {'name': LONGHORN, 'labels': PRIVILEGED_NAMESPACE}})
        ca = pathlib_text(self.env['CASTLE_S3_CA'])
        self.apply({'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': CREDENTIALS, 'namespace': LONGHORN},
                    'data': {key: base64.b64encode(value.encode()).decode() for key, value in {
                        'AWS_ACCESS_KEY_ID': self.env['CASTLE_S3_ACCESS_KEY'],
                        'AWS_SECRET_ACCESS_KEY': self.env['CASTLE_S3_SECRET_KEY'],
                        'AWS_ENDPOINTS': self.env['CASTLE_S3_URL'], 'AWS_CERT': ca}.items()}})
        values = {'defaultBackupStore': {'backupTarget': self.target_url, 'backupTargetCredentialSecret': CREDENTIALS,
                                         'pollInterval': 1}}
        self.apply(*charts.render(chart, '1.10.1', 'longhorn', LONGHORN, values, ('flux-system', 'longhorn')))
        wait_for(lambda: ((self.get('backuptargets.longhorn.io', 'default') or {}).get('status') or {}).get(
            'available'), 'the default BackupTarget available', timeout=30)

    def claim(self, name, replicas=2):
        self.apply({'apiVersion': 'storage.k8s.io/v1', 'kind': 'StorageClass',
                    'metadata': {'name': 'longhorn-{0}'.format(replicas)}, 'provisioner': 'driver.longhorn.io',
                    'parameters': {'numberOfReplicas': str(replicas), 'staleReplicaTimeout': '30'}},
                   {'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': {'name': name, 'namespace': 'default'},
                    'spec': {'accessModes': ['ReadWriteOnce'], 'storageClassName': 'longhorn-{0}'.format(replicas),
                             'resources': {'requests': {'storage': '8Mi'}}}})
        return wait_for(lambda: (self.get('pvc', name, 'default') or {}).get('spec', {}).get('volumeName'),
                        'claim {0} bound'.format(name))

    def data(self, claim, payload=None):
        return self.control('/volumes/default/{0}/data'.format(claim), payload,
                            method='GET' if payload is None else 'PUT')

    def volume(self, name):
        return self.get('volumes.longhorn.io', name) or {}

    def backup(self, volume, name):
        """A snapshot of the volume and its backup; the Backup once it ends (Completed or Error)."""
        self.apply({'apiVersion': 'longhorn.io/v1beta2', 'kind': 'Snapshot',
                    'metadata': {'name': name + '-snap', 'namespace': LONGHORN},
                    'spec': {'volume': volume, 'createSnapshot': True}},
                   {'apiVersion': 'longhorn.io/v1beta2', 'kind': 'Backup',
                    'metadata': {'name': name, 'namespace': LONGHORN, 'labels': {'backup-volume': volume}},
                    'spec': {'snapshotName': name + '-snap', 'labels': {'app': 'test'}}})
        return wait_for(lambda: self.ended(name), 'backup {0} ended'.format(name), timeout=30)

    def ended(self, name):
        found = self.get('backups.longhorn.io', name) or {}
        return found if (found.get('status') or {}).get('state') in ('Completed', 'Error') else None


def pathlib_text(path):
    with open(path) as handle:
        return handle.read()


@pytest.fixture(scope='module')
def storage():
    net = spare_net(LAB_NET)
    lab = Lab('longhorn-lab-' + net, net, 'castle-claw-l' + net.split('.')[-1])
    lab.wipe()
    instance = LonghornLab(lab)
    instance.up('kube', 's3')
    instance.install_longhorn()
    yield instance
    crashed = crashes(lab.dir)
    lab.castle_lab('down')
    assert not crashed, 'tracebacks in the lab services\' logs: {0}'.format(crashed)


def test_bytes_survive_backup_volume_deletion_and_restore(storage):
    pv = storage.claim('keep')
    payload = b'castle-data-' + uuid.uuid4().hex.encode() + bytes(range(256)) * 12000  # more than one 2 MiB block
    storage.data('keep', payload)
    backup = storage.backup(pv, 'backup-keep')
    assert backup['status']['state'] == 'Completed', backup['status']
    url = backup['status']['url']
    assert url == '{0}?backup=backup-keep&volume={1}'.format(storage.target_url, pv)
    assert backup['status']['volumeName'] == pv and backup['status']['progress'] == 100

    # In the bucket, in backupstore's layout: the volume's config, the backup's, its blocks.
    base = longhorn_backups.volume_path(storage.path, pv)
    listed = storage.bucket().list_objects(storage.env['CASTLE_S3_BUCKET'], prefix=base, recursive=True)
    keys = {o.object_name for o in listed}
    assert base + 'volume.cfg' in keys and base + 'backups/backup_backup-keep.cfg' in keys
    assert len([k for k in keys if k.startswith(base + 'blocks/') and k.endswith('.blk')]) == 2
    wait_for(lambda: storage.volume(pv).get('status', {}).get('lastBackup') == 'backup-keep', 'lastBackup set')
    wait_for(lambda: storage.get('backupvolumes.longhorn.io', pv), 'the BackupVolume synced from the store')

    # The claim, its PersistentVolume and the Longhorn volume go; the data is only in the store now.
    storage.kubectl('delete', 'pvc', 'keep', '-n', 'default', '--wait=true', '--timeout=30s')
    wait_for(lambda: not storage.get('volumes.longhorn.io', pv), 'volume {0} deleted'.format(pv))
    with pytest.raises(urllib.error.HTTPError) as gone:
        storage.data('keep')
    assert gone.value.code == 404

    storage.apply({'apiVersion': 'longhorn.io/v1beta2', 'kind': 'Volume', 'metadata': {'name': pv, 'namespace': LONGHORN},
                   'spec': {'fromBackup': url, 'numberOfReplicas': 2, 'size': str(8 * 1024 * 1024),
                            'frontend': 'blockdev'}},
                  {'apiVersion': 'v1', 'kind': 'PersistentVolume', 'metadata': {'name': pv},
                   'spec': {'capacity': {'storage': '8Mi'}, 'accessModes': ['ReadWriteOnce'],
                            'persistentVolumeReclaimPolicy': 'Retain', 'storageClassName': 'longhorn-2',
                            'csi': {'driver': 'driver.longhorn.io', 'volumeHandle': pv, 'fsType': 'ext4'}}},
                  {'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': {'name': 'keep', 'namespace': 'default'},
                   'spec': {'accessModes': ['ReadWriteOnce'], 'storageClassName': 'longhorn-2', 'volumeName': pv,
                            'resources': {'requests': {'storage': '8Mi'}}}})
    wait_for(lambda: storage.volume(pv).get('status', {}).get('restoreRequired') is False, 'restore done', timeout=30)
    assert storage.data('keep') == payload
    claim = wait_for(lambda: storage.get('pvc', 'keep', 'default')['status'].get('phase') == 'Bound' and storage.get(
        'pvc', 'keep', 'default'), 'the claim bound to the restored volume')
    assert claim['spec']['volumeName'] == pv
    assert storage.volume(pv)['status']['kubernetesStatus']['pvcName'] == 'keep'


def test_a_store_that_is_down_fails_the_backup_and_the_target(storage):
    pv = storage.claim('down')
    storage.data('down', b'not backed up')
    assert storage.outage(True) is True
    try:
        backup = storage.backup(pv, 'backup-down')
        wait_for(lambda: not storage.get('backuptargets.longhorn.io', 'default')['status']['available'],
                 'the BackupTarget unavailable', timeout=15)
        target = storage.get('backuptargets.longhorn.io', 'default')
    finally:
        storage.outage(False)
    assert backup['status']['state'] == 'Error'
    assert 'Connection refused' in backup['status']['error'], backup['status']
    assert storage.target_url in backup['status']['error']
    condition = next(c for c in target['status']['conditions'] if c['type'] == 'Unavailable')
    assert condition['status'] == 'True' and 'Connection refused' in condition['message']
    wait_for(lambda: storage.get('backuptargets.longhorn.io', 'default')['status']['available'],
             'the BackupTarget available again', timeout=15)
    keys = list(storage.bucket().list_objects(storage.env['CASTLE_S3_BUCKET'],
                                              prefix=longhorn_backups.volume_path(storage.path, pv), recursive=True))
    assert not keys


def test_the_only_replica_lost_faults_an_attached_volume(storage):
    pv = storage.claim('lonely', replicas=1)
    replica = wait_for(lambda: [r for r in storage.items('replicas.longhorn.io') if r['spec']['volumeName'] == pv],
                       'the replica')[0]
    node = replica['spec']['nodeID']
    user = next(n for n in ('castle-lab-node', 'lh-1', 'lh-2') if n != node)
    storage.apply({'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'lonely-user', 'namespace': 'default'},
                   'spec': {'nodeName': user, 'containers': [{'name': 'app', 'image': 'busybox'}],
                            'volumes': [{'name': 'data', 'persistentVolumeClaim': {'claimName': 'lonely'}}]}})
    wait_for(lambda: storage.volume(pv).get('status', {}).get('robustness') == 'healthy', 'healthy while attached')
    storage.control('/node-ready', {'name': node, 'ready': False}, method='POST')
    try:
        wait_for(lambda: storage.volume(pv).get('status', {}).get('robustness') == 'faulted', 'faulted', timeout=15)
        with pytest.raises(urllib.error.HTTPError) as refused:
            storage.data('lonely')
        assert refused.value.code == 409
    finally:
        storage.control('/node-ready', {'name': node, 'ready': True}, method='POST')
    wait_for(lambda: storage.volume(pv).get('status', {}).get('robustness') == 'healthy', 'healthy again', timeout=15)


def test_a_new_longhorn_lists_the_backups_in_the_store(storage):
    pv = storage.claim('before')
    storage.data('before', b'made before the rebuild')
    assert storage.backup(pv, 'backup-before')['status']['state'] == 'Completed'
    # A Kubernetes API started afresh (a rebuilt cluster): none of the old objects, the same store.
    storage.lab.castle_lab('down', 'kube')
    storage.up('kube', 's3')
    assert not storage.kubectl('get', 'crd', 'backups.longhorn.io', '--ignore-not-found').stdout.strip()
    storage.install_longhorn()
    synced = wait_for(lambda: storage.ended('backup-before'), 'the backup synced from the store', timeout=20)
    assert synced['status']['state'] == 'Completed' and synced['status']['volumeName'] == pv
    assert synced['status']['url'] == '{0}?backup=backup-before&volume={1}'.format(storage.target_url, pv)
    backup_volume = storage.get('backupvolumes.longhorn.io', pv)
    assert backup_volume['status']['lastBackupName'] == 'backup-before'
