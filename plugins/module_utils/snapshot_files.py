# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Snapshot files on the controller (etcd, Vault raft): where one goes, whether a recent one is there already,
and putting a new one in place whole, 0600, beside its `<file>.sha256` (sha256sum's format, so
`sha256sum -c` checks it in the snapshot's directory). PRIVATE to the collection."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import glob
import hashlib
import os
import tempfile

from ansible_collections.ephemeral.castle.plugins.module_utils._files import FileWriteError, read_text, write_atomic
from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError

# The time in a snapshot's file name when dest is a directory: UTC, sorts as it is taken.
STAMP = '%Y%m%dT%H%M%SZ'
CHUNK = 1024 * 1024


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.strftime('%Y-%m-%dT%H:%M:%SZ')


def is_directory(dest):
    return dest.endswith(os.sep) or os.path.isdir(dest)


def target_path(dest, prefix, suffix, moment):
    """The snapshot's path: dest itself, or in the directory dest `<prefix>-<UTC time><suffix>`."""
    if is_directory(dest):
        return os.path.join(dest, '{0}-{1}{2}'.format(prefix, moment.strftime(STAMP), suffix))
    return dest


def sha256_of(path):
    digest = hashlib.sha256()
    try:
        with open(path, 'rb') as handle:
            for block in iter(lambda: handle.read(CHUNK), b''):
                digest.update(block)
    except (IOError, OSError) as exc:
        raise FileWriteError('cannot read {0}: {1}'.format(path, exc))
    return digest.hexdigest()


def recorded_sha256(path):
    """The hash `<path>.sha256` records for path, or None when there is none for it."""
    text = read_text(path + '.sha256')
    fields = (text or '').split()
    if len(fields) == 2 and fields[1].lstrip('*') == os.path.basename(path):
        return fields[0].lower()
    return None


def describe(path, moment=None):
    """path, size, sha256 and taken_at (the file's modification time unless given) of a snapshot file."""
    info = os.stat(path)
    moment = moment or datetime.datetime.fromtimestamp(info.st_mtime, datetime.timezone.utc)
    return dict(path=path, size=info.st_size, sha256=sha256_of(path), taken_at=iso(moment))


def recent(dest, prefix, suffix, max_age, moment):
    """The snapshot at dest (in a directory: the newest `<prefix>-*<suffix>`) taken less than max_age seconds
    before moment and matching its .sha256, or None."""
    if not max_age:
        return None
    if is_directory(dest):
        found = sorted(glob.glob(os.path.join(glob.escape(dest), '{0}-*{1}'.format(glob.escape(prefix), suffix))))
        candidates = [path for path in found if not path.endswith('.sha256')][-1:]
    else:
        candidates = [dest] if os.path.isfile(dest) else []
    for path in candidates:
        age = moment.timestamp() - os.stat(path).st_mtime
        if 0 <= age < max_age:
            kept = describe(path)
            if recorded_sha256(path) == kept['sha256']:
                return kept
    return None


def temp_beside(path):
    """An empty 0600 file in path's directory (so a rename puts it in place) for a snapshot to be written to."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
    except (IOError, OSError) as exc:
        raise FileWriteError('cannot write {0}: {1}'.format(path, exc))
    os.close(fd)
    return tmp


def discard(path):
    try:
        os.remove(path)
    except OSError:
        pass


def put_in_place(tmp, path, moment):
    """Move the finished snapshot tmp to path (mode 0600) and write path.sha256; its description."""
    try:
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except (IOError, OSError) as exc:
        discard(tmp)
        raise FileWriteError('cannot write {0}: {1}'.format(path, exc))
    found = describe(path, moment)
    write_atomic(path + '.sha256', '{0}  {1}\n'.format(found['sha256'], os.path.basename(path)), 0o600)
    return found


def take(module, suffix, write):
    """A module's snapshot at dest (options dest, prefix, max_age): a recent one kept (changed=False), or a new one
    write(tmp) writes into tmp, a file beside it, put in place; write returns more fields of the result. In check
    mode nothing is written."""
    params = module.params
    if params['max_age'] < 0:
        raise CastleError('max_age must be 0 or more seconds, not {0}'.format(params['max_age']))
    moment = now_utc()
    path = target_path(params['dest'], params['prefix'], suffix, moment)
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise FileWriteError('dest: no directory {0} to write the snapshot in'.format(os.path.dirname(path)))
    kept = recent(params['dest'], params['prefix'], suffix, params['max_age'], moment)
    if kept:
        return dict(changed=False, **kept)
    result = dict(changed=True, path=path, taken_at=iso(moment))
    if module._diff:
        result['diff'] = dict(before=dict(snapshot=None), after=dict(snapshot=path))
    if module.check_mode:
        return result
    tmp = temp_beside(path)
    try:
        result.update(write(tmp))
        result.update(put_in_place(tmp, path, moment))
    finally:
        discard(tmp)
    return result


def readable(path, option):
    """FileWriteError naming the option unless path is a file that can be read."""
    if not path or not os.path.isfile(path):
        raise FileWriteError('{0}: no snapshot file at {1}'.format(option, path))
    try:
        with open(path, 'rb') as handle:
            handle.read(1)
    except (IOError, OSError) as exc:
        raise FileWriteError('{0}: cannot read {1}: {2}'.format(option, path, exc))
