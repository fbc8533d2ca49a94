#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: longhorn_backup
short_description: Back up Longhorn volumes to the backup target and wait until the backups are complete
version_added: 0.1.0
description:
  - Checks first that Longhorn reports the BackupTarget available. A target Longhorn last found unavailable is
    asked to sync again (C(spec.syncRequestedAt)) and its answer waited for, up to 30 seconds, so a store that is
    back is not refused until the next poll. Still unavailable, it fails naming the target, its URL and the
    message of its C(Unavailable) condition, creating nothing (in check mode, without asking for a sync).
  - For each selected volume, creates a Longhorn C(Snapshot) (C(createSnapshot=true)), waits until it is ready to
    use, then creates a C(Backup) of it labelled with its volume and target, as Longhorn's own backup call does,
    and waits until the backup is C(Completed).
  - Each backup carries the volume's Kubernetes status (its claim) in the backup label C(KubernetesStatus), so
    M(ephemeral.castle.longhorn_restore) finds the claim again from the backup store of a rebuilt cluster.
  - Fails naming each volume whose backup ends in C(Error) (with Longhorn's message) or C(Unknown).
  - With O(max_age), a volume whose newest C(Completed) backup is younger is not backed up again, so a re-run
    changes nothing.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.kube
  - ephemeral.castle.kube.LONGHORN_ACTION_GROUP
attributes:
  check_mode:
    description: Runs in check mode, reporting whether it would change anything while changing nothing.
    support: full
    details: In check mode the target is checked and the volumes it would back up are reported; nothing is created.
  diff_mode:
    description: Returns no diff.
    support: none
options:
  volumes:
    description:
      - Volumes to back up, each a Longhorn volume name or a claim as C(namespace/name).
      - Every Longhorn volume of the cluster when left out.
    type: list
    elements: str
  max_age:
    description:
      - Seconds. A volume whose newest completed backup on the target is younger is not backed up again.
      - Every selected volume is backed up when left out.
    type: int
  backup_target:
    description: Name of the Longhorn BackupTarget to back up to.
    type: str
    default: default
  backup_mode:
    description: Longhorn's backup mode, C(incremental) (only blocks changed since the last backup) or C(full).
    type: str
    choices: [incremental, full]
    default: incremental
  labels:
    description: Labels stored with each backup in the backup store.
    type: dict
    default: {}
  longhorn_namespace:
    description: Namespace Longhorn runs in.
    type: str
    default: longhorn-system
  wait_timeout:
    description: Seconds to wait for the snapshots and backups, in all.
    type: int
    default: 600
"""

EXAMPLES = r"""
- name: Back up every Longhorn volume unless it has a backup younger than a day
  ephemeral.castle.longhorn_backup:
    max_age: 86400
  register: backup

- name: Back up two claims now
  ephemeral.castle.longhorn_backup:
    volumes: [apps/data-postgres-0, apps/uploads]
    wait_timeout: 1800
"""

RETURN = r"""
backups:
  description:
    - One entry per selected volume, in volume name order; the list M(ephemeral.castle.longhorn_restore) takes.
    - A volume kept by O(max_age) has its newest completed backup and C(changed=false).
    - In check mode a volume it would back up has C(changed=true) and no backup yet.
  returned: always, also on failure
  type: list
  elements: dict
  sample:
    - {"volume": "pvc-6f0e2a1c", "claim": "apps/data-postgres-0", "backup": "pvc-6f0e2a1c-20261204-200000",
       "url": "s3://castle-backups@us-east-1/?backup=pvc-6f0e2a1c-20261204-200000&volume=pvc-6f0e2a1c",
       "state": "Completed", "created": "2026-12-04T20:00:04Z", "size": "4194304", "volume_size": 1073741824,
       "changed": true}
"""

import json

from ansible_collections.ephemeral.castle.plugins.module_utils import longhorn
from ansible_collections.ephemeral.castle.plugins.module_utils._wait import Deadline, wait_until
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.kube import LAYER, KubeClient, timed_out


def kept_backup(store, volume, params):
    """The volume's newest completed backup when it is younger than max_age, else None."""
    if params['max_age'] is None:
        return None
    newest = longhorn.newest_completed(store.backups_of(volume['metadata']['name'], params['backup_target']))
    taken = newest and longhorn.backup_time(newest)
    if taken and (longhorn.now() - taken).total_seconds() < params['max_age']:
        return newest
    return None


def backup_labels(volume, params):
    """The backup's own labels: the operator's, and the volume's Kubernetes status as Longhorn records it."""
    labels = dict(params['labels'])
    kubernetes_status = (volume.get('status') or {}).get('kubernetesStatus')
    if kubernetes_status:
        labels[longhorn.KUBERNETES_STATUS_LABEL] = json.dumps(kubernetes_status, sort_keys=True)
    return labels


def take_backups(store, volumes, params, deadline):
    """Snapshot, then back up, every volume; {volume name: its Backup once final}."""
    stamp = longhorn.now().strftime('%Y%m%d-%H%M%S')
    names = dict((v['metadata']['name'], '{0}-{1}'.format(v['metadata']['name'], stamp)) for v in volumes)
    for volume, name in sorted(names.items()):
        store.apply('Snapshot', name, dict(volume=volume, createSnapshot=True))

    def snapshots_ready():
        snapshots = dict((volume, store.get('Snapshot', name) or {}) for volume, name in names.items())
        failed = ['{0}: {1}'.format(v, s['status']['error']) for v, s in sorted(snapshots.items())
                  if (s.get('status') or {}).get('error')]
        if failed:
            raise longhorn.LonghornError('snapshot failed for volume {0}'.format('; '.join(failed)))
        return [v for v, s in sorted(snapshots.items()) if not (s.get('status') or {}).get('readyToUse')]

    wait_until(lambda: not snapshots_ready(), deadline, lambda: timed_out(
        deadline, 'snapshots not ready to use for volume {0}'.format(', '.join(snapshots_ready()))))
    for volume in volumes:
        volume_name = volume['metadata']['name']
        store.apply('Backup', names[volume_name], dict(
            snapshotName=names[volume_name], labels=backup_labels(volume, params), backupMode=params['backup_mode']),
            labels={longhorn.BACKUP_VOLUME_LABEL: volume_name, longhorn.BACKUP_TARGET_LABEL: params['backup_target']})

    def backups():
        return dict((volume, store.get('Backup', name) or {'metadata': {'name': name}}) for volume, name in names.items())

    def running():
        found = []
        for name, backup in sorted(backups().items()):
            status = backup.get('status') or {}
            if status.get('state') not in longhorn.FINAL_STATES:
                found.append('{0} ({1}, {2}%)'.format(name, status.get('state') or 'New', status.get('progress') or 0))
        return found

    wait_until(lambda: not running(), deadline, lambda: timed_out(
        deadline, 'backups not complete for volume {0}'.format(', '.join(running()))), max_interval=5.0)
    return backups()


def back_up(module, result):
    params = module.params
    if params['max_age'] is not None and params['max_age'] < 0:
        raise longhorn.LonghornError('max_age must be 0 or more seconds, not {0}'.format(params['max_age']))
    deadline = Deadline(params['wait_timeout'])
    store = longhorn.Longhorn(KubeClient(params), params['longhorn_namespace'])
    store.check_target(params['backup_target'], None if module.check_mode else deadline)
    volumes = store.select(params['volumes'])
    elsewhere = ['{0} ({1})'.format(v['metadata']['name'], v['spec']['backupTargetName']) for v in volumes
                 if (v.get('spec') or {}).get('backupTargetName') not in (None, '', params['backup_target'])]
    if elsewhere:
        raise longhorn.LonghornError('volume {0} backs up to another target than {1}'.format(
            ', '.join(elsewhere), params['backup_target']))
    to_back_up = []
    entries = {}
    for volume in volumes:
        name, claim = volume['metadata']['name'], longhorn.claim_of_volume(volume)
        kept = kept_backup(store, volume, params)
        if kept is not None:
            entries[name] = dict(longhorn.backup_summary(kept, claim), volume=name, changed=False)
        else:
            to_back_up.append(volume)
            entries[name] = dict(volume=name, claim=claim, backup=None, url=None, state=None, created=None,
                                 size=None, volume_size=None, changed=True)
    result['backups'] = [entries[v['metadata']['name']] for v in volumes]
    result['changed'] = bool(to_back_up)
    if not to_back_up or module.check_mode:
        return result
    taken = take_backups(store, to_back_up, params, deadline)
    for name, backup in taken.items():
        entries[name].update(longhorn.backup_summary(backup, entries[name]['claim']), volume=name)
    result['backups'] = [entries[v['metadata']['name']] for v in volumes]
    failed = ['{0} ({1}): {2}'.format(name, backup['status'].get('state'), backup['status'].get('error') or 'no message')
              for name, backup in sorted(taken.items()) if backup['status'].get('state') != 'Completed']
    if failed:
        raise longhorn.LonghornError('backup failed for volume {0}'.format('; '.join(failed)))
    return result


def main():
    module = LAYER.module(dict(
        volumes=option('list', elements='str'), max_age=option('int'), backup_target=option('str', 'default'),
        backup_mode=option('str', 'incremental', choices=['incremental', 'full']), labels=option('dict', {}),
        longhorn_namespace=option('str', longhorn.NAMESPACE), wait_timeout=option('int', 600)))
    result = dict(changed=False, backups=[])
    run_module(module, lambda: back_up(module, result), partial=result)


if __name__ == '__main__':
    main()
