"""longhorn_backup against a fake Kubernetes API with Longhorn: the target checked first, a Snapshot then a Backup
per volume (Longhorn's labels, the claim recorded), max_age keeping recent backups, check mode, and failures naming
the volume and Longhorn's message."""

import datetime
import json

import pytest

import fake_kube
from longhorn_objects import NAMESPACE, backup, volume

API = fake_kube.LONGHORN_API


@pytest.fixture
def cluster(monkeypatch):
    fake = fake_kube.install(monkeypatch)
    fake.serve_longhorn()
    fake.put(volume('pvc-aaa', claim='apps/data'))
    fake.put(volume('pvc-bbb', claim='apps/uploads'))
    return fake


def back_up(run_module, check_mode=False, **args):
    return run_module('longhorn_backup', check_mode=check_mode, host=fake_kube.HOST, **args)


def created(fake, kind):
    return sorted(key[3] for manager, key in fake.applied if key[1] == kind)


def ago(seconds):
    return (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)).strftime('%Y-%m-%dT%H:%M:%SZ')


def test_every_volume_is_snapshotted_then_backed_up_with_longhorns_labels_and_its_claim(run_module, cluster):
    result = back_up(run_module)
    assert not result.failed and result.changed
    assert [(b['volume'], b['claim'], b['state'], b['volume_size'], b['changed']) for b in result['backups']] == [
        ('pvc-aaa', 'apps/data', 'Completed', 1073741824, True), ('pvc-bbb', 'apps/uploads', 'Completed', 1073741824, True)]
    first = result['backups'][0]
    assert first['backup'].startswith('pvc-aaa-') and first['url'].endswith('?backup={0}&volume=pvc-aaa'.format(first['backup']))
    assert created(cluster, 'Snapshot') == created(cluster, 'Backup') == sorted(b['backup'] for b in result['backups'])
    made = cluster.find(API, 'Backup', first['backup'], NAMESPACE)
    assert made['metadata']['labels']['backup-volume'] == 'pvc-aaa'
    assert made['metadata']['labels']['backup-target'] == 'default'
    assert made['spec']['snapshotName'] == first['backup'] and made['spec']['backupMode'] == 'incremental'
    assert json.loads(made['spec']['labels']['KubernetesStatus'])['pvcName'] == 'data'
    assert cluster.find(API, 'Snapshot', first['backup'], NAMESPACE)['spec'] == {'volume': 'pvc-aaa', 'createSnapshot': True}


def test_volumes_are_selected_by_name_or_claim_and_an_unknown_one_is_named(run_module, cluster):
    result = back_up(run_module, volumes=['apps/uploads'])
    assert [b['volume'] for b in result['backups']] == ['pvc-bbb']
    result = back_up(run_module, volumes=['pvc-aaa', 'apps/missing', 'pvc-zzz'])
    assert result.failed
    assert result.msg == 'no Longhorn volume for apps/missing, pvc-zzz (give a Longhorn volume name or namespace/claim)'


def unavailable(cluster):
    target = cluster.find(API, 'BackupTarget', 'default', NAMESPACE)
    target['status'] = {'available': False, 'lastSyncedAt': '2026-12-04T19:00:00Z', 'conditions': [
        {'type': 'Unavailable', 'status': 'True', 'reason': 'Unavailable', 'message': 'dial tcp: connection refused'}]}


def test_an_unavailable_target_is_synced_again_then_fails_naming_it_and_creates_nothing(run_module, cluster):
    unavailable(cluster)
    cluster.store_down = 'failed to list backup volumes: dial tcp: connection refused'
    checked = back_up(run_module, check_mode=True)
    assert checked.failed and 'dial tcp: connection refused' in checked.msg and cluster.applied == []
    result = back_up(run_module)
    assert result.failed
    assert result.msg == ('BackupTarget longhorn-system/default (s3://castle-backups@us-east-1/) is not available: '
                          'failed to list backup volumes: dial tcp: connection refused')
    # Only the sync request: no Snapshot, no Backup.
    assert [key[1] for manager, key in cluster.applied] == ['BackupTarget']


def test_a_target_whose_store_is_back_is_synced_and_backed_up_to(run_module, cluster):
    unavailable(cluster)
    result = back_up(run_module)
    assert not result.failed and result.changed
    assert cluster.find(API, 'BackupTarget', 'default', NAMESPACE)['status']['available'] is True
    assert {b['state'] for b in result['backups']} == {'Completed'}


def test_a_missing_target_is_named(run_module, cluster):
    del cluster.objects[(API, 'BackupTarget', NAMESPACE, 'default')]
    result = back_up(run_module, backup_target='default')
    assert result.failed and result.msg == 'BackupTarget longhorn-system/default does not exist; configure the backup target first'


def test_a_recent_backup_is_kept_under_max_age_and_an_old_one_is_not(run_module, cluster):
    cluster.put(backup('pvc-aaa-old', 'pvc-aaa', ago(7200), claim='apps/data'))
    cluster.put(backup('pvc-aaa-new', 'pvc-aaa', ago(60), claim='apps/data'))
    cluster.put(backup('pvc-aaa-failed', 'pvc-aaa', ago(10), state='Error'))
    cluster.put(backup('pvc-bbb-old', 'pvc-bbb', ago(7200), claim='apps/uploads'))
    result = back_up(run_module, max_age=3600)
    assert result.changed
    assert [(b['volume'], b['backup'] if not b['changed'] else 'new', b['changed']) for b in result['backups']] == [
        ('pvc-aaa', 'pvc-aaa-new', False), ('pvc-bbb', 'new', True)]
    assert created(cluster, 'Backup') == [result['backups'][1]['backup']]
    again = back_up(run_module, max_age=3600)
    assert not again.changed and cluster.applied[-1][1][3] == result['backups'][1]['backup']


def test_check_mode_reports_what_it_would_back_up_and_creates_nothing(run_module, cluster):
    cluster.put(backup('pvc-aaa-new', 'pvc-aaa', ago(60)))
    result = back_up(run_module, check_mode=True, max_age=3600)
    assert not result.failed and result.changed
    assert [(b['volume'], b['backup'], b['changed']) for b in result['backups']] == [
        ('pvc-aaa', 'pvc-aaa-new', False), ('pvc-bbb', None, True)]
    assert cluster.applied == []


def test_a_backup_in_error_fails_naming_the_volume_and_longhorns_message(run_module, cluster):
    cluster.backup_errors = {'pvc-bbb': 'failed to upload block: access denied'}
    result = back_up(run_module)
    assert result.failed
    assert result.msg == 'backup failed for volume pvc-bbb (Error): failed to upload block: access denied'
    assert [(b['volume'], b['state']) for b in result['backups']] == [('pvc-aaa', 'Completed'), ('pvc-bbb', 'Error')]


def test_a_backup_that_does_not_finish_times_out_naming_the_volume_and_its_progress(run_module, cluster):
    cluster.stalled.add('Backup')
    result = back_up(run_module, volumes=['pvc-aaa'], wait_timeout=0)
    assert result.failed
    assert result.msg == 'timed out after 0s: backups not complete for volume pvc-aaa (New, 0%)'


def test_a_negative_max_age_is_refused(run_module, cluster):
    result = back_up(run_module, max_age=-1)
    assert result.failed and result.msg == 'max_age must be 0 or more seconds, not -1'


def test_a_volume_of_another_backup_target_is_named(run_module, cluster):
    cluster.find(API, 'Volume', 'pvc-bbb', NAMESPACE)['spec']['backupTargetName'] = 'offsite'
    result = back_up(run_module)
    assert result.failed and result.msg == 'volume pvc-bbb (offsite) backs up to another target than default'
    assert cluster.applied == []
