# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters over backups; their documentation is in the YAML file of each filter beside this one."""

import os
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

KINDS = ('etcd', 'vault', 'volume')


def backup_record(result, kind, error=None):
    """One backup as the gate (fleet_gate's backups) and the restore read it: from a snapshot module's registered
    result (kind etcd or vault), from one volume of longhorn_backup's `backups`, or, with `error`, from one volume
    of longhorn_volume_info that a failed backup run left without a backup."""
    if kind not in KINDS:
        raise AnsibleFilterError('backup_record: kind must be one of {0}, got {1!r}'.format(', '.join(KINDS), kind))
    if not isinstance(result, Mapping):
        raise AnsibleFilterError('backup_record: expected a module result or a volume (a mapping), got {0}'.format(
            type(result).__name__))
    if kind != 'volume':
        if result.get('failed') or not result.get('path') or not result.get('sha256'):
            # Failed, skipped, or run in check mode: no snapshot file to restore from.
            return {'kind': kind, 'name': '{0} snapshot'.format(kind), 'state': 'Error', 'created': None,
                    'error': result.get('msg') or 'no snapshot was taken{0}'.format(
                        ' (check mode)' if result.get('path') else '')}
        return {'kind': kind, 'name': os.path.basename(result['path']), 'path': result['path'],
                'sha256': result.get('sha256'), 'size': result.get('size'), 'node': result.get('node'),
                'state': 'Completed', 'created': result.get('taken_at'), 'error': ''}
    volume = result.get('volume') or result.get('name')
    if error is not None:
        return {'kind': 'volume', 'name': volume, 'volume': volume, 'claim': result.get('claim'), 'state': 'Error',
                'created': None, 'error': error}
    return {'kind': 'volume', 'name': result.get('backup') or result.get('name'), 'backup': result.get('backup'),
            'volume': volume, 'claim': result.get('claim'), 'url': result.get('url'), 'size': result.get('size'),
            'volume_size': result.get('volume_size'),
            'state': result.get('state'), 'created': result.get('created'), 'error': result.get('error') or ''}


class FilterModule:
    def filters(self):
        return {'backup_record': backup_record}
