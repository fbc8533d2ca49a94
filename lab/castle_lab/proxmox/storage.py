"""Storage as PVE has it on each node: a storage that is not shared is each node's own (files, volumes, free
space), read on the node of the request or task being served; PVE sizes; volume owners; storage maps."""

import contextlib
import contextvars
import copy
import re

from fakepve.formats import split_list
from fakepve.qemu import split_drive, volume_ref
from fakepve.routing import param_error

SIZE_UNITS = {'': 1, 'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3, 'T': 1024 ** 4}
SIZE = re.compile(r'(\+)?(\d+(?:\.\d+)?)([KMGT]?)')
GIB = SIZE_UNITS['G']

# What a storage keeps per node when it is not shared.
PER_NODE = ('files', 'volumes', 'avail')

# The node a request or a task is about: where the storages that are not shared are read.
_NODE = contextvars.ContextVar('castle_lab_pve_node', default=None)


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



class NodeStorage:
    """LabPve's storages that are not shared, read and written as the node of the request or task has them."""


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
