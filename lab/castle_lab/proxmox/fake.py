"""What the lab adds to fakepve: disk resize, clone and create that take time, shared config locks, and a reset;
with storage that is each node's own unless shared (storage.py), offline and online migration that copy local
disks (migration.py) and download-url that really downloads (downloads.py).

Everything here runs on the fake's event loop, like fakepve's own handlers.
"""

import asyncio
import contextvars
import copy

from fakepve import FakePve, TaskError
from fakepve.lxc import format_size
from fakepve.model import lock_timeout
from fakepve.qemu import DRIVE_KEY, is_cdrom, join_drive, split_drive, volume_ref
from fakepve.routing import die, param_error
from fakepve.storage import BLOCK_NAME

from .. import timing
from .downloads import Downloads
from .migration import Migration
from .storage import GIB, NodeStorage, drive_size, resized

# The lab's tasks take timing's durations in PVE seconds: fakepve's time_scale turns them into real ones (0, the
# default: at once); the real timing profile sets it to 1.
# qemu-server takes a clone's source and target config locks with a 1 second timeout.
CLONE_LOCK_WAIT = 1
# Holder of a config lock taken in shared mode (clones of a stopped VM or template).
SHARED = 'shared'

# The task a body runs in ({'upid': ...}), for its log lines.
_TASK = contextvars.ContextVar('castle_lab_pve_task', default=None)

# What restore_initial() puts back at once, and what only once no task runs any more.
CONDITIONS = ('network', 'nodes', 'ceph')
CONTENTS = ('vms', 'cts', 'storages', 'pools', 'pool_info')



class LabPve(NodeStorage, Migration, Downloads, FakePve):
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
        if timing.current().real:
            self.time_scale = 1.0

    # ------------------------------------------------------------ routes

    def _routes_lab(self):
        one = '/nodes/{node}/qemu/{vmid}'
        return [('PUT', one + '/resize', self._qm_resize), ('POST', one + '/migrate', self._qm_migrate)]

    # ------------------------------------------------------ node storage
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
        linked = timing.duration('pve.clone.linked')
        if not full:
            return linked
        config = source.snapshots.get(v.get('snapname'), source.config)
        total = 0
        for key, value in config.items():
            if DRIVE_KEY.match(key):
                volume, props = split_drive(value)
                if not is_cdrom(volume, props) and volume_ref(volume)[0]:
                    total += drive_size(value)
        return max(linked, timing.duration('pve.clone.full', gib=total / GIB))

    async def task(self, node, ttype, tid, user, body, vm=None, lock=True, log=()):
        # Only the real workers: an injected in-task failure starts a task of the same type without a VM.
        if ttype == 'qmclone' and vm is not None:
            body = self._clone_worker(int(tid), vm, body, self._clone_secs.pop(vm.vmid, 0))
        elif ttype == 'qmcreate' and vm is not None:
            body = self._after_pause(timing.duration('pve.create'), body)
        elif ttype == 'qmstart' and vm is not None:
            body = self._after_pause(timing.duration('pve.start'), body)
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
        self.time_scale = 1.0 if timing.current().real else 0.0
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
