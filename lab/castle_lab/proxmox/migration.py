"""Offline and online migration as qemu-server's migrate_vm and QemuMigrate do it, copying local disks."""

import re
import time

from fakepve import PveError, TaskError
from fakepve.formats import split_list
from fakepve.qemu import DRIVE_KEY, is_cdrom, join_drive, split_drive, volume_ref
from fakepve.routing import die, param_error
from fakepve.storage import BLOCK_NAME

from .. import timing
from .storage import GIB, drive_size, storage_map, volume_owner

# The fewest PVE seconds a migration takes; the rest is timing's pve.migrate, by the GiB of local disk it copies.
MIGRATE_SECS = 2.0
# Storage types QemuMigrate copies local disks of (scan_local_volumes).
MIGRATABLE = ('dir', 'btrfs', 'zfspool', 'lvmthin', 'lvm')


def duration(started):
    """A task's duration as QemuMigrate logs it: HH:MM:SS."""
    secs = int(time.monotonic() - started)
    return '{0:02d}:{1:02d}:{2:02d}'.format(secs // 3600, secs // 60 % 60, secs % 60)



class Migration:
    """LabPve's POST /nodes/{node}/qemu/{vmid}/migrate."""


    async def _qm_migrate(self, v, user):
        """POST .../migrate as qemu-server's migrate_vm and QemuMigrate do it: checks before the task, the
        scan of the local volumes and their copy to the target node in it."""
        node, target = v['node'], v['target']
        if target == node:
            raise param_error(target='target is local node.')
        self.need_quorum()
        if target not in self.nodes:
            raise die("no such cluster node '{0}'".format(target))
        vm = self.find(node, v['vmid'])
        if vm.lock:
            raise die('VM is locked ({0})'.format(vm.lock))
        running = vm.status == 'running'
        if running and not v.get('online'):
            raise die("can't migrate running VM without --online")
        mapping = self._migration_targets(vm, target, v.get('targetstorage'))
        started = time.monotonic()

        async def body():
            self.task_log("starting migration of VM {0} to node '{1}'".format(vm.vmid, target))
            try:
                volumes = self._scan_local_volumes(vm, target, mapping, running, v.get('with-local-disks'))
            except TaskError as exc:
                self.task_log('ERROR: migration aborted (duration {0}): Problem found while scanning volumes - '
                              '{1}'.format(duration(started), exc))
                raise TaskError('migration aborted') from None
            self._qm_lock(vm, 'migrate')
            try:
                await self.pause(max(MIGRATE_SECS, timing.duration(
                    'pve.migrate', gib=sum(size for _k, _v, _t, size in volumes) / GIB)))
                if volumes:
                    self.task_log('copying local disk images')
                for key, volume, target_sid, size in volumes:
                    self._copy_volume(vm, key, volume, target_sid, size, node, target)
                vm.node = target
            finally:
                self._qm_lock(vm, None)
            return 'migration finished successfully (duration {0})'.format(duration(started))
        return await self.task(node, 'qmigrate', vm.vmid, user, body, vm=vm)

    def _migration_targets(self, vm, target, targetstorage):
        """migrate_vm's checks of the target storages; returns a function: source storage -> target storage."""
        if not targetstorage:
            for _key, volume, _props in self._volumes_of(vm):
                sid = volume_ref(volume)[0]
                if sid and sid in self.storages:
                    self._check_enabled(sid, target)
            return lambda sid: sid
        entries, default, identity = storage_map(targetstorage)
        for sid in list(entries.values()) + ([default] if default else []):
            store = self._check_enabled(sid, target)
            if 'images' not in split_list(store.get('content') or ''):
                raise param_error(targetstorage="storage '{0}' does not support vm images".format(sid))
        return lambda sid: entries.get(sid, sid if identity or not default else default)

    @staticmethod
    def _volumes_of(vm):
        """(key, volume, options) of the VM's drives and unused disks."""
        out = []
        for key, value in sorted(vm.config.items()):
            if DRIVE_KEY.match(key) or re.fullmatch(r'unused\d+', key):
                volume, props = split_drive(value)
                if volume:
                    out.append((key, volume, props))
        return out

    def _scan_local_volumes(self, vm, target, mapping, running, with_local_disks):
        """QemuMigrate's scan_local_volumes: the local volumes to copy as (key, volume, target storage, bytes),
        or a TaskError naming why the VM cannot migrate (each volume's reason in the task log)."""
        problems, other, found = {}, [], []
        for key, volume, props in self._volumes_of(vm):
            cdrom = is_cdrom(volume, props)
            if cdrom and volume == 'cdrom':
                other.append("can't migrate local cdrom drive")
                continue
            if volume == 'none':
                continue
            sid, name = volume_ref(volume)
            if sid is None or sid not in self.storages or self.storages[sid].get('shared'):
                continue
            target_sid = mapping(sid) if not self.storages[sid].get('shared') else sid
            try:
                self._check_enabled(target_sid, target)
            except PveError as exc:
                problems[volume] = exc.message
                continue
            if cdrom:
                problems[volume] = 'local cdrom image'
                continue
            owner, _base = volume_owner(name)
            if owner != vm.vmid:
                problems[volume] = 'owned by other VM (owner = VM {0})'.format(owner)
                continue
            if any(name + '/' in str(value) for other_vm in self.vms if other_vm is not vm
                   for value in other_vm.config.values()):
                problems[volume] = 'referenced by linked clone(s)'
                continue
            if running and not key.startswith('unused') and not with_local_disks:
                problems[volume] = "can't live migrate attached local disks without with-local-disks option"
            found.append((key, volume, target_sid))
        for volume in sorted(v for _k, v, _t in found if v not in problems):
            self.task_log("found local disk '{0}' (in current VM config)".format(volume))
        for volume in sorted(problems):
            self.task_log("can't migrate local disk '{0}': {1}".format(volume, problems[volume]))
        for message in other:
            self.task_log(message)
        if problems or other:
            raise TaskError("can't migrate VM - check log")
        volumes = []
        for key, volume, target_sid in found:
            sid, name = volume_ref(volume)
            kind = self.storages[sid].get('type', 'dir')
            if kind not in MIGRATABLE:
                raise TaskError("can't migrate '{0}' - storage type '{1}' not supported".format(volume, kind))
            base = volume_owner(name)[1]
            if base:
                raise TaskError("can't migrate '{0}' as it's a clone of '{1}'".format(volume, base))
            record = self._volumes(sid).get(name) or {}
            volumes.append((key, volume, target_sid, int(record.get('size') or 0) or drive_size(vm.config[key])))
        return volumes

    def _copy_volume(self, vm, key, volume, target_sid, size, node, target):
        """storage_migrate: the volume is allocated on the target node (renamed if its name is taken there),
        and freed on the source node."""
        sid, name = volume_ref(volume)
        with self.on_node(node):
            record = dict(self._volumes(sid).get(name) or {'content': 'images', 'format': 'raw', 'vmid': vm.vmid})
        with self.on_node(target):
            store = self.storages[target_sid]
            fmt = 'raw' if store.get('type') in BLOCK_NAME else record.get('format') or 'raw'
            plain = re.sub(r'\.(raw|qcow2|vmdk)$', '', name.split('/')[-1])
            new_name, fmt = self._volume_name(store, vm.vmid, fmt, plain)
            if new_name in self._volumes(target_sid):
                new_name, fmt = self._volume_name(store, vm.vmid, fmt, self._qm_free_name(target_sid, vm.vmid, fmt)
                                                  .split('/')[-1].rsplit('.', 1)[0])
            if 'avail' in store:
                if size > store['avail']:
                    raise TaskError("storage migration for '{0}' to storage '{1}' failed - unable to write to "
                                    "storage '{1}': No space left on device".format(volume, target_sid))
                store['avail'] -= size
            store.setdefault('volumes', {})[new_name] = dict(record, format=fmt, size=size, vmid=vm.vmid)
        with self.on_node(node):
            self._qm_free(volume)
        new = '{0}:{1}'.format(target_sid, new_name)
        props = split_drive(vm.config[key])[1]
        vm.config[key] = join_drive(new, props)
        self.task_log("volume '{0}' is '{1}' on the target".format(volume, new))
