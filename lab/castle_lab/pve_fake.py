"""What the lab adds to fakepve: disk resize, clone and create that take time, storage that is each node's
own unless shared, offline and online migration that copy local disks, download-url that really downloads,
and a reset.

Everything here runs on the fake's event loop, like fakepve's own handlers.
"""

import asyncio
import contextlib
import contextvars
import copy
import hashlib
import ipaddress
import os
import re
import ssl
import time
import urllib.parse

import aiohttp
from fakepve import FakePve, PveError, TaskError
from fakepve.formats import split_list
from fakepve.lxc import format_size
from fakepve.model import lock_timeout
from fakepve.qemu import DRIVE_KEY, is_cdrom, join_drive, split_drive, volume_ref
from fakepve.routing import die, param_error
from fakepve.storage import BLOCK_NAME, TEMPLATE_EXT

SIZE_UNITS = {'': 1, 'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3, 'T': 1024 ** 4}
SIZE = re.compile(r'(\+)?(\d+(?:\.\d+)?)([KMGT]?)')
GIB = SIZE_UNITS['G']

# PVE seconds the lab's tasks take when time_scale > 0.
FULL_CLONE_SECS_PER_GIB = 1.0
LINKED_CLONE_SECS = 2.0
CREATE_SECS = 3.0
# qemu-server takes a clone's source and target config locks with a 1 second timeout.
CLONE_LOCK_WAIT = 1
# Holder of a config lock taken in shared mode (clones of a stopped VM or template).
SHARED = 'shared'
# PVE seconds an offline migration takes to copy a GiB of local disk.
MIGRATE_SECS_PER_GIB = 1.0
MIGRATE_SECS = 2.0
# Storage types QemuMigrate copies local disks of (scan_local_volumes).
MIGRATABLE = ('dir', 'btrfs', 'zfspool', 'lvmthin', 'lvm')
# What a storage keeps per node when it is not shared.
PER_NODE = ('files', 'volumes', 'avail')
# download-url's file names per content type (PVE::API2::Storage::Status, PVE::Storage's *_EXT_RE).
DOWNLOAD_NAMES = {
    'iso': (re.compile(r'[^/]+\.(?:iso|img)$', re.I), 'wrong file extension'),
    'vztmpl': (re.compile(r'[^/]+' + TEMPLATE_EXT + '$'), 'wrong file extension'),
    'import': (re.compile(r'[-a-zA-Z0-9_.+=]+\.(?:ova|ovf|qcow2|raw|vmdk)$'), 'invalid filename or wrong extension'),
}
CHECKSUMS = ('md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512')
# Exit codes of wget, which PVE downloads with: network failure, TLS verification failure, an HTTP error.
WGET_NETWORK, WGET_TLS, WGET_SERVER = 4, 5, 8

# The node a request or a task is about: where the storages that are not shared are read.
_NODE = contextvars.ContextVar('castle_lab_pve_node', default=None)
# The task a body runs in ({'upid': ...}), for its log lines.
_TASK = contextvars.ContextVar('castle_lab_pve_task', default=None)

# What restore_initial() puts back at once, and what only once no task runs any more.
CONDITIONS = ('network', 'nodes', 'ceph')
CONTENTS = ('vms', 'cts', 'storages', 'pools', 'pool_info')


def _size_request(text):
    """(relative, bytes) of a size as PVE writes it, with an optional leading `+`."""
    found = SIZE.fullmatch(str(text).strip())
    if not found:
        raise ValueError('invalid size {0!r}'.format(text))
    return bool(found.group(1)), int(float(found.group(2)) * SIZE_UNITS[found.group(3)])


def parse_size(text):
    """Bytes in a PVE size (`20G`, `512M`, `1.5T`, `1048576`); ValueError for anything else."""
    relative, amount = _size_request(text)
    if relative:
        raise ValueError('invalid size {0!r}'.format(text))
    return amount


def resized(current, request):
    """The size in bytes `PUT .../resize size=<request>` asks for: `+2G` grows by 2 GiB, `30G` means 30 GiB."""
    relative, amount = _size_request(request)
    return current + amount if relative else amount


def duration(started):
    """A task's duration as QemuMigrate logs it: HH:MM:SS."""
    secs = int(time.monotonic() - started)
    return '{0:02d}:{1:02d}:{2:02d}'.format(secs // 3600, secs // 60 % 60, secs % 60)


def drive_size(value):
    """Bytes in a drive's `size=` option (0 without one)."""
    size = split_drive(value)[1].get('size')
    try:
        return parse_size(size) if size else 0
    except ValueError:
        return 0


class NodeLocalStore(dict):
    """A storage that is not shared: storage.cfg's options are the cluster's, but the files, volumes and
    free space are each node's own (pve-storage: `local` on pve1 is another disk than `local` on pve2).

    The node is the one of the request or task being served (LabPve.on_node() elsewhere).
    """

    def __init__(self, options, nodes):
        super().__init__((key, value) for key, value in options.items() if key not in PER_NODE)
        self.empty = {'files': set(), 'volumes': {}}
        if 'avail' in options:
            self.empty['avail'] = options['avail']
        self.per_node = {node: copy.deepcopy(self.empty) for node in nodes}

    def part(self, node=None):
        node = node or _NODE.get()
        if node is None:
            raise RuntimeError('storage {0!r} is not shared: say which node it is read on'.format(self.get('path')))
        if node not in self.per_node:
            self.per_node[node] = copy.deepcopy(self.empty)
        return self.per_node[node]

    def __getitem__(self, key):
        return self.part()[key] if key in PER_NODE else super().__getitem__(key)

    def __setitem__(self, key, value):
        if key in PER_NODE:
            self.part()[key] = value
        else:
            super().__setitem__(key, value)

    def __contains__(self, key):
        return key in self.part() if key in PER_NODE else super().__contains__(key)

    def get(self, key, default=None):
        return self.part().get(key, default) if key in PER_NODE else super().get(key, default)

    def setdefault(self, key, default=None):
        return self.part().setdefault(key, default) if key in PER_NODE else super().setdefault(key, default)

    def pop(self, key, *default):
        return self.part().pop(key, *default) if key in PER_NODE else super().pop(key, *default)

    def __deepcopy__(self, memo):
        new = NodeLocalStore.__new__(NodeLocalStore)
        dict.update(new, copy.deepcopy(dict(self), memo))
        new.empty = copy.deepcopy(self.empty, memo)
        new.per_node = copy.deepcopy(self.per_node, memo)
        return new


def storage_map(text):
    """PVE's parse_idmap of `targetstorage`: ({source: target}, default target, identity)."""
    entries, default, identity = {}, None, False
    for item in split_list(str(text)):
        if item == '1':
            identity = True
        elif ':' in item:
            source, target = item.split(':', 1)
            entries[source] = target
        elif default is not None:
            raise param_error(targetstorage='failed to parse storage map: default target specified multiple times')
        else:
            default = item
    return entries, default, identity


def volume_owner(name):
    """(owner VMID, base volume or None) of a VM disk's volume name (`vm-101-disk-0`,
    `base-9000-disk-0/vm-101-disk-0`, `101/vm-101-disk-0.qcow2`)."""
    base = None
    if '/' in name and name.split('/', 1)[0].startswith('base-'):
        base, name = name.split('/', 1)
    found = re.search(r'(?:^|/)(?:vm|base|subvol|basevol)-(\d+)-', name)
    return (int(found.group(1)) if found else None), base


class LabPve(FakePve):
    """fakepve with the behaviour the collection's Proxmox layer depends on."""

    def __init__(self, *args, storage_dir=None, ca_file=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Where downloaded files are written (none: kept in memory), and the CA download-url trusts.
        self.storage_dir = storage_dir
        self.ca_file = ca_file
        self._clone_secs = {}
        self._shared_holders = {}
        self._initial = None
        # Called with no arguments once restore_initial() has replaced the guests.
        self.on_guests_replaced = []

    # ------------------------------------------------------------ routes

    def _routes_lab(self):
        one = '/nodes/{node}/qemu/{vmid}'
        return [('PUT', one + '/resize', self._qm_resize), ('POST', one + '/migrate', self._qm_migrate)]

    # ------------------------------------------------------ node storage

    @contextlib.contextmanager
    def on_node(self, node):
        """Read and write the storages that are not shared as `node` has them."""
        token = _NODE.set(node)
        try:
            yield
        finally:
            _NODE.reset(token)

    def local_storages(self, *names):
        """Make these storages each node's own, as every storage is in PVE unless marked shared."""
        for name in names:
            store = self.storages[name]
            if not isinstance(store, NodeLocalStore) and not store.get('shared'):
                self.storages[name] = NodeLocalStore(store, self.nodes)

    async def _answer(self, request, handler, generic, path_node):
        with self.on_node(path_node):
            return await super()._answer(request, handler, generic, path_node)

    def _volumes(self, name):
        store = self.storages[name]
        if not isinstance(store, NodeLocalStore):
            return super()._volumes(name)
        node = _NODE.get()
        out = {}
        for fname in sorted(store['files']):
            out['iso/' + fname] = {'content': 'iso', 'format': 'iso', 'size': 0, 'ctime': 0}
        out.update(store.get('volumes', {}))
        # Disks the configs of this node's guests reference: another node's guests have theirs on their node.
        guests = [guest for guest in self._guests() if getattr(guest, 'node', None) == node]
        for volname, (vmid, content, size) in self._guest_volumes(guests, name).items():
            if volname not in out:
                out[volname] = {'content': content, 'format': self._ext_format(volname), 'size': size, 'vmid': vmid,
                                'ctime': 0}
        return out

    def volume_bytes(self, node, volid):
        """The bytes of a file download-url stored on the node, or None."""
        sid, volname = volume_ref(volid)
        with self.on_node(node):
            record = self._volumes(sid).get(volname) if sid in self.storages else None
        if not record:
            return None
        if record.get('path'):
            with open(record['path'], 'rb') as handle:
                return handle.read()
        return record.get('data')

    def _qm_free(self, volid):
        """Only a VM's own disks are freed with it: qemu-server's destroy_vm skips CD-ROM drives and volumes without
        this owner, so the ISO a VM booted stays on its storage (fakepve freed it)."""
        if volume_owner(volume_ref(volid)[1] or '')[0] is None:
            return
        super()._qm_free(volid)

    # ------------------------------------------------------------- tasks

    def _upid(self, node, ttype, tid, user):
        made = super()._upid(node, ttype, tid, user)
        box = _TASK.get()
        if box is not None and 'upid' not in box:
            box['upid'] = made[0]
        return made

    def task_log(self, line):
        """Add a line to the log of the task whose body runs now."""
        box = _TASK.get()
        if box and box.get('upid') in self.tasks:
            self.tasks[box['upid']]['log'].append(line)

    # ------------------------------------------------------------ resize

    async def _qm_resize(self, v, user):
        vm = self.find(v['node'], v['vmid'])
        if v.get('skiplock') and user != 'root@pam':
            raise param_error(skiplock='Only root may use this option.')
        disk, request = v['disk'], str(v['size'])

        async def body():
            # Since PVE 8 the checks run in the worker: a refused resize is a failed task.
            if v.get('digest') and v['digest'] != vm.digest():
                raise TaskError('checksum mismatch (file change by other user?)')
            if vm.lock and not v.get('skiplock'):
                raise TaskError('VM is locked ({0})'.format(vm.lock))
            if not vm.config.get(disk):
                raise TaskError("disk '{0}' does not exist".format(disk))
            volume, props = split_drive(vm.config[disk])
            if not volume or volume == 'none':
                raise TaskError("disk '{0}' has no associated volume".format(disk))
            if is_cdrom(volume, props):
                raise TaskError("you can't resize a cdrom")
            sid, name = volume_ref(volume)
            if not self.allowed(user, '/storage/{0}'.format(sid), 'Datastore.AllocateSpace'):
                raise TaskError('Permission check failed (/storage/{0}, Datastore.AllocateSpace)'.format(sid))
            store = self.storages.get(sid, {})
            record = store.get('volumes', {}).get(name)
            current = int(record.get('size') or 0) if record else 0
            current = current or drive_size(vm.config[disk])
            new = resized(current, request)
            if new < current:
                raise TaskError('shrinking disks is not supported')
            if new == current:
                return None
            growth = new - current
            if 'avail' in store:
                if growth > store['avail']:
                    raise TaskError("unable to write to storage '{0}': No space left on device".format(sid))
                store['avail'] -= growth
            if record is not None:
                record['size'] = new
            vm.config[disk] = join_drive(volume, dict(props, size=format_size(new)))
            return None
        return await self.task(vm.node, 'resize', vm.vmid, user, body, vm=vm)

    # ----------------------------------------------------------- migrate

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
                await self.pause(max(MIGRATE_SECS, MIGRATE_SECS_PER_GIB * sum(size for _k, _v, _t, size in volumes)
                                     / GIB))
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

    # ----------------------------------------------------- clone, create

    async def _qm_clone(self, v, user):
        self._refuse_cross_node_clone(v)
        newid = int(v['newid'])
        self._clone_secs[newid] = self._clone_duration(v)
        try:
            return await super()._qm_clone(v, user)
        finally:
            self._clone_secs.pop(newid, None)

    def _qm_alloc(self, sid, vmid, fmt, size, linked_from=None):
        volid, fmt = super()._qm_alloc(sid, vmid, fmt, size, linked_from=linked_from)
        store = self.storages[sid]
        if linked_from and store.get('type') in BLOCK_NAME:
            # A linked clone on a block storage is named <base>/<name>, as LvmThinPlugin's clone_image names it.
            name = volume_ref(volid)[1]
            base = linked_from.split('/')[-1]
            store['volumes']['{0}/{1}'.format(base, name)] = store['volumes'].pop(name)
            volid = '{0}:{1}/{2}'.format(sid, base, name)
        return volid, fmt

    def _refuse_cross_node_clone(self, v):
        """clone_vm with a `target` node: every disk and CD-ROM image of the source must be on shared storage
        (qemu-server's check_storage_access_clone), else PVE refuses before it forks the task."""
        target = v.get('target')
        if not target or target in (v['node'], 'localhost') or target not in self.nodes:
            return
        storage = self.storages.get(v.get('storage') or '')
        if storage is not None and not storage.get('shared'):
            return  # PVE refuses the target storage first ("can't clone to non-shared storage")
        source = self.vm(int(v['vmid']))
        if source is None or source.node != v['node']:
            return
        config = source.snapshots.get(v['snapname'], source.config) if v.get('snapname') else source.config
        for key, value in config.items():
            if not DRIVE_KEY.match(key):
                continue
            volume = split_drive(value)[0]
            sid = volume_ref(volume)[0] if volume not in ('', 'none', 'cdrom') else None
            if sid in self.storages and not self.storages[sid].get('shared'):
                raise die("can't clone VM to node '{0}' (VM uses local storage)".format(target))

    def _clone_duration(self, v):
        """PVE seconds a clone takes: a full one copies its disks, a linked one only links them."""
        source = self.vm(int(v['vmid']))
        if source is None:
            return 0
        full = v.get('full')
        if full is None:
            full = not source.template
        if not full:
            return LINKED_CLONE_SECS
        config = source.snapshots.get(v.get('snapname'), source.config)
        total = 0
        for key, value in config.items():
            if DRIVE_KEY.match(key):
                volume, props = split_drive(value)
                if not is_cdrom(volume, props) and volume_ref(volume)[0]:
                    total += drive_size(value)
        return max(LINKED_CLONE_SECS, FULL_CLONE_SECS_PER_GIB * total / GIB)

    async def task(self, node, ttype, tid, user, body, vm=None, lock=True, log=()):
        # Only the real workers: an injected in-task failure starts a task of the same type without a VM.
        if ttype == 'qmclone' and vm is not None:
            body = self._clone_worker(int(tid), vm, body, self._clone_secs.pop(vm.vmid, 0))
        elif ttype == 'qmcreate' and vm is not None:
            body = self._after_pause(CREATE_SECS, body)
        # The task's body runs on the task's node, and knows its UPID for task_log().
        token = _TASK.set({})
        try:
            with self.on_node(node):
                return await super().task(node, ttype, tid, user, body, vm=vm, lock=lock, log=log)
        finally:
            _TASK.reset(token)

    def _after_pause(self, secs, body):
        async def slow():
            await self.pause(secs)
            return await body()
        return slow

    def _clone_worker(self, source_vmid, new, body, secs):
        """qemu-server's clone worker: the source's config lock (shared unless it runs), then the new VM's."""
        holder = 'clone-{0}'.format(new.vmid)

        async def worker():
            source = self.vm(source_vmid)
            exclusive = source.status == 'running'
            try:
                if exclusive:
                    await self.acquire(source, holder, wait=CLONE_LOCK_WAIT)
                else:
                    await self.acquire_shared(source, wait=CLONE_LOCK_WAIT)
            except TaskError:
                if new in self.vms:  # PVE had not written the new config yet
                    self.vms.remove(new)
                raise
            try:
                await self.acquire(new, holder, wait=CLONE_LOCK_WAIT)
                try:
                    await self.pause(secs)
                    return await body()
                finally:
                    self.release(new, holder)
            finally:
                if exclusive:
                    self.release(source, holder)
                else:
                    self.release_shared(source)
        return worker

    # ------------------------------------------------------ download-url

    async def _download_url(self, request):
        """POST /nodes/{node}/storage/{storage}/download-url as pve-storage's download_url and pve-common's
        download_file_from_url: the file is fetched (loopback URLs only), its checksum verified, and stored
        on that node's storage; an existing file is refused unless its checksum is the one given."""
        from fakepve.server import USER, ok, params
        node, name = request.match_info['node'], request.match_info['storage']
        user = request[USER]
        self.require(user, '/storage/' + name, 'Datastore.AllocateTemplate')
        self.require(user, '/', 'Sys.Audit')
        self.require(user, '/', 'Sys.Modify')
        p = self._verify(request, await params(request))
        for one, other in (('checksum', 'checksum-algorithm'), ('checksum-algorithm', 'checksum')):
            if p.get(one) and not p.get(other):
                raise param_error(**{other: "missing property - '{0}' requires this property".format(one)})
        store = self._active_store(name, node)
        self._need_file_storage(store, "can't upload to storage type '{0}', not a file based storage!")
        content, url = p['content'], p['url']
        if content not in split_list(store.get('content') or ''):
            raise die("storage '{0}' is not configured for content-type '{1}'".format(name, content))
        filename = re.sub(r'[^-a-zA-Z0-9_.]', '_', p['filename'])
        pattern, complaint = DOWNLOAD_NAMES[content]
        if not pattern.fullmatch(filename):
            raise param_error(filename=complaint)
        volname = '{0}/{1}'.format(content, filename)
        dest = self._volume_path(name, volname, content)
        algorithm, expected = p.get('checksum-algorithm'), (p.get('checksum') or '').lower()
        verify = p.get('verify-certificates', 1) not in (0, '0', False)

        async def body():
            self.task_log('downloading {0} to {1}'.format(url, dest))
            if volname in self._volumes(name):
                if not algorithm:
                    raise TaskError("refusing to override existing file '{0}'".format(dest))
                got = hashlib.new(algorithm, self.volume_bytes(node, '{0}:{1}'.format(name, volname)) or b'') \
                    .hexdigest()
                if got != expected:
                    self.task_log('calculating checksum of existing file...')
                    raise TaskError("checksum mismatch: got '{0}' != expect '{1}', aborting".format(got, expected))
                self.task_log('calculating checksum of existing file...OK, got correct file already, '
                              'no need to download')
                return None
            data = await self._fetch(url, verify)
            if algorithm:
                got = hashlib.new(algorithm, data).hexdigest()
                if got != expected:
                    self.task_log('calculating checksum...')
                    raise TaskError("checksum mismatch: got '{0}' != expect '{1}'".format(got, expected))
                self.task_log('calculating checksum...OK, checksum verified')
            self._store_download(node, name, content, filename, data)
            return "download of '{0}' to '{1}' finished".format(url, dest)
        return ok(await self.task(node, 'download', filename.replace(':', '\\x3a'), user, body))

    async def _fetch(self, url, verify):
        """The body at the URL, as wget would fetch it; only loopback hosts are reached from the lab."""
        host = urllib.parse.urlsplit(url).hostname or ''
        try:
            loopback = host == 'localhost' or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            self.task_log('the lab downloads from loopback addresses only, not {0!r}'.format(host))
            raise TaskError('download failed: exit code {0}'.format(WGET_NETWORK))
        context = False
        if verify and url.startswith('https:'):
            context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(url, ssl=context, timeout=aiohttp.ClientTimeout(total=300)) as response:
                    if response.status >= 400:
                        self.task_log('ERROR {0}: {1}.'.format(response.status, response.reason))
                        raise TaskError('download failed: exit code {0}'.format(WGET_SERVER))
                    return await response.read()
        except aiohttp.ClientSSLError as exc:
            self.task_log('ERROR: cannot verify {0}\'s certificate: {1}'.format(host, exc))
            raise TaskError('download failed: exit code {0}'.format(WGET_TLS)) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self.task_log('failed: {0}.'.format(exc))
            raise TaskError('download failed: exit code {0}'.format(WGET_NETWORK)) from None

    def _store_download(self, node, name, content, filename, data):
        """Put the downloaded bytes on the node's storage: a real file under storage_dir, or kept in memory."""
        self.store_file(name, filename, len(data), content)
        record = self.storages[name]['volumes']['{0}/{1}'.format(content, filename)]
        if self.storage_dir:
            path = os.path.join(self.storage_dir, node, name, content, filename)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'wb') as handle:
                handle.write(data)
            record['path'] = path
        else:
            record['data'] = data

    # ------------------------------------------------------ shared locks

    async def acquire_shared(self, vm, wait):
        """Take the VM config lock in shared mode (flock LOCK_SH): other shared holders do not block it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait * self.time_scale
        while vm.lock_holder not in (None, SHARED):
            remaining = deadline - loop.time()
            if not self.time_scale or remaining <= 0:
                raise TaskError(lock_timeout(vm.vmid))
            vm.lock_released = vm.lock_released or asyncio.Event()
            try:
                await asyncio.wait_for(vm.lock_released.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        vm.lock_holder = SHARED
        self._shared_holders[vm] = self._shared_holders.get(vm, 0) + 1

    def release_shared(self, vm):
        left = self._shared_holders.pop(vm, 1) - 1
        if left:
            self._shared_holders[vm] = left
        else:
            self.release(vm, SHARED)

    # ------------------------------------------------------------- reset

    def network_conditions(self, **given):
        """Change only the network conditions given; a seed re-seeds the randomness at once."""
        net = self.network
        if {'latency', 'jitter'} & set(given):
            self.slow_network(given.get('latency', net['latency']), given.get('jitter', net['jitter']))
        flaky = ('drop_rate', 'hang_rate', 'hang_secs', 'seed')
        if set(flaky) & set(given):
            self.flaky_network(**{key: given.get(key, net[key]) for key in flaky})
        if given.get('seed') is not None:
            self._random.seed(given['seed'])
        return dict(net)

    def keep_initial(self):
        """Remember the current state as the one restore_initial() returns to."""
        self._initial = copy.deepcopy({name: getattr(self, name) for name in CONDITIONS + CONTENTS})

    async def restore_initial(self, wait):
        """Back to keep_initial()'s state once running tasks end (up to `wait` real seconds).

        Returns the UPIDs still running at the deadline; only failures, network, nodes, Ceph, quorum,
        time scale and scenario locks are reset then, so no late task lands in the restored guests.
        """
        self.failures.clear()
        for name in CONDITIONS:
            setattr(self, name, copy.deepcopy(self._initial[name]))
        self.regain_quorum()
        self.time_scale = 0.0
        for vm in self.vms:
            self.release(vm, 'scenario')
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while self.running_tasks() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        running = self.running_tasks()
        if running:
            return running
        for name in CONTENTS:
            setattr(self, name, copy.deepcopy(self._initial[name]))
        self._shared_holders.clear()
        kept = {vm.vmid for vm in self.vms}
        guests = self._fw()['guests']
        for vmid in [vmid for vmid in guests if vmid not in kept]:
            del guests[vmid]
        self.requests.clear()
        for callback in self.on_guests_replaced:
            callback()
        return []

    def running_tasks(self):
        return sorted(upid for upid, task in self.tasks.items() if task['status'] == 'running')
