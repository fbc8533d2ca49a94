"""The emulated Longhorn's backup store pieces as longhorn/backupstore and longhorn-manager shape them: the volume
path (SHA-512 of the name, two levels), the backup URL (backup and volume in the query, sorted), the target URL
(s3://bucket@region/path), the chart's defaultBackupStore values turned into the default BackupTarget, and a target
whose store cannot be reached reported unavailable with the reason."""

import asyncio
import hashlib
import socket

import pytest
from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.controllers import longhorn_backups
from castle_lab.kube.controllers.failures import Failures
from castle_lab.kube.controllers.manager import Manager
from castle_lab.kube.controllers.suite import all_controllers
from test_longhorn_volumes import NAMESPACE, install_longhorn, settle


def test_volume_path_and_urls_follow_backupstore():
    checksum = hashlib.sha512(b'pvc-1').hexdigest()
    assert longhorn_backups.volume_path('lab', 'pvc-1') == 'lab/backupstore/volumes/{0}/{1}/pvc-1/'.format(
        checksum[:2], checksum[2:4])
    assert longhorn_backups.volume_path('', 'pvc-1').startswith('backupstore/volumes/')
    url = longhorn_backups.backup_url('s3://castle-backups@us-east-1/lab/', 'backup-1', 'pvc-1')
    assert url == 's3://castle-backups@us-east-1/lab/?backup=backup-1&volume=pvc-1'
    assert longhorn_backups.parse_backup_url(url) == ('s3://castle-backups@us-east-1/lab/', 'backup-1', 'pvc-1')
    assert longhorn_backups.parse_target('s3://castle-backups@us-east-1/lab/') == ('castle-backups', 'us-east-1', 'lab')
    with pytest.raises(longhorn_backups.StoreError, match='expected s3://<bucket>@<region>/'):
        longhorn_backups.parse_target('s3://castle-backups/lab')
    with pytest.raises(longhorn_backups.StoreError, match='names no backup and volume'):
        longhorn_backups.parse_backup_url('s3://castle-backups@us-east-1/?volume=pvc-1')
    assert longhorn_backups.duration_seconds('5m0s') == 300 and longhorn_backups.duration_seconds('1s') == 1


def closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_the_chart_values_make_the_default_target_and_an_unreachable_store_makes_it_unavailable(tmp_path):
    async def scenario():
        api = KubeApi()
        manager = Manager(api.store, all_controllers(api, failures=Failures(), storage_dir=str(tmp_path)))
        manager.start()
        install_longhorn(api, {'defaultBackupStore': {'backupTarget': 's3://castle-backups@us-east-1/lab/',
                                                      'backupTargetCredentialSecret': 's3-keys', 'pollInterval': 1}})
        secrets = api.registry.get('', 'v1', 'secrets')
        api.create(secrets, NAMESPACE, {'metadata': {'name': 's3-keys'}, 'stringData': {
            'AWS_ACCESS_KEY_ID': 'key', 'AWS_SECRET_ACCESS_KEY': 'secret',
            'AWS_ENDPOINTS': 'http://127.0.0.1:{0}'.format(closed_port())}}, 'test')

        def target():
            return api.store.get(longhorn_backups.TARGETS, NAMESPACE, 'default') or {}

        def unavailable():
            return next((c for c in (target().get('status') or {}).get('conditions') or []
                         if c['type'] == 'Unavailable' and c['status'] == 'True'), None)
        await settle(unavailable)
        assert target()['spec'] == {'backupTargetURL': 's3://castle-backups@us-east-1/lab/',
                                    'credentialSecret': 's3-keys', 'pollInterval': '1s'}
        assert target()['status']['available'] is False
        assert 'Connection refused' in unavailable()['message'] and 's3://castle-backups@us-east-1/lab/' in \
            unavailable()['message']
        await manager.stop()

    asyncio.run(scenario())
