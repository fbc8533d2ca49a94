"""longhorn_restore against a fake Kubernetes API with Longhorn: a Volume from the backup, restored before its
PersistentVolume and claim are made, the claim's namespace created, backups discovered on the target by claim,
idempotence, check mode, diff, and refusals naming the claim or volume in the way."""

import pytest

import fake_kube
from longhorn_objects import NAMESPACE, backup, backup_volume, replica, volume

API = fake_kube.LONGHORN_API
URL = fake_kube.BACKUP_TARGET_URL + '?backup=pvc-aaa-1&volume=pvc-aaa'
ENTRY = {'volume': 'pvc-aaa', 'claim': 'apps/data', 'url': URL, 'volume_size': 1073741824, 'backup': 'pvc-aaa-1',
         'state': 'Completed', 'changed': True}


@pytest.fixture
def cluster(monkeypatch):
    fake = fake_kube.install(monkeypatch)
    fake.serve_longhorn()
    return fake


def restore(run_module, check_mode=False, diff=False, **args):
    return run_module('longhorn_restore', check_mode=check_mode, diff=diff, host=fake_kube.HOST, **args)


def test_a_volume_is_restored_from_its_backup_then_bound_to_its_claim(run_module, cluster):
    result = restore(run_module, backups=[ENTRY], number_of_replicas=2)
    assert not result.failed and result.changed
    assert result['restored'] == [{'volume': 'pvc-aaa', 'claim': 'apps/data', 'pv': 'pvc-aaa', 'url': URL,
                                   'size': 1073741824, 'action': 'created'}]
    volume = cluster.find(API, 'Volume', 'pvc-aaa', NAMESPACE)
    assert volume['spec'] == {'size': '1073741824', 'fromBackup': URL, 'frontend': 'blockdev', 'accessMode': 'rwo',
                              'numberOfReplicas': 2}
    pv = cluster.find('v1', 'PersistentVolume', 'pvc-aaa')
    assert pv['spec']['csi'] == {'driver': 'driver.longhorn.io', 'fsType': 'ext4', 'volumeHandle': 'pvc-aaa'}
    assert pv['spec']['claimRef'] == {'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'namespace': 'apps', 'name': 'data'}
    assert pv['spec']['capacity'] == {'storage': '1073741824'} and pv['spec']['storageClassName'] == 'longhorn'
    claim = cluster.find('v1', 'PersistentVolumeClaim', 'data', 'apps')
    assert claim['spec'] == {'accessModes': ['ReadWriteOnce'], 'storageClassName': 'longhorn', 'volumeName': 'pvc-aaa',
                             'resources': {'requests': {'storage': '1073741824'}}}
    assert cluster.find('v1', 'Namespace', 'apps')['metadata']['labels'] == {'app.kubernetes.io/managed-by': 'ephemeral.castle'}
    order = [key[1] for manager, key in cluster.applied]
    assert order == ['Volume', 'Namespace', 'PersistentVolume', 'PersistentVolumeClaim']


def test_a_second_run_changes_nothing(run_module, cluster):
    restore(run_module, backups=[ENTRY])
    applied = len(cluster.applied)
    again = restore(run_module, backups=[ENTRY], diff=True)
    assert not again.failed and not again.changed
    assert again['restored'][0]['action'] == 'unchanged' and len(cluster.applied) == applied
    assert again['diff'] == {'before': {}, 'after': {}}


def test_the_claim_is_not_made_until_the_volume_is_restored(run_module, cluster):
    cluster.stalled.add('Volume')
    result = restore(run_module, backups=[ENTRY], wait_timeout=0)
    assert result.failed and result.msg == 'timed out after 0s: volumes not restored yet: pvc-aaa'
    assert [key[1] for manager, key in cluster.applied] == ['Volume']


def test_without_waiting_a_volume_still_restoring_gets_no_claim_yet(run_module, cluster):
    cluster.stalled.add('Volume')
    result = restore(run_module, backups=[ENTRY], wait=False)
    assert not result.failed and result.changed and result['restored'][0]['action'] == 'restoring'
    assert cluster.find('v1', 'PersistentVolumeClaim', 'data', 'apps') is None


def test_a_failed_restore_names_the_volume_and_longhorns_message(run_module, cluster):
    cluster.restore_errors = {'pvc-aaa': 'failed to restore: backup not found in the backup store'}
    result = restore(run_module, backups=[ENTRY])
    assert result.failed
    assert result.msg == 'restore of volume pvc-aaa failed: failed to restore: backup not found in the backup store'


def test_check_mode_creates_nothing_and_diffs_what_it_would_create(run_module, cluster):
    result = restore(run_module, check_mode=True, diff=True, backups=[ENTRY])
    assert not result.failed and result.changed and cluster.applied == []
    assert sorted(result['diff']['after']) == ['Namespace/apps', 'PersistentVolume/pvc-aaa',
                                               'PersistentVolumeClaim/apps/data', 'Volume/longhorn-system/pvc-aaa']


def test_an_existing_namespace_is_not_touched_and_a_missing_one_can_fail_instead(run_module, cluster):
    result = restore(run_module, backups=[ENTRY], create_namespace=False)
    assert result.failed and result.msg == 'namespace apps of claim apps/data does not exist (create_namespace=false)'
    cluster.put({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'apps'}})
    result = restore(run_module, backups=[ENTRY], create_namespace=False)
    assert not result.failed and 'labels' not in cluster.find('v1', 'Namespace', 'apps')['metadata']


def test_a_claim_bound_to_another_volume_fails_naming_it(run_module, cluster):
    cluster.put({'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': {'name': 'data', 'namespace': 'apps'},
                 'spec': {'volumeName': 'pvc-fresh'}, 'status': {'phase': 'Bound'}})
    result = restore(run_module, backups=[ENTRY])
    assert result.failed
    assert result.msg == 'claim apps/data already exists, bound to PersistentVolume pvc-fresh, not to the restored volume pvc-aaa'
    assert cluster.applied == []


def test_a_longhorn_volume_not_from_a_backup_is_not_restored_over(run_module, cluster):
    cluster.put({'apiVersion': API, 'kind': 'Volume', 'metadata': {'name': 'pvc-aaa', 'namespace': NAMESPACE},
                 'spec': {'size': '1073741824'}, 'status': {'state': 'detached'}})
    result = restore(run_module, backups=[ENTRY])
    assert result.failed
    assert result.msg == 'Longhorn volume pvc-aaa already exists and was not restored from a backup; not restoring apps/data over it'


def test_a_lost_volume_an_etcd_restore_brought_back_is_replaced_under_its_name_and_its_claim_kept(run_module, cluster):
    # etcd restored: the claim, its PV and the Longhorn volume are back, but every replica's disk was wiped.
    cluster.put(volume('pvc-aaa', claim='apps/data', robustness='faulted', state='detached'))
    cluster.put(replica('pvc-aaa-r-1', 'pvc-aaa', 'w-1', state='error', failed_at='2026-12-04T20:00:00Z'))
    cluster.put({'apiVersion': 'v1', 'kind': 'PersistentVolume', 'metadata': {'name': 'pvc-aaa'},
                 'spec': {'csi': {'driver': 'driver.longhorn.io', 'volumeHandle': 'pvc-aaa'}}})
    cluster.put({'apiVersion': 'v1', 'kind': 'PersistentVolumeClaim', 'metadata': {'name': 'data', 'namespace': 'apps'},
                 'spec': {'volumeName': 'pvc-aaa'}, 'status': {'phase': 'Bound'}})
    checked = restore(run_module, check_mode=True, backups=[ENTRY])
    assert checked.changed and cluster.find(API, 'Volume', 'pvc-aaa', NAMESPACE)['status']['robustness'] == 'faulted'
    result = restore(run_module, backups=[ENTRY])
    assert not result.failed and result.changed and result['restored'][0]['action'] == 'replaced'
    assert cluster.find(API, 'Volume', 'pvc-aaa', NAMESPACE)['spec']['fromBackup'] == URL
    assert cluster.find('v1', 'PersistentVolumeClaim', 'data', 'apps')['spec']['volumeName'] == 'pvc-aaa'
    # Restored once already, then lost again (a second etcd restore): replaced again.
    cluster.find(API, 'Volume', 'pvc-aaa', NAMESPACE)['status'] = {'robustness': 'faulted', 'state': 'attached'}
    again = restore(run_module, backups=[ENTRY])
    assert not again.failed and again['restored'][0]['action'] == 'replaced'
    # A faulted volume that still has a healthy replica keeps its data: it is not replaced.
    cluster.put(volume('pvc-aaa', claim='apps/data', robustness='faulted', state='detached'))
    cluster.put(replica('pvc-aaa-r-2', 'pvc-aaa', 'w-2'))
    kept = restore(run_module, backups=[ENTRY])
    assert kept.failed and 'was not restored from a backup' in kept.msg


def test_backups_are_discovered_on_the_target_newest_completed_per_volume_and_filtered_by_claim(run_module, cluster):
    cluster.put(backup_volume('pvc-aaa-3f2a', 'pvc-aaa'))
    cluster.put(backup_volume('pvc-bbb-9c1d', 'pvc-bbb'))
    cluster.put(backup('pvc-aaa-1', 'pvc-aaa', '2026-12-01T10:00:00Z', claim='apps/data'))
    cluster.put(backup('pvc-aaa-2', 'pvc-aaa', '2026-12-03T10:00:00Z', claim='apps/data'))
    cluster.put(backup('pvc-aaa-3', 'pvc-aaa', '2026-12-04T10:00:00Z', state='Error', claim='apps/data'))
    cluster.put(backup('pvc-bbb-1', 'pvc-bbb', '2026-12-02T10:00:00Z', claim='apps/uploads', volume_size='2147483648'))
    result = restore(run_module, claims=['apps/data'])
    assert [(r['volume'], r['claim'], r['url']) for r in result['restored']] == [
        ('pvc-aaa', 'apps/data', fake_kube.BACKUP_TARGET_URL + '?backup=pvc-aaa-2&volume=pvc-aaa')]
    result = restore(run_module)
    assert [(r['claim'], r['size'], r['action']) for r in result['restored']] == [
        ('apps/data', 1073741824, 'unchanged'), ('apps/uploads', 2147483648, 'created')]


def test_a_claim_without_a_backup_is_named(run_module, cluster):
    result = restore(run_module, claims=['apps/nothing'])
    assert result.failed and result.msg == 'no backup to restore for claim apps/nothing'


def test_an_entry_without_url_is_completed_from_the_backup_longhorn_lists(run_module, cluster):
    cluster.put(backup('pvc-aaa-1', 'pvc-aaa', '2026-12-01T10:00:00Z', claim='apps/data'))
    result = restore(run_module, backups=[{'volume': 'pvc-aaa', 'backup': 'pvc-aaa-1'}])
    assert not result.failed and result['restored'][0]['url'] == URL and result['restored'][0]['claim'] == 'apps/data'
    result = restore(run_module, backups=[{'volume': 'pvc-bbb', 'backup': 'pvc-bbb-9'}])
    assert result.failed
    assert result.msg == "volume pvc-bbb: give url, claim and volume_size, or a backup Longhorn lists (no Backup 'pvc-bbb-9')"


def test_a_run_stopped_after_the_volume_was_restored_goes_on_with_its_claim(run_module, cluster):
    cluster.put({'apiVersion': API, 'kind': 'Volume', 'metadata': {'name': 'pvc-aaa', 'namespace': NAMESPACE},
                 'spec': {'size': '1073741824', 'fromBackup': URL}, 'status': {'state': 'detached', 'restoreRequired': False}})
    result = restore(run_module, backups=[ENTRY])
    assert not result.failed and result.changed and result['restored'][0]['action'] == 'created'
    assert [key[1] for manager, key in cluster.applied] == ['Namespace', 'PersistentVolume', 'PersistentVolumeClaim']


def test_two_backups_for_one_claim_are_refused(run_module, cluster):
    result = restore(run_module, backups=[ENTRY, dict(ENTRY, volume='pvc-other')])
    assert result.failed and result.msg == 'more than one backup to restore for claim apps/data'
    assert cluster.applied == []
