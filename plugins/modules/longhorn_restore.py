#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: longhorn_restore
short_description: Restore Longhorn volumes from backups and bind them to their claims
version_added: 0.1.0
description:
  - For each backup, creates a Longhorn C(Volume) with C(fromBackup) set to the backup's URL, of the backed-up
    volume's name and size, and waits until Longhorn has restored it (C(restoreRequired) false, the volume
    detached again).
  - Then creates a PersistentVolume for it (CSI driver C(driver.longhorn.io), C(volumeHandle) the volume's name,
    reserved for the claim) and the PersistentVolumeClaim bound to it (C(spec.volumeName)), so the workload's
    own manifests, applied afterwards, find their data.
  - The claim's namespace is created when missing, labelled C(app.kubernetes.io/managed-by=ephemeral.castle),
    since the claim must exist before the workload's manifests (which may bring the namespace) are applied. With
    O(create_namespace=false) a missing namespace fails the run instead.
  - Without O(backups), restores the newest completed backup of each backup volume Longhorn lists from the
    backup target, found again by the claim recorded in the backup's C(KubernetesStatus) label.
  - A claim already bound to the volume of its backup is left as it is. A claim that exists but is bound to
    something else, or a Longhorn volume of that name not restored from a backup, fails the run naming it;
    nothing is overwritten.
  - One exception, a volume whose data is gone - its replicas all failed, as an etcd restore brings volumes back
    after every node's disk was wiped. It is deleted and restored from its backup under the same
    name, so the claim bound to it stays bound.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.kube
  - ephemeral.castle.kube.LONGHORN_ACTION_GROUP
  - ephemeral.castle.attributes
options:
  backups:
    description:
      - The backups to restore, as RV(ephemeral.castle.longhorn_backup#module:backups) returns them. Each needs
        C(volume) (the Longhorn volume to create) and C(url) (the backup URL) or C(backup) (a Backup Longhorn
        lists from the target).
      - C(claim) (C(namespace/name)) and C(volume_size) (bytes) are read from the Backup Longhorn lists when
        left out. C(replicas) overrides O(number_of_replicas) for one volume.
      - When left out, the newest completed backup of every backup volume on the target.
    type: list
    elements: dict
  claims:
    description: Only restore the backups of these claims (C(namespace/name)).
    type: list
    elements: str
  number_of_replicas:
    description: Replicas of each restored volume. Longhorn's default replica count when left out.
    type: int
  storage_class:
    description: Storage class name of the PersistentVolume and its claim.
    type: str
    default: longhorn
  access_modes:
    description: Access modes of the PersistentVolume and its claim.
    type: list
    elements: str
    default: [ReadWriteOnce]
  fs_type:
    description: Filesystem of the volume, as the CSI driver mounts it.
    type: str
    default: ext4
  reclaim_policy:
    description: What happens to the Longhorn volume when its claim is deleted.
    type: str
    choices: [Delete, Retain]
    default: Delete
  create_namespace:
    description: Create a claim's namespace when it is missing; fail naming it otherwise.
    type: bool
    default: true
  backup_target:
    description: Name of the Longhorn BackupTarget the backups are discovered on.
    type: str
    default: default
  longhorn_namespace:
    description: Namespace Longhorn runs in.
    type: str
    default: longhorn-system
  wait:
    description:
      - Wait until every volume is restored and every claim is bound.
      - Without waiting, the PersistentVolumes and claims are created only for volumes already restored.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait, in all.
    type: int
    default: 1800
"""

EXAMPLES = r"""
- name: Back up before the rebuild
  ephemeral.castle.longhorn_backup:
  register: backup

- name: Restore the volumes and their claims on the new cluster, before Flux applies the workloads
  ephemeral.castle.longhorn_restore:
    backups: "{{ backup.backups }}"
    number_of_replicas: 2

- name: Restore the newest backup of one claim found on the backup target
  ephemeral.castle.longhorn_restore:
    claims: [apps/data-postgres-0]
"""

RETURN = r"""
restored:
  description:
    - One entry per backup, in claim order. C(action) is C(created), C(replaced) (a lost volume restored under
      its name), C(unchanged), or C(restoring) (with O(wait=false), the volume is not restored yet).
  returned: always, also on failure
  type: list
  elements: dict
  sample:
    - {"volume": "pvc-6f0e2a1c", "claim": "apps/data-postgres-0", "pv": "pvc-6f0e2a1c",
       "url": "s3://castle-backups@us-east-1/?backup=pvc-6f0e2a1c-20261204-200000&volume=pvc-6f0e2a1c",
       "size": 1073741824, "action": "created"}
"""

from ansible_collections.ephemeral.castle.plugins.module_utils import longhorn
from ansible_collections.ephemeral.castle.plugins.module_utils._wait import Deadline, wait_until
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.kube import LAYER, KubeClient, condition, diff_of, timed_out


def discovered(store, params):
    """The newest completed backup of every backup volume on the target."""
    found = []
    for backup_volume in store.list('BackupVolume'):
        spec = backup_volume.get('spec') or {}
        if (spec.get('backupTargetName') or params['backup_target']) != params['backup_target']:
            continue
        newest = longhorn.newest_completed(store.backups_of(spec.get('volumeName') or backup_volume['metadata']['name'],
                                                            params['backup_target']))
        if newest is not None:
            found.append(longhorn.backup_summary(newest))
    return found


def completed(store, entry):
    """An entry with its url, claim and size filled in from the Backup Longhorn lists, where left out."""
    entry = dict(entry)
    if not entry.get('volume'):
        raise longhorn.LonghornError('a backup to restore needs its volume: {0}'.format(entry))
    if entry.get('url') and entry.get('claim') and entry.get('volume_size'):
        return entry
    backup = store.get('Backup', entry['backup']) if entry.get('backup') else None
    if backup is None:
        raise longhorn.LonghornError('volume {0}: give url, claim and volume_size, or a backup Longhorn lists '
                                     '(no Backup {1!r})'.format(entry['volume'], entry.get('backup')))
    known = longhorn.backup_summary(backup)
    for key in ('url', 'claim', 'volume_size'):
        entry[key] = entry.get(key) or known[key]
        if not entry[key]:
            raise longhorn.LonghornError('volume {0}: Backup {1} has no {2}'.format(entry['volume'], entry['backup'], key))
    return entry


def desired(entry, params):
    """The Longhorn Volume, PersistentVolume and claim of one entry."""
    namespace, claim = entry['claim'].split('/', 1)
    size = str(entry['volume_size'])
    volume_spec = dict(size=size, fromBackup=entry['url'], frontend='blockdev',
                       accessMode='rwx' if 'ReadWriteMany' in params['access_modes'] else 'rwo')
    replicas = entry.get('replicas') or params['number_of_replicas']
    if replicas:
        volume_spec['numberOfReplicas'] = int(replicas)
    volume = dict(apiVersion=longhorn.API, kind='Volume', spec=volume_spec, metadata=dict(
        name=entry['volume'], namespace=params['longhorn_namespace'], labels=dict(longhorn.MANAGED)))
    pv = dict(apiVersion='v1', kind='PersistentVolume', metadata=dict(name=entry['volume'], labels=dict(longhorn.MANAGED)),
              spec=dict(capacity=dict(storage=size), volumeMode='Filesystem', accessModes=list(params['access_modes']),
                        persistentVolumeReclaimPolicy=params['reclaim_policy'], storageClassName=params['storage_class'],
                        claimRef=dict(apiVersion='v1', kind='PersistentVolumeClaim', namespace=namespace, name=claim),
                        csi=dict(driver=longhorn.DRIVER, fsType=params['fs_type'], volumeHandle=entry['volume'])))
    pvc = dict(apiVersion='v1', kind='PersistentVolumeClaim', metadata=dict(
        name=claim, namespace=namespace, labels=dict(longhorn.MANAGED)),
        spec=dict(accessModes=list(params['access_modes']), storageClassName=params['storage_class'],
                  volumeName=entry['volume'], resources=dict(requests=dict(storage=size))))
    return volume, pv, pvc


def state_of(client, store, entry):
    """'unchanged' when the claim is bound to the entry's volume already, None when there is work to do; raises
    when a claim, PersistentVolume or Longhorn volume of these names exists for something else."""
    namespace, claim_name = entry['claim'].split('/', 1)
    claim = client.get('v1', 'PersistentVolumeClaim', claim_name, namespace)
    volume = store.get('Volume', entry['volume'])
    pv = client.get('v1', 'PersistentVolume', entry['volume'])
    bound_to = ((claim or {}).get('spec') or {}).get('volumeName')
    if claim is not None and bound_to != entry['volume']:
        raise longhorn.LonghornError('claim {0} already exists, bound to {1}, not to the restored volume {2}'.format(
            entry['claim'], 'PersistentVolume ' + bound_to if bound_to else 'no volume yet', entry['volume']))
    from_backup = ((volume or {}).get('spec') or {}).get('fromBackup')
    if volume is not None and lost(store, volume):
        return 'replace'
    if volume is not None and not from_backup:
        raise longhorn.LonghornError('Longhorn volume {0} already exists and was not restored from a backup; '
                                     'not restoring {1} over it'.format(entry['volume'], entry['claim']))
    handle = (((pv or {}).get('spec') or {}).get('csi') or {}).get('volumeHandle')
    if pv is not None and handle != entry['volume']:
        raise longhorn.LonghornError('PersistentVolume {0} already exists for volume {1}, not for {0}'.format(
            entry['volume'], handle))
    if claim is not None and ((claim.get('status') or {}).get('phase')) == 'Bound' and from_backup:
        return 'unchanged'
    return None


def lost(store, volume):
    """A volume whose data is gone: replicas, none healthy, as an etcd restore brings volumes back after every
    node's disk was wiped (faulted when a pod uses it, unknown when detached). It is replaced by its backup under
    the same name, so its claim stays bound."""
    name = volume['metadata']['name']
    replicas = [r for r in store.list('Replica') if (r.get('spec') or {}).get('volumeName') == name]
    return (bool(replicas) and (volume.get('status') or {}).get('robustness') != 'healthy'
            and not any(longhorn.replica_healthy(r) for r in replicas))


def wait_gone(store, names, deadline):
    wait_until(lambda: not any(store.get('Volume', n) for n in names), deadline, lambda: timed_out(
        deadline, 'lost volumes not deleted yet: {0}'.format(', '.join(names))))


def restored(volume):
    """True once Longhorn has restored the volume; raises when the restore failed."""
    status = volume.get('status') or {}
    cond = condition(volume, 'Restore') or {}
    if status.get('robustness') == 'faulted' or cond.get('reason') == 'RestoreFailure':
        raise longhorn.LonghornError('restore of volume {0} failed: {1}'.format(
            volume['metadata']['name'], cond.get('message') or cond.get('reason') or 'the volume is faulted'))
    return status.get('restoreRequired') is False and status.get('state') in ('detached', 'attached')


def wait_restored(store, names, deadline):
    def pending():
        return [n for n in names if not restored(store.get('Volume', n) or {'metadata': {'name': n}})]

    wait_until(lambda: not pending(), deadline, lambda: timed_out(
        deadline, 'volumes not restored yet: {0}'.format(', '.join(pending()))), max_interval=5.0)


def wait_bound(client, claims, deadline):
    def unbound():
        return [c for c in claims if ((client.get('v1', 'PersistentVolumeClaim', c.split('/', 1)[1], c.split('/', 1)[0])
                                       or {}).get('status') or {}).get('phase') != 'Bound']

    wait_until(lambda: not unbound(), deadline, lambda: timed_out(
        deadline, 'claims not bound: {0}'.format(', '.join(unbound()))))


def restore(module, result):
    params = module.params
    deadline = Deadline(params['wait_timeout'])
    client = KubeClient(params)
    store = longhorn.Longhorn(client, params['longhorn_namespace'])
    entries = params['backups'] if params['backups'] is not None else discovered(store, params)
    wanted = params['claims']
    entries = [completed(store, e) for e in entries if not wanted or e.get('claim') in wanted or not e.get('claim')]
    entries = [e for e in entries if not wanted or e['claim'] in wanted]
    missing = sorted(set(wanted or []) - set(e['claim'] for e in entries))
    if missing:
        raise longhorn.LonghornError('no backup to restore for claim {0}'.format(', '.join(missing)))
    for entry in entries:
        if '/' not in entry['claim']:
            raise longhorn.LonghornError('claim {0!r} of volume {1} is not namespace/name'.format(
                entry['claim'], entry['volume']))
    entries.sort(key=lambda e: e['claim'])
    twice = sorted(set(a['claim'] for a, b in zip(entries, entries[1:]) if a['claim'] == b['claim']))
    if twice:
        raise longhorn.LonghornError('more than one backup to restore for claim {0}'.format(', '.join(twice)))
    report = dict((e['claim'], dict(volume=e['volume'], claim=e['claim'], pv=e['volume'], url=e['url'],
                                    size=int(e['volume_size']), action=state_of(client, store, e))) for e in entries)
    result['restored'] = [report[e['claim']] for e in entries]
    lost_volumes = [e['volume'] for e in entries if report[e['claim']]['action'] == 'replace']
    work = [e for e in entries if report[e['claim']]['action'] in (None, 'replace')]
    if lost_volumes and not module.check_mode:
        for name in lost_volumes:
            client.delete(longhorn.API, 'Volume', name, params['longhorn_namespace'])
        wait_gone(store, lost_volumes, deadline)
    objects = dict((e['claim'], desired(e, params)) for e in work)
    new_volumes = [objects[e['claim']][0] for e in work if store.get('Volume', e['volume']) is None]
    changes = client.apply_all(new_volumes, check_mode=module.check_mode, deadline=deadline)
    if params['wait'] and not module.check_mode:
        wait_restored(store, [e['volume'] for e in work], deadline)
    ready = [e for e in work if module.check_mode or restored(store.get('Volume', e['volume']) or {'metadata': {}})]
    binding = []
    for namespace in sorted(set(e['claim'].split('/', 1)[0] for e in ready)):
        if client.get('v1', 'Namespace', namespace) is None:
            if not params['create_namespace']:
                raise longhorn.LonghornError('namespace {0} of claim {1} does not exist (create_namespace=false)'.format(
                    namespace, ', '.join(e['claim'] for e in ready if e['claim'].startswith(namespace + '/'))))
            binding.append(dict(apiVersion='v1', kind='Namespace', metadata=dict(name=namespace,
                                                                                 labels=dict(longhorn.MANAGED))))
    for entry in ready:
        binding.extend(objects[entry['claim']][1:])
    changes += client.apply_all(binding, check_mode=module.check_mode, deadline=deadline)
    if params['wait'] and not module.check_mode:
        wait_bound(client, [e['claim'] for e in ready], deadline)
    for entry in work:
        report[entry['claim']]['action'] = ('replaced' if entry['volume'] in lost_volumes else 'created') \
            if entry in ready else 'restoring'
    result['changed'] = bool(lost_volumes) or any(c['action'] != 'unchanged' for c in changes)
    if module._diff:
        result['diff'] = diff_of(changes)
    return result


def main():
    module = LAYER.module(dict(
        backups=option('list', elements='dict'), claims=option('list', elements='str'),
        number_of_replicas=option('int'), storage_class=option('str', 'longhorn'),
        access_modes=option('list', ['ReadWriteOnce'], elements='str'), fs_type=option('str', 'ext4'),
        reclaim_policy=option('str', 'Delete', choices=['Delete', 'Retain']), create_namespace=option('bool', True),
        backup_target=option('str', 'default'), longhorn_namespace=option('str', longhorn.NAMESPACE),
        wait=option('bool', True), wait_timeout=option('int', 1800)))
    result = dict(changed=False, restored=[])
    run_module(module, lambda: restore(module, result), partial=result)


if __name__ == '__main__':
    main()
