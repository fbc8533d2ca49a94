"""Longhorn's backups in a real S3 store: the BackupTarget (from the chart's default-resource values, or as a client
edits it) checked by contacting the store with the keys of its credential Secret, Snapshots of a volume's data,
Backups uploaded in backupstore's layout, BackupVolumes and Backups synced from the store every pollInterval (so a
new Longhorn sees the backups an old one made), and a Volume created with spec.fromBackup filled from the store.

The layout (longhorn/backupstore): under the target URL's path, backupstore/volumes/<xx>/<yy>/<volume>/ with xx and
yy the first two pairs of hex digits of the volume name's SHA-512; there volume.cfg, backups/backup_<name>.cfg and
blocks/<cc>/<cc>/<checksum>.blk, each block up to 2 MiB of the data, gzip-compressed, named by its SHA-512."""

import asyncio
import copy
import gzip
import hashlib
import io
import json
import re
import urllib.parse

import yaml

from ..api.objects import now
from .longhorn_volumes import LH_VOLUMES, MANAGER, Volumes, longhorn_installed, write_atomically
from .manager import Controller

TARGETS = ('longhorn.io', 'backuptargets')
BACKUPS = ('longhorn.io', 'backups')
BACKUP_VOLUMES = ('longhorn.io', 'backupvolumes')
SNAPSHOTS = ('longhorn.io', 'snapshots')
CONFIGMAPS = ('', 'configmaps')
SECRETS = ('', 'secrets')
DEFAULT_RESOURCE = 'longhorn-default-resource'
DEFAULT_TARGET = 'default'
DEFAULT_POLL = 300
BLOCK_SIZE = 2 * 1024 * 1024
COMPRESSION = 'gzip'
VOLUME_LABEL = 'backup-volume'
TARGET_LABEL = 'backup-target'
OBJECT_NAME = re.compile(r'[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?')


class StoreError(Exception):
    """The backup store cannot be reached or refused a request; the message is what it answered."""


def parse_target(url):
    """(bucket, region, path prefix) of an s3://bucket@region/path URL."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != 's3' or '@' not in parsed.netloc:
        raise StoreError('invalid backup target URL {0}: expected s3://<bucket>@<region>/[path]'.format(url))
    bucket, region = parsed.netloc.split('@', 1)
    return bucket, region, parsed.path.strip('/')


def duration_seconds(value):
    """A metav1.Duration ("5m0s", "30s", "1h") in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    parts = re.findall(r'(\d+(?:\.\d+)?)(h|m|s)', str(value or ''))
    if not parts:
        try:
            return float(value or 0)
        except ValueError:
            return DEFAULT_POLL
    return sum(float(n) * {'h': 3600, 'm': 60, 's': 1}[unit] for n, unit in parts)


def volume_path(prefix, volume):
    checksum = hashlib.sha512(volume.encode()).hexdigest()
    return '/'.join(p for p in (prefix, 'backupstore', 'volumes', checksum[0:2], checksum[2:4], volume) if p) + '/'


def backup_url(target_url, backup, volume):
    return '{0}?{1}'.format(target_url, urllib.parse.urlencode({'backup': backup, 'volume': volume}))


def parse_backup_url(url):
    """(target URL, backup name, volume name) of a backup URL."""
    parsed = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parsed.query)
    if not query.get('backup') or not query.get('volume'):
        raise StoreError('invalid backup URL {0}: it names no backup and volume'.format(url))
    return urllib.parse.urlunsplit(parsed._replace(query='')), query['backup'][0], query['volume'][0]


class BackupStore:
    """One backup target's S3 bucket, through MiniO's S3 client with the target's credentials."""

    def __init__(self, url, credentials):
        import minio
        import urllib3
        self.url = url
        self.bucket, region, self.prefix = parse_target(url)
        endpoint = credentials.get('AWS_ENDPOINTS', '').strip()
        parsed = urllib.parse.urlsplit(endpoint or 'https://s3.{0}.amazonaws.com'.format(region))
        cert = credentials.get('AWS_CERT')
        if parsed.scheme not in ('http', 'https') or not parsed.netloc:
            raise StoreError('invalid AWS_ENDPOINTS {0!r}: expected http(s)://host[:port]'.format(endpoint))
        http = urllib3.PoolManager(cert_reqs='CERT_REQUIRED', ca_cert_data=cert or None,
                                   ca_certs=None if cert else _system_roots(),
                                   timeout=urllib3.Timeout(connect=5, read=20), retries=False)
        try:
            self.client = minio.Minio(parsed.netloc, access_key=credentials.get('AWS_ACCESS_KEY_ID') or None,
                                      secret_key=credentials.get('AWS_SECRET_ACCESS_KEY') or None, region=region,
                                      secure=parsed.scheme == 'https', http_client=http)
        except ValueError as exc:
            raise StoreError('invalid AWS_ENDPOINTS {0!r}: {1}'.format(endpoint, exc)) from exc

    def call(self, what, action):
        import minio.error
        import urllib3
        try:
            return action()
        except minio.error.S3Error as exc:
            raise StoreError('{0}: {1}: {2}'.format(what, exc.code, exc.message)) from exc
        except (OSError, urllib3.exceptions.HTTPError, minio.error.MinioException) as exc:
            reason = getattr(exc, 'reason', None) or exc
            raise StoreError('{0}: {1}'.format(what, reason)) from exc

    def read_json(self, key):
        def fetch():
            response = self.client.get_object(self.bucket, key)
            try:
                return json.loads(response.read())
            finally:
                response.close()
                response.release_conn()
        return self.call('failed to read {0}'.format(key), fetch)

    def write(self, key, data):
        self.call('failed to write {0}'.format(key),
                  lambda: self.client.put_object(self.bucket, key, io.BytesIO(data), len(data)))

    def listing(self, prefix, recursive=False):
        return self.call('failed to list {0} in {1}'.format(prefix, self.url), lambda: [
            o.object_name for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=recursive)])

    def inventory(self):
        """{volume: (volume.cfg, {backup name: backup_<name>.cfg})} of everything in the store."""
        base = '/'.join(p for p in (self.prefix, 'backupstore', 'volumes') if p) + '/'
        found = {}
        for key in self.listing(base, recursive=True):
            match = re.fullmatch(re.escape(base) + r'[0-9a-f]{2}/[0-9a-f]{2}/([^/]+)/(volume\.cfg|backups/backup_'
                                 r'([^/]+)\.cfg)', key)
            if not match:
                continue
            volume, backups = found.setdefault(match.group(1), [None, {}])
            if match.group(3):
                backups[match.group(3)] = self.read_json(key)
            else:
                found[match.group(1)][0] = self.read_json(key)
        return {name: (cfg, backups) for name, (cfg, backups) in found.items() if cfg}

    def upload(self, volume, backup, data, meta):
        """The data's blocks, the backup's config, then the volume's: the backup exists once all are there."""
        base = volume_path(self.prefix, volume)
        blocks = []
        for offset in range(0, len(data), BLOCK_SIZE):
            block = data[offset:offset + BLOCK_SIZE]
            checksum = hashlib.sha512(block).hexdigest()
            self.write('{0}blocks/{1}/{2}/{3}.blk'.format(base, checksum[0:2], checksum[2:4], checksum),
                       gzip.compress(block))
            blocks.append({'Offset': offset, 'BlockChecksum': checksum})
        config = {'Name': backup, 'VolumeName': volume, 'SnapshotName': meta['snapshot'],
                  'SnapshotCreatedAt': meta['snapshotCreatedAt'], 'CreatedTime': meta['created'],
                  'Size': str(len(data)), 'Labels': meta['labels'], 'IsIncremental': False,
                  'CompressionMethod': COMPRESSION, 'Blocks': blocks}
        self.write('{0}backups/backup_{1}.cfg'.format(base, backup), json.dumps(config).encode())
        volume_cfg = {'Name': volume, 'Size': meta['volumeSize'], 'Labels': meta['labels'],
                      'CreatedTime': meta['volumeCreated'], 'LastBackupName': backup, 'LastBackupAt': meta['created'],
                      'BlockCount': str(len(blocks)), 'BackingImageName': '', 'BackingImageChecksum': '',
                      'CompressionMethod': COMPRESSION, 'DataEngine': 'v1', 'StorageClassName': meta['storageClass']}
        self.write(base + 'volume.cfg', json.dumps(volume_cfg).encode())
        return config, volume_cfg

    def download(self, volume, backup):
        base = volume_path(self.prefix, volume)
        config = self.read_json('{0}backups/backup_{1}.cfg'.format(base, backup))
        data = bytearray()
        for block in sorted(config.get('Blocks') or [], key=lambda b: b['Offset']):
            checksum = block['BlockChecksum']
            key = '{0}blocks/{1}/{2}/{3}.blk'.format(base, checksum[0:2], checksum[2:4], checksum)

            def fetch(key=key):
                response = self.client.get_object(self.bucket, key)
                try:
                    return response.read()
                finally:
                    response.close()
                    response.release_conn()
            raw = gzip.decompress(self.call('failed to read {0}'.format(key), fetch))
            if hashlib.sha512(raw).hexdigest() != checksum:
                raise StoreError('block {0} of backup {1} does not match its checksum'.format(checksum, backup))
            data[block['Offset']:block['Offset'] + len(raw)] = raw
        return config, bytes(data)


def _system_roots():
    import certifi
    return certifi.where()


class BackupController(Controller):
    """longhorn-manager's backup target, snapshot, backup, backup volume and restore work."""

    name = 'longhorn-backups'
    watches = (TARGETS, BACKUPS, SNAPSHOTS, LH_VOLUMES, CONFIGMAPS, SECRETS)

    def __init__(self, api, volumes):
        super().__init__(api)
        self.volumes = volumes

    def notify(self, key, event, obj):
        meta = obj['metadata']
        if key == CONFIGMAPS:
            if meta['name'] == DEFAULT_RESOURCE and event != 'DELETED':
                self.enqueue(CONFIGMAPS, meta['namespace'], meta['name'])
        elif key == SECRETS:
            for target in self.api.store.list(TARGETS, meta['namespace']):
                if (target.get('spec') or {}).get('credentialSecret') == meta['name']:
                    self.enqueue(TARGETS, meta['namespace'], target['metadata']['name'])
        elif key == LH_VOLUMES:
            if (obj.get('spec') or {}).get('fromBackup') and (obj.get('status') or {}).get('restoreRequired'):
                self.enqueue(LH_VOLUMES, meta['namespace'], meta['name'])
        elif event != 'DELETED' and key in (TARGETS, BACKUPS, SNAPSHOTS):
            self.enqueue(key, meta['namespace'], meta['name'])

    async def reconcile(self, key, namespace, name):
        if not longhorn_installed(self.api):
            return None
        if key == CONFIGMAPS:
            return self.apply_default_resource(namespace, name)
        if key == TARGETS:
            return await self.sync_target(namespace, name)
        if key == SNAPSHOTS:
            return self.take_snapshot(namespace, name)
        if key == BACKUPS:
            return await self.back_up(namespace, name)
        return await self.restore(namespace, name)

    def rtype(self, key):
        return self.api.registry.get(key[0], 'v1beta2', key[1])

    def write_status(self, key, namespace, name, status):
        current = self.api.store.get(key, namespace, name)
        if current is None or current.get('status') == status:
            return current
        rtype = self.rtype(key)
        return self.api.replace(rtype, namespace, name, dict(self.api.served_as(rtype, current), status=status),
                                MANAGER, subresource='status')

    # the backup target

    def apply_default_resource(self, namespace, name):
        """The chart's defaultBackupStore values, applied to the default BackupTarget whenever they change."""
        config = self.api.store.get(CONFIGMAPS, namespace, name)
        if config is None:
            return None
        try:
            values = yaml.safe_load((config.get('data') or {}).get('default-resource.yaml') or '') or {}
        except yaml.YAMLError:
            values = {}
        if not isinstance(values, dict):
            values = {}
        target = self.api.store.get(TARGETS, namespace, DEFAULT_TARGET)
        spec = dict((target or {}).get('spec') or {'backupTargetURL': '', 'credentialSecret': '',
                                                    'pollInterval': '5m0s'})
        if 'backup-target' in values:
            spec['backupTargetURL'] = str(values['backup-target'] or '')
        if 'backup-target-credential-secret' in values:
            spec['credentialSecret'] = str(values['backup-target-credential-secret'] or '')
        if 'backupstore-poll-interval' in values:
            spec['pollInterval'] = '{0:g}s'.format(duration_seconds(values['backupstore-poll-interval']))
        if target is None:
            self.api.create(self.rtype(TARGETS), namespace, {'metadata': {'name': DEFAULT_TARGET}, 'spec': spec},
                            MANAGER)
        elif spec != target.get('spec'):
            body = self.api.served_as(self.rtype(TARGETS), target)
            body['spec'] = spec
            self.api.replace(self.rtype(TARGETS), namespace, DEFAULT_TARGET, body, MANAGER)
        return None

    def store_of(self, target):
        """The BackupStore of a BackupTarget, or raise StoreError naming what is missing."""
        spec = target.get('spec') or {}
        url = spec.get('backupTargetURL') or ''
        if not url:
            raise StoreError('backup target {0} has no URL'.format(target['metadata']['name']))
        credentials = {}
        if spec.get('credentialSecret'):
            secret = self.api.store.get(SECRETS, target['metadata']['namespace'], spec['credentialSecret'])
            if secret is None:
                raise StoreError('failed to get credential secret {0}: secret not found'.format(
                    spec['credentialSecret']))
            credentials = {k: _decoded(v) for k, v in (secret.get('data') or {}).items()}
        return BackupStore(url, credentials)

    async def sync_target(self, namespace, name):
        target = self.api.store.get(TARGETS, namespace, name)
        if target is None:
            return None
        spec = target.get('spec') or {}
        status = copy.deepcopy(target.get('status') or {})
        inventory = None
        try:
            store = self.store_of(target)
            inventory = await asyncio.to_thread(store.inventory)
            problem = None
        except StoreError as exc:
            problem = str(exc)
        if not spec.get('backupTargetURL'):
            problem = None
        status.update(available=inventory is not None, lastSyncedAt=now(), ownerID=status.get('ownerID', ''))
        status['conditions'] = unavailable_condition(status.get('conditions'), problem)
        if inventory is not None:
            status['backupVolumeCount'] = len(inventory)
            self.sync_from_store(namespace, name, spec['backupTargetURL'], inventory)
        self.write_status(TARGETS, namespace, name, status)
        poll = duration_seconds(spec.get('pollInterval', DEFAULT_POLL))
        return poll if poll > 0 else None

    def sync_from_store(self, namespace, target_name, url, inventory):
        """BackupVolumes and Backups for what the store holds; BackupVolumes of volumes it no longer holds go."""
        stamp = now()
        for volume, (cfg, backups) in inventory.items():
            if not OBJECT_NAME.fullmatch(volume):
                continue  # not a name Longhorn gives a volume
            labels = {TARGET_LABEL: target_name, VOLUME_LABEL: volume}
            if self.api.store.get(BACKUP_VOLUMES, namespace, volume) is None:
                self.api.create(self.rtype(BACKUP_VOLUMES), namespace, {
                    'metadata': {'name': volume, 'labels': labels},
                    'spec': {'backupTargetName': target_name, 'volumeName': volume, 'syncRequestedAt': None}},
                    MANAGER)
            self.write_status(BACKUP_VOLUMES, namespace, volume, {
                'ownerID': '', 'size': cfg.get('Size', ''), 'labels': cfg.get('Labels') or {},
                'createdAt': cfg.get('CreatedTime', ''), 'lastBackupName': cfg.get('LastBackupName', ''),
                'lastBackupAt': cfg.get('LastBackupAt', ''), 'dataStored': str(
                    sum(len(b.get('Blocks') or []) for b in backups.values()) * BLOCK_SIZE),
                'messages': None, 'backingImageName': '', 'backingImageChecksum': '',
                'storageClassName': cfg.get('StorageClassName', ''), 'lastSyncedAt': stamp,
                'lastModificationTime': stamp})
            for backup_name, backup in backups.items():
                if OBJECT_NAME.fullmatch(backup_name) and self.api.store.get(BACKUPS, namespace, backup_name) is None:
                    self.api.create(self.rtype(BACKUPS), namespace, {
                        'metadata': {'name': backup_name, 'labels': labels},
                        'spec': {'snapshotName': backup.get('SnapshotName', ''), 'labels': backup.get('Labels') or {},
                                 'backupTargetName': target_name, 'syncRequestedAt': None}}, MANAGER)
                    self.write_status(BACKUPS, namespace, backup_name, completed_status(
                        url, target_name, backup, cfg, stamp))
        for backup_volume in self.api.store.list(BACKUP_VOLUMES, namespace):
            if (backup_volume.get('spec') or {}).get('backupTargetName') == target_name and \
                    backup_volume['metadata']['name'] not in inventory:
                self.api.store.delete(BACKUP_VOLUMES, namespace, backup_volume['metadata']['name'])

    # snapshots and backups

    def take_snapshot(self, namespace, name):
        snapshot = self.api.store.get(SNAPSHOTS, namespace, name)
        if snapshot is None or (snapshot.get('status') or {}).get('readyToUse'):
            return None
        spec = snapshot.get('spec') or {}
        volume_name = spec.get('volume', '')
        usable = self.volumes.usable(namespace, volume_name)
        status = {'volume': volume_name, 'readyToUse': False, 'markRemoved': False, 'parent': '', 'children': {},
                  'labels': spec.get('labels') or {}, 'userCreated': True, 'ownerID': '', 'restoreSize': 0,
                  'size': 0, 'creationTime': '', 'error': ''}
        if not spec.get('createSnapshot', True):
            return None
        if not usable:
            status['error'] = 'volume {0} has no healthy replica to snapshot'.format(volume_name)
            self.write_status(SNAPSHOTS, namespace, name, status)
            return 2.0
        disks = self.volumes.disks
        first = usable[0]
        data = disks.image(first['spec']['nodeID'], first['metadata']['name']).read_bytes()
        for replica in usable:
            write_atomically(disks.snapshot(replica['spec']['nodeID'], replica['metadata']['name'], name), data)
        volume = self.api.store.get(LH_VOLUMES, namespace, volume_name) or {}
        status.update(readyToUse=True, creationTime=now(), size=len(data),
                      restoreSize=int((volume.get('spec') or {}).get('size') or 0))
        self.write_status(SNAPSHOTS, namespace, name, status)
        return None

    async def back_up(self, namespace, name):
        backup = self.api.store.get(BACKUPS, namespace, name)
        if backup is None or (backup.get('status') or {}).get('state') in ('Completed', 'Error'):
            return None
        spec = backup.get('spec') or {}
        snapshot = self.api.store.get(SNAPSHOTS, namespace, spec.get('snapshotName') or '')
        volume_name = (backup['metadata'].get('labels') or {}).get(VOLUME_LABEL) or \
            ((snapshot or {}).get('spec') or {}).get('volume', '')
        target_name = spec.get('backupTargetName') or DEFAULT_TARGET
        status = dict(backup.get('status') or {}, snapshotName=spec.get('snapshotName', ''), volumeName=volume_name,
                      backupTargetName=target_name, progress=0, url='', error='', labels=spec.get('labels') or {})
        if snapshot is None:
            return self.fail(namespace, name, status, 'snapshot {0} not found'.format(spec.get('snapshotName')))
        if not (snapshot.get('status') or {}).get('readyToUse'):
            return 0.5
        volume = self.api.store.get(LH_VOLUMES, namespace, volume_name)
        data_replica = next((r for r in self.volumes.usable(namespace, volume_name) if self.volumes.disks.snapshot(
            r['spec']['nodeID'], r['metadata']['name'], snapshot['metadata']['name']).exists()), None)
        if volume is None or data_replica is None:
            return self.fail(namespace, name, status, 'volume {0} has no healthy replica with snapshot {1}'.format(
                volume_name, snapshot['metadata']['name']))
        target = self.api.store.get(TARGETS, namespace, target_name)
        if target is None:
            return self.fail(namespace, name, status, 'backup target {0} not found'.format(target_name))
        status['state'] = 'InProgress'
        self.write_status(BACKUPS, namespace, name, status)
        data = self.volumes.disks.snapshot(data_replica['spec']['nodeID'], data_replica['metadata']['name'],
                                           snapshot['metadata']['name']).read_bytes()
        created = now()
        meta = {'snapshot': snapshot['metadata']['name'], 'labels': spec.get('labels') or {},
                'snapshotCreatedAt': snapshot['status'].get('creationTime', ''), 'created': created,
                'volumeSize': volume['spec'].get('size', '0'), 'volumeCreated': volume['metadata']['creationTimestamp'],
                'storageClass': ''}
        try:
            store = self.store_of(target)
            config, volume_cfg = await asyncio.to_thread(store.upload, volume_name, name, data, meta)
        except StoreError as exc:
            self.enqueue(TARGETS, namespace, target_name)
            return self.fail(namespace, name, status, 'failed to back up snapshot {0} of volume {1} to {2}: '
                             '{3}'.format(meta['snapshot'], volume_name, target['spec'].get('backupTargetURL'), exc))
        self.write_status(BACKUPS, namespace, name, dict(completed_status(
            target['spec']['backupTargetURL'], target_name, config, volume_cfg, now()), snapshotName=meta['snapshot']))
        volume = self.api.store.get(LH_VOLUMES, namespace, volume_name)
        if volume is not None:
            self.write_status(LH_VOLUMES, namespace, volume_name, dict(
                volume.get('status') or {}, lastBackup=name, lastBackupAt=created))
        self.enqueue(TARGETS, namespace, target_name)
        return None

    def fail(self, namespace, name, status, message):
        self.write_status(BACKUPS, namespace, name, dict(status, state='Error', error=message))
        return None

    # restores

    async def restore(self, namespace, name):
        volume = self.api.store.get(LH_VOLUMES, namespace, name)
        status = (volume or {}).get('status') or {}
        if volume is None or not status.get('restoreRequired') or not volume['spec'].get('fromBackup'):
            return None
        usable = self.volumes.usable(namespace, name)
        if not usable:
            return 1.0  # its replicas are not scheduled yet
        try:
            target_url, backup_name, volume_name = parse_backup_url(volume['spec']['fromBackup'])
            target = next((t for t in self.api.store.list(TARGETS, namespace)
                           if (t.get('spec') or {}).get('backupTargetURL', '').rstrip('/') == target_url.rstrip('/')),
                          None)
            if target is None:
                raise StoreError('no backup target has the URL {0}'.format(target_url))
            store = self.store_of(target)
            _config, data = await asyncio.to_thread(store.download, volume_name, backup_name)
        except StoreError as exc:
            self.restore_condition(namespace, name, 'False', 'RestoreFailure', str(exc))
            return 5.0
        disks = self.volumes.disks
        for replica in self.volumes.usable(namespace, name):
            write_atomically(disks.image(replica['spec']['nodeID'], replica['metadata']['name']), data)
        current = self.api.store.get(LH_VOLUMES, namespace, name)
        if current is not None:
            done = dict(current.get('status') or {}, restoreRequired=False, lastBackup=backup_name,
                        lastBackupAt=now())
            done['conditions'] = set_condition(done.get('conditions'), 'Restore', 'False', '', '')
            self.write_status(LH_VOLUMES, namespace, name, done)
        return None

    def restore_condition(self, namespace, name, state, reason, message):
        current = self.api.store.get(LH_VOLUMES, namespace, name)
        if current is not None:
            status = dict(current.get('status') or {})
            status['conditions'] = set_condition(status.get('conditions'), 'Restore', state, reason, message)
            self.write_status(LH_VOLUMES, namespace, name, status)


def _decoded(value):
    import base64
    return base64.b64decode(value).decode()


def set_condition(conditions, kind, state, reason, message):
    others = [c for c in conditions or [] if c.get('type') != kind]
    before = next((c for c in conditions or [] if c.get('type') == kind), None)
    stamp = before['lastTransitionTime'] if before and before.get('status') == state else now()
    return others + [{'type': kind, 'status': state, 'reason': reason, 'message': message, 'lastProbeTime': '',
                      'lastTransitionTime': stamp}]


def unavailable_condition(conditions, problem):
    if problem:
        return set_condition(conditions, 'Unavailable', 'True', 'Unavailable', problem)
    return set_condition(conditions, 'Unavailable', 'False', '', '')


def completed_status(url, target_name, backup, volume_cfg, stamp):
    return {'state': 'Completed', 'progress': 100, 'url': backup_url(url, backup['Name'], backup['VolumeName']),
            'error': '', 'snapshotName': backup.get('SnapshotName', ''),
            'snapshotCreatedAt': backup.get('SnapshotCreatedAt', ''), 'backupCreatedAt': backup.get('CreatedTime', ''),
            'size': backup.get('Size', ''), 'labels': backup.get('Labels') or {}, 'messages': None,
            'volumeName': backup['VolumeName'], 'volumeSize': volume_cfg.get('Size', ''),
            'volumeCreated': volume_cfg.get('CreatedTime', ''), 'volumeBackingImageName': '', 'lastSyncedAt': stamp,
            'compressionMethod': backup.get('CompressionMethod', COMPRESSION), 'backupTargetName': target_name,
            'replicaAddress': '', 'ownerID': ''}


def controllers(api, storage_dir, failures=None):
    """Longhorn's volume and backup controllers, keeping replica data under storage_dir, and the data API."""
    from .longhorn_volumes import Disks, VolumeController, VolumeData
    volumes = Volumes(api, Disks(storage_dir), failures)
    return [VolumeController(api, volumes), BackupController(api, volumes)], VolumeData(volumes)
