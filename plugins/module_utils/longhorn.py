# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Longhorn's objects (longhorn.io/v1beta2) read and written through the Kubernetes layer's client.
PRIVATE to the collection: other collections must not import it.

Names and fields are Longhorn's: a Backup names its volume and target in the labels `backup-volume` and
`backup-target`, and carries the volume's Kubernetes status (its claim) as JSON in the backup label
`KubernetesStatus`, which is how a claim is found again from a backup on a rebuilt cluster."""

import datetime
import json

from ansible_collections.ephemeral.castle.plugins.module_utils._wait import Deadline, wait_until
from ansible_collections.ephemeral.castle.plugins.module_utils.kube import KubeError, condition

API = 'longhorn.io/v1beta2'
NAMESPACE = 'longhorn-system'
DRIVER = 'driver.longhorn.io'
BACKUP_VOLUME_LABEL = 'backup-volume'
BACKUP_TARGET_LABEL = 'backup-target'
KUBERNETES_STATUS_LABEL = 'KubernetesStatus'
# Backup states after which Longhorn does no more work on the backup.
FINAL_STATES = ('Completed', 'Error', 'Unknown')
# Seconds to wait for Longhorn to sync a backup target it last found unavailable.
SYNC_WAIT = 30
MANAGED = {'app.kubernetes.io/managed-by': 'ephemeral.castle'}


class LonghornError(KubeError):
    """Longhorn refused or failed what was asked; the message names the volume, backup or target."""


def parse_time(text):
    """An RFC 3339 time as Longhorn and Kubernetes write it, timezone-aware; None when empty or unreadable."""
    if not text:
        return None
    try:
        found = datetime.datetime.fromisoformat(str(text).replace('Z', '+00:00'))
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=datetime.timezone.utc)


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def claim_ref(namespace, name):
    return '{0}/{1}'.format(namespace, name) if namespace and name else None


def claim_of_volume(volume):
    """`namespace/name` of the claim Longhorn reports for a volume, or None."""
    status = ((volume.get('status') or {}).get('kubernetesStatus')) or {}
    return claim_ref(status.get('namespace'), status.get('pvcName'))


def claim_of_backup(backup):
    """`namespace/name` of the claim the volume had when the backup was taken, from its KubernetesStatus label."""
    labels = ((backup.get('status') or {}).get('labels')) or ((backup.get('spec') or {}).get('labels')) or {}
    try:
        status = json.loads(labels.get(KUBERNETES_STATUS_LABEL) or '{}')
    except ValueError:
        return None
    return claim_ref(status.get('namespace'), status.get('pvcName')) if isinstance(status, dict) else None


def backup_volume_name(backup):
    return (backup['metadata'].get('labels') or {}).get(BACKUP_VOLUME_LABEL) or (
        (backup.get('status') or {}).get('volumeName'))


def backup_time(backup):
    """When the backup was taken: its upload end, else its snapshot's time, else when the object was made."""
    status = backup.get('status') or {}
    return (parse_time(status.get('backupCreatedAt')) or parse_time(status.get('snapshotCreatedAt'))
            or parse_time(backup['metadata'].get('creationTimestamp')))


def newest_completed(backups):
    """The newest Completed backup of a list, or None."""
    done = [b for b in backups if (b.get('status') or {}).get('state') == 'Completed']
    epoch = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
    return max(done, key=lambda b: (backup_time(b) or epoch, b['metadata']['name'])) if done else None


def backup_summary(backup, claim=None):
    """What a module returns about one backup (and what longhorn_restore takes back)."""
    status = backup.get('status') or {}
    size = status.get('volumeSize')
    return dict(volume=backup_volume_name(backup), claim=claim or claim_of_backup(backup),
                backup=backup['metadata']['name'], url=status.get('url') or None, state=status.get('state') or None,
                created=status.get('backupCreatedAt') or None, size=status.get('size') or None,
                volume_size=int(size) if str(size or '').isdigit() else None)


def replica_healthy(replica):
    """A replica Longhorn has not marked failed and whose instance is not in error."""
    spec, status = replica.get('spec') or {}, replica.get('status') or {}
    return not spec.get('failedAt') and status.get('currentState') != 'error'


def volume_summary(volume, replicas):
    """A volume with its state, its replicas and the nodes holding a healthy replica."""
    spec, status = volume.get('spec') or {}, volume.get('status') or {}
    own = sorted((r for r in replicas if (r.get('spec') or {}).get('volumeName') == volume['metadata']['name']),
                 key=lambda r: r['metadata']['name'])
    listed = [dict(name=r['metadata']['name'], node=(r.get('spec') or {}).get('nodeID') or None,
                   state=(r.get('status') or {}).get('currentState') or None, healthy=replica_healthy(r)) for r in own]
    nodes = sorted(set(r['node'] for r in listed if r['healthy'] and r['node']))
    wanted = spec.get('numberOfReplicas')
    healthy_count = len([r for r in listed if r['healthy']])
    robustness = status.get('robustness') or None
    return dict(name=volume['metadata']['name'], state=status.get('state') or None, robustness=robustness,
                size=int(spec['size']) if str(spec.get('size', '')).isdigit() else None,
                number_of_replicas=wanted, replicas=listed, nodes=nodes, claim=claim_of_volume(volume),
                pv=((status.get('kubernetesStatus') or {}).get('pvName')) or None,
                last_backup=status.get('lastBackup') or None, last_backup_at=status.get('lastBackupAt') or None,
                degraded=robustness in ('degraded', 'faulted') or healthy_count < (wanted or 1))


class Longhorn(object):
    """Longhorn's objects in its namespace, through a KubeClient."""

    def __init__(self, client, namespace=NAMESPACE):
        self.client = client
        self.namespace = namespace

    def list(self, kind, label_selector=None):
        try:
            return self.client.list(API, kind, self.namespace, label_selector=label_selector)
        except KubeError as exc:
            raise LonghornError('cannot list Longhorn {0}s in {1}; is Longhorn installed? {2}'.format(
                kind, self.namespace, exc))

    def get(self, kind, name):
        return self.client.get(API, kind, name, self.namespace)

    def apply(self, kind, name, spec, labels=None):
        meta = dict(name=name, namespace=self.namespace, labels=dict(MANAGED, **(labels or {})))
        return self.client.server_side_apply(dict(apiVersion=API, kind=kind, metadata=meta, spec=spec))

    def volumes(self):
        return sorted(self.list('Volume'), key=lambda v: v['metadata']['name'])

    def backups_of(self, volume, target=None):
        found = self.list('Backup', label_selector='{0}={1}'.format(BACKUP_VOLUME_LABEL, volume))
        if target:
            found = [b for b in found if ((b['metadata'].get('labels') or {}).get(BACKUP_TARGET_LABEL)
                                          or (b.get('spec') or {}).get('backupTargetName') or target) == target]
        return found

    def summaries(self):
        """Every volume's summary, in name order."""
        replicas = self.list('Replica')
        return [volume_summary(v, replicas) for v in self.volumes()]

    def check_target(self, name, deadline=None):
        """The BackupTarget, when Longhorn reports it available; LonghornError naming it and why otherwise. Given a
        deadline, a target Longhorn last found unavailable is asked to sync again (spec.syncRequestedAt) and
        its answer waited for, so a store that is back is not refused for a whole poll interval."""
        target = self.get('BackupTarget', name)
        if target is None:
            raise LonghornError('BackupTarget {0}/{1} does not exist; configure the backup target first'.format(
                self.namespace, name))
        if not (target.get('status') or {}).get('available') and deadline is not None:
            target = self.sync_target(name, deadline)
        if not (target.get('status') or {}).get('available'):
            unavailable = condition(target, 'Unavailable') or {}
            raise LonghornError('BackupTarget {0}/{1} ({2}) is not available: {3}'.format(
                self.namespace, name, (target.get('spec') or {}).get('backupTargetURL') or 'no URL set',
                unavailable.get('message') or 'Longhorn has not reported it available yet'))
        return target

    def sync_target(self, name, deadline):
        """The BackupTarget after Longhorn synced it on request (or as it is when Longhorn does not answer in
        time, at most SYNC_WAIT seconds)."""
        requested = now().replace(microsecond=0)
        self.client.server_side_apply(dict(apiVersion=API, kind='BackupTarget', metadata=dict(
            name=name, namespace=self.namespace), spec=dict(syncRequestedAt=requested.strftime('%Y-%m-%dT%H:%M:%SZ'))))

        wait = Deadline(min(SYNC_WAIT, deadline.left))

        def synced():
            target = self.get('BackupTarget', name) or {}
            last = parse_time((target.get('status') or {}).get('lastSyncedAt'))
            return target if (last is not None and last >= requested) or wait.passed else None

        return wait_until(synced, wait, lambda: LonghornError('BackupTarget {0} did not sync'.format(name)))

    def select(self, wanted):
        """The volumes named in `wanted` (a Longhorn volume name or `namespace/claim`), every volume when empty."""
        volumes = self.volumes()
        if not wanted:
            return volumes
        by_name = dict((v['metadata']['name'], v) for v in volumes)
        by_claim = dict((claim_of_volume(v), v) for v in volumes if claim_of_volume(v))
        found, unknown = [], []
        for item in wanted:
            volume = by_claim.get(item) if '/' in item else by_name.get(item)
            if volume is None:
                unknown.append(item)
            elif volume not in found:
                found.append(volume)
        if unknown:
            raise LonghornError('no Longhorn volume for {0} (give a Longhorn volume name or namespace/claim)'.format(
                ', '.join(unknown)))
        return found
