"""The Longhorn modules against the lab: Longhorn's chart installed as Helm would, a BackupTarget on the lab's S3
store, a claim whose bytes the lab writes as its workload would; longhorn_volume_info reads the volume,
longhorn_backup backs it up (and keeps a recent backup), longhorn_restore brings the bytes back under the same claim
once the claim, its PersistentVolume and its Longhorn volume are gone, and a store that is down fails the backup
naming the target, creating nothing."""

import base64
import json
import pathlib
import urllib.error
import urllib.request
import uuid

import pytest
import yaml
from castle_lab.kube.controllers import charts
from harness import run_module
from kube_helpers import PRIVILEGED_NAMESPACE, kubectl, wait_for

pytestmark = pytest.mark.lab

LONGHORN = 'longhorn-system'
APPLY = ('apply', '--server-side', '--field-manager=castle-test', '--force-conflicts', '-f', '-')
CREDENTIALS = 'castle-backup-s3'


def kubectl_json(lab, kenv, *args):
    return json.loads(kubectl(lab, kenv, *args, '-o', 'json').stdout)


def volume_data(kenv, namespace, claim, data=None):
    """The claim's bytes through the kube control API (what the workload mounting it would read or write)."""
    url = '{0}/volumes/{1}/{2}/data'.format(kenv['CASTLE_LAB_KUBE_CONTROL'], namespace, claim)
    request = urllib.request.Request(url, data=data, method='GET' if data is None else 'PUT')
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def s3_outage(kenv, down):
    request = urllib.request.Request(kenv['CASTLE_LAB_S3_CONTROL'] + '/outage', method='PUT' if down else 'DELETE')
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)['down']


def longhorn_objects(lab, kenv, kind):
    return kubectl_json(lab, kenv, 'get', kind + '.longhorn.io', '-n', LONGHORN)['items']


def target_available(lab, kenv):
    target = kubectl_json(lab, kenv, 'get', 'backuptargets.longhorn.io', 'default', '-n', LONGHORN)
    return (target.get('status') or {}).get('available')


@pytest.fixture(scope='module')
def longhorn(lab, kenv):
    """Longhorn's chart as Helm installs it, and the BackupTarget `default` on the lab's S3 store."""
    chart = charts.CHARTS['longhorn']
    crds = charts.crds(chart, {})
    kubectl(lab, kenv, *APPLY, stdin=yaml.safe_dump_all(crds))
    kubectl(lab, kenv, 'wait', '--for=condition=Established', '--timeout=60s',
            *['crd/' + crd['metadata']['name'] for crd in crds])
    namespace = {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': LONGHORN, 'labels': PRIVILEGED_NAMESPACE}}
    kubectl(lab, kenv, *APPLY, stdin=yaml.safe_dump(namespace))
    objects = charts.render(chart, '1.10.1', 'longhorn', LONGHORN, {}, ('flux-system', 'longhorn'))
    kubectl(lab, kenv, *APPLY, stdin=yaml.safe_dump_all(objects))
    secret = {'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': CREDENTIALS, 'namespace': LONGHORN},
              'data': dict((key, base64.b64encode(value.encode()).decode()) for key, value in (
                  ('AWS_ACCESS_KEY_ID', kenv['CASTLE_S3_ACCESS_KEY']), ('AWS_SECRET_ACCESS_KEY', kenv['CASTLE_S3_SECRET_KEY']),
                  ('AWS_ENDPOINTS', kenv['CASTLE_S3_URL']), ('AWS_CERT', pathlib.Path(kenv['CASTLE_S3_CA']).read_text())))}
    target = {'apiVersion': 'longhorn.io/v1beta2', 'kind': 'BackupTarget', 'metadata': {'name': 'default', 'namespace': LONGHORN},
              'spec': {'backupTargetURL': 's3://{0}@{1}/'.format(kenv['CASTLE_S3_BUCKET'], kenv['CASTLE_S3_REGION']),
                       'credentialSecret': CREDENTIALS, 'pollInterval': '10s'}}
    kubectl(lab, kenv, *APPLY, stdin=yaml.safe_dump_all([secret, target]))
    yield
    kubectl(lab, kenv, 'delete', '--ignore-not-found', '--timeout=60s', 'namespace', LONGHORN)


@pytest.fixture
def claim(lab, kenv, longhorn):
    """(namespace, claim) of a new Longhorn claim holding bytes the test wrote."""
    namespace = 'lh-{0}'.format(uuid.uuid4().hex[:8])
    pvc = {'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': {'name': 'data', 'namespace': namespace},
           'spec': {'accessModes': ['ReadWriteOnce'], 'storageClassName': 'longhorn',
                    'resources': {'requests': {'storage': '64Mi'}}}}
    kubectl(lab, kenv, 'create', 'namespace', namespace)
    kubectl(lab, kenv, *APPLY, stdin=yaml.safe_dump(pvc))
    wait_for(lambda: target_available(lab, kenv), 'the BackupTarget available', timeout=30)
    wait_for(lambda: kubectl_json(lab, kenv, 'get', 'pvc', 'data', '-n', namespace)['status'].get('phase') == 'Bound',
             'the claim bound', timeout=30)

    def written():
        try:
            return volume_data(kenv, namespace, 'data', b'castle data ' + namespace.encode()) is not None
        except urllib.error.HTTPError as exc:
            assert exc.code in (404, 409), exc
            return False
    wait_for(written, 'the volume written', timeout=30)
    yield namespace, 'data'
    kubectl(lab, kenv, 'delete', '--ignore-not-found', '--timeout=60s', 'namespace', namespace)


def remove_claim_and_volume(lab, kenv, namespace, name, volume):
    """What a rebuilt cluster lacks: the claim, its PersistentVolume and the Longhorn volume."""
    kubectl(lab, kenv, 'delete', '--ignore-not-found', '--timeout=60s', 'pvc', name, '-n', namespace)
    kubectl(lab, kenv, 'delete', '--ignore-not-found', '--timeout=60s', 'pv', volume)
    kubectl(lab, kenv, 'delete', '--ignore-not-found', '--timeout=60s', 'volumes.longhorn.io', volume, '-n', LONGHORN)
    wait_for(lambda: all(v['metadata']['name'] != volume for v in longhorn_objects(lab, kenv, 'volumes')),
             'the Longhorn volume gone', timeout=30)


def test_a_volume_is_reported_backed_up_and_restored_with_its_bytes(lab, kenv, claim):
    namespace, name = claim
    ref = '{0}/{1}'.format(namespace, name)
    info = run_module(kenv, 'longhorn_volume_info', volumes=[ref])
    assert info.rc == 0, info.result
    volume = info.result['volumes'][0]
    assert volume['claim'] == ref and volume['nodes'], volume
    assert info.result['without_healthy_replica'] == []

    backed_up = run_module(kenv, 'longhorn_backup', volumes=[ref], wait_timeout=60)
    assert backed_up.rc == 0 and backed_up.result['changed'], backed_up.result
    entry = backed_up.result['backups'][0]
    assert (entry['volume'], entry['claim'], entry['state']) == (volume['name'], ref, 'Completed')
    assert entry['url'].startswith('s3://{0}@'.format(kenv['CASTLE_S3_BUCKET']))
    kept = run_module(kenv, 'longhorn_backup', volumes=[ref], max_age=3600)
    assert kept.rc == 0 and not kept.result['changed'] and kept.result['backups'][0]['backup'] == entry['backup']

    expected = volume_data(kenv, namespace, name)
    assert expected == b'castle data ' + namespace.encode()
    remove_claim_and_volume(lab, kenv, namespace, name, volume['name'])
    # As on a rebuilt cluster: the backup found again on the target by its claim.
    restored = run_module(kenv, 'longhorn_restore', claims=[ref], wait_timeout=60)
    assert restored.rc == 0 and restored.result['changed'], restored.result
    assert [(r['volume'], r['url'], r['action']) for r in restored.result['restored']] == [
        (volume['name'], entry['url'], 'created')]
    pvc = kubectl_json(lab, kenv, 'get', 'pvc', name, '-n', namespace)
    assert pvc['spec']['volumeName'] == volume['name'] and pvc['status']['phase'] == 'Bound'
    assert volume_data(kenv, namespace, name) == expected
    again = run_module(kenv, 'longhorn_restore', backups=backed_up.result['backups'])
    assert again.rc == 0 and not again.result['changed'], again.result


def test_a_backup_store_that_is_down_fails_the_backup_naming_the_target(lab, kenv, claim):
    namespace, name = claim
    before = [len(longhorn_objects(lab, kenv, kind)) for kind in ('snapshots', 'backups')]
    s3_outage(kenv, True)
    try:
        wait_for(lambda: not target_available(lab, kenv), 'the BackupTarget unavailable', timeout=30)
        failed = run_module(kenv, 'longhorn_backup', volumes=['{0}/{1}'.format(namespace, name)])
    finally:
        s3_outage(kenv, False)
    assert failed.rc != 0
    assert failed.result['msg'].startswith('BackupTarget longhorn-system/default (s3://{0}@{1}/) is not available: '.format(
        kenv['CASTLE_S3_BUCKET'], kenv['CASTLE_S3_REGION'])), failed.result['msg']
    assert [len(longhorn_objects(lab, kenv, kind)) for kind in ('snapshots', 'backups')] == before


def test_a_restore_in_check_mode_creates_nothing_and_shows_what_it_would_create(lab, kenv, longhorn):
    url = 's3://{0}@{1}/?backup=backup-0a1b2c3d&volume=pvc-castle-check'.format(kenv['CASTLE_S3_BUCKET'], kenv['CASTLE_S3_REGION'])
    entry = {'volume': 'pvc-castle-check', 'claim': 'lh-check/data', 'url': url, 'volume_size': 67108864}
    checked = run_module(kenv, 'longhorn_restore', check=True, diff=True, backups=[entry], number_of_replicas=2)
    assert checked.rc == 0 and checked.result['changed'], checked.result
    assert checked.result['restored'] == [{'volume': 'pvc-castle-check', 'claim': 'lh-check/data', 'pv': 'pvc-castle-check',
                                           'url': url, 'size': 67108864, 'action': 'created'}]
    for ref in ('Namespace/lh-check', 'PersistentVolume/pvc-castle-check', 'PersistentVolumeClaim/lh-check/data',
                'Volume/longhorn-system/pvc-castle-check'):
        assert '+    "{0}": {{'.format(ref) in checked.diff, checked.diff
    assert '+            "fromBackup": "{0}",'.format(url) in checked.diff
    assert all(v['metadata']['name'] != 'pvc-castle-check' for v in longhorn_objects(lab, kenv, 'volumes'))
    assert kubectl(lab, kenv, 'get', 'namespace', 'lh-check', check=False).returncode != 0
