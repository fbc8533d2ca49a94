# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The phoenix gate's consent, as a token.

fleet_gate issues a token when it clears a target (or the operator overrides it): good for exactly the fleet
names the target covers (a cluster's nodes, a node, a machine), for the fleet file as it was read, for a
short time, and once per name and action. The destructive modules (talos_reset, proxmox_vm and
proxmox_vm_batch removing VMs) check it before they act and record each use.

Both live in the phoenix journal, a markdown list an operator reads: each line ends with its record in an
HTML comment (`<!-- castle-gate {...} -->`), which is what is parsed back. The journal holds the token's
SHA-256, never the token."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import fcntl
import getpass
import hashlib
import hmac
import json
import os
import re
import secrets

from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError

RECORD = re.compile(r'<!-- castle-gate (?P<record>\{.*\}) -->\s*$')
HEADER = '# Phoenix journal\n\nEvery cleared or overridden phoenix gate, the token it issued and each use of it.\n\n'


class GateError(CastleError):
    """The gate's consent is missing or does not cover what a module was asked to destroy."""


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def stamp(when):
    return when.strftime('%Y-%m-%dT%H:%M:%SZ')


def digest(text):
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def file_digest(path):
    try:
        with open(path, 'rb') as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except (IOError, OSError) as exc:
        raise GateError('cannot read the fleet file {0}: {1}'.format(path, exc.strerror or exc))


def _parse(text):
    found = []
    for line in text.splitlines():
        match = RECORD.search(line)
        if match:
            try:
                found.append(json.loads(match.group('record')))
            except ValueError:
                continue  # a line edited by hand is not a record
    return found


def records(journal):
    """Every gate record of the journal, in order; [] when there is no journal yet."""
    try:
        with open(journal, encoding='utf-8') as handle:
            return _parse(handle.read())
    except (IOError, OSError) as exc:
        if os.path.exists(journal):
            raise GateError('cannot read the phoenix journal {0}: {1}'.format(journal, exc.strerror or exc))
    return []


def _locked(journal, change):
    """Run change(records) with the journal locked against other writers, and append the lines it returns
    (a new journal gets its heading); returns what change returned with them."""
    try:
        with open(journal, 'a+', encoding='utf-8') as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read()
            lines, value = change(_parse(text))
            if not text:
                handle.write(HEADER)
            handle.write(''.join(line + '\n' for line in lines))
        os.chmod(journal, 0o640)
    except (IOError, OSError) as exc:
        raise GateError('cannot write the phoenix journal {0}: {1}'.format(journal, exc.strerror or exc))
    return value


def _line(text, record):
    return '- {0} <!-- castle-gate {1} -->'.format(text, json.dumps(record, sort_keys=True))


def issue(journal, fleet_path, target, kind, cleared, ttl, decision, now=None):
    """Record a gate decision and the token it issues; returns (token, record, the journal line). `decision` says why the
    target may go (e.g. 'gate passed', or the override and its refusals)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    record = dict(event='issue', sha256=digest(token), id=digest(token)[:12], target=target, kind=kind,
                  cleared=list(cleared), fleet=os.path.abspath(fleet_path), fleet_sha256=file_digest(fleet_path),
                  issued=stamp(now), expires=stamp(now + datetime.timedelta(seconds=ttl)), by=getpass.getuser())
    text = '{0} {1} ({2}) by {3}: {4}; token {5} clears {6} until {7}'.format(
        record['issued'], target, kind, record['by'], decision, record['id'], ', '.join(cleared), record['expires'])
    line = _line(text, record)
    _locked(journal, lambda found: ([line], None))
    return token, record, line


def check(journal, token, names, action, now=None):
    """The issue record of `token` when it covers `action` on every one of `names` now; GateError otherwise."""
    check_given(token, journal, names, action)
    return _covering(records(journal), journal, token, names, action, now or utcnow())


def covers(journal, token, names, now=None):
    """The issue record of `token` when it is good for every one of `names` now, whether or not it was used
    for some of them already: what a module acting on several names checks before it acts on any."""
    check_given(token, journal, names, 'destroy')
    return _covering(records(journal), journal, token, names, None, now or utcnow())


def consume(journal, token, names, action, now=None):
    """check(), then record that the token was used for `action` on each of `names` (under one lock, so two
    runs cannot both use it)."""
    check_given(token, journal, names, action)
    now = now or utcnow()

    def use(found):
        record = _covering(found, journal, token, names, action, now)
        return [_line('{0} token {1} used: {2} {3}'.format(stamp(now), record['id'], action, name),
                      dict(event='use', id=record['id'], action=action, name=name, at=stamp(now)))
                for name in names], record
    return _locked(journal, use)


def check_given(token, journal, names, action):
    """GateError unless both a token and its journal are given (before anything is read or changed)."""
    if not token or not journal:
        raise GateError('{0} {1} destroys it: give gate_token and gate_journal, the token '
                        'ephemeral.castle.fleet_gate issued when it cleared the target and its journal; nothing was '
                        'changed'.format(action, ', '.join(names)))


def _covering(found, journal, token, names, action, now):
    wanted = digest(token)
    issued = [r for r in found if r.get('event') == 'issue' and hmac.compare_digest(str(r.get('sha256', '')), wanted)]
    if not issued:
        raise GateError('gate_token is not a token the gate issued in {0}; nothing was changed'.format(journal))
    record = issued[-1]
    outside = [name for name in names if name not in record['cleared']]
    if outside:
        raise GateError('the gate token {0} clears {1} (target {2}), not {3}; nothing was changed'.format(
            record['id'], ', '.join(record['cleared']) or 'nothing', record['target'], ', '.join(outside)))
    if stamp(now) >= record['expires']:
        raise GateError('the gate token {0} expired at {1}; run the gate again; nothing was changed'.format(
            record['id'], record['expires']))
    for used in found if action else ():
        if used.get('event') == 'use' and used.get('id') == record['id'] and used.get('action') == action \
                and used.get('name') in names:
            raise GateError('the gate token {0} was already used to {1} {2} at {3}; a token is good once; run the '
                            'gate again; nothing was changed'.format(record['id'], action, used['name'], used['at']))
    if file_digest(record['fleet']) != record['fleet_sha256']:
        raise GateError('the fleet file {0} changed since the gate token {1} was issued; run the gate again; '
                        'nothing was changed'.format(record['fleet'], record['id']))
    return record
