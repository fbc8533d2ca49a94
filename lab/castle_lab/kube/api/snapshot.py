"""The API's store as an etcd snapshot carries it: every object with its uid and resourceVersion, and the store's
revision, serialised as the lab's JSON and followed, as `etcdctl snapshot save` writes it, by the sha256 of what
precedes it (32 bytes). The JSON is padded with spaces to whole 512-byte blocks, so the file's size modulo 512 is
32: the test talosctl and etcd make for a hash trailer."""

import hashlib
import itertools
import json
import zlib

from .registry import crd_types

HASH_SIZE = 32
BLOCK = 512
CRDS = ('apiextensions.k8s.io', 'customresourcedefinitions')


class SnapshotInvalid(Exception):
    """A file that is no snapshot; the message is the one etcd's snapshot status gives."""


def dump(store):
    """The snapshot of the store now (one call on the server's event loop: a consistent view)."""
    objects = [[group, plural, obj] for (group, plural), found in sorted(store.objects.items())
               for _ident, obj in sorted(found.items())]
    body = json.dumps({'revision': store.revision, 'objects': objects}, sort_keys=True).encode()
    body += b' ' * (-len(body) % BLOCK)
    return body + hashlib.sha256(body).digest()


def has_hash(data):
    """etcd's test for a hash trailer (etcdutl snapshot hasChecksum)."""
    return len(data) % BLOCK == HASH_SIZE


def database(data):
    """The snapshot without its hash trailer, if it has one."""
    return data[:-HASH_SIZE] if has_hash(data) else data


def parse(data):
    """(revision, [(key, object)]) of a snapshot or of its database."""
    try:
        found = json.loads(database(data).decode())
        revision = int(found['revision'])
        objects = [((group, plural), obj) for group, plural, obj in found['objects']]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise SnapshotInvalid('invalid database') from None
    return revision, objects


def status(data):
    """What `etcdutl snapshot status` reports: hash (of the database), revision, total keys, total size."""
    revision, objects = parse(data)
    body = database(data)
    return {'hash': zlib.crc32(body), 'revision': revision, 'total_key': len(objects), 'total_size': len(body)}


def verify(data, skip_hash_check=False):
    """The database a restore writes, after etcd's integrity check (etcdutl snapshot copyAndVerifyDB); ValueError
    with etcd's message when the check fails."""
    if not has_hash(data):
        if not skip_hash_check:
            raise ValueError('snapshot missing hash but --skip-hash-check=false')
        return data
    body, trailer = data[:-HASH_SIZE], data[-HASH_SIZE:]
    if not skip_hash_check:
        actual = hashlib.sha256(body).digest()
        if actual != trailer:
            raise ValueError('expected sha256 {0}, got {1}'.format(_go_bytes(trailer), _go_bytes(actual)))
    return body


def _go_bytes(value):
    """A byte slice as Go's %v prints it."""
    return '[{0}]'.format(' '.join(str(b) for b in value))


def restore(api, data):
    """Replace the API's objects with a snapshot's database: objects keep their uids and resourceVersions, the
    revision goes on from the snapshot's, CRDs serve their types at once (as the restored etcd's data is there
    before kube-apiserver starts). The controllers then reconcile what they find."""
    revision, objects = parse(data)
    store = api.store
    store.objects.clear()
    for key, obj in objects:
        meta = obj['metadata']
        store.objects[key][(meta.get('namespace', ''), meta['name'])] = obj
    store.revision = max(revision, store.revision)
    store.history.clear()
    for crd in store.list(CRDS):
        for rtype in crd_types(crd):
            api.registry.add(rtype)
    # New Services get cluster IPs after the restored ones.
    used = [_address(svc.get('spec', {}).get('clusterIP')) for svc in store.list(('', 'services'))]
    api.cluster_ips = itertools.count(max([address + 1 for address in used if address is not None] + [10]))


def _address(cluster_ip):
    """The counter value of a 10.96.x.y cluster IP, or None."""
    parts = str(cluster_ip or '').split('.')
    if len(parts) != 4 or parts[:2] != ['10', '96'] or not all(p.isdigit() for p in parts):
        return None
    return int(parts[2]) * 250 + int(parts[3]) - 1
