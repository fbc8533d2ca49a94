# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""From proxmox_vm's options to PVE config keys, and the smallest change from what a VM has.
PRIVATE to the collection. Pure functions: no API calls here."""

import re

UNITS = {'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3, 'T': 1024 ** 4}
SIZE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*$', re.IGNORECASE)
DISK_SLOT = re.compile(r'^(scsi|virtio|sata|ide)\d+$')
NET_SLOT = re.compile(r'^net\d+$')
NET_MODELS = ('virtio', 'e1000', 'e1000e', 'rtl8139', 'vmxnet3')
MAC = re.compile(r'^[0-9A-F]{2}(:[0-9A-F]{2}){5}$', re.IGNORECASE)
# Keys the module can set that PVE stores as 0/1.
FLAG_KEYS = ('onboot', 'protection')
INT_KEYS = ('cores', 'sockets', 'memory', 'balloon')
STARTUP_ORDER = ('order', 'up', 'down')


class SpecError(ValueError):
    """The options ask for something impossible; the message names the option."""


def parse_size(text):
    """Bytes in a PVE size (`20G`, `512M`, `1.5T`; a bare number is GiB, as PVE reads it)."""
    match = SIZE.match(str(text))
    if not match:
        raise SpecError('{0!r} is not a size (use a number with K, M, G or T)'.format(text))
    number, unit = match.groups()
    return int(float(number) * UNITS[(unit or 'G').upper()])


def format_size(size):
    """The shortest exact PVE size for a number of bytes."""
    for unit in ('T', 'G', 'M', 'K'):
        if size % UNITS[unit] == 0:
            return '{0}{1}'.format(size // UNITS[unit], unit)
    return str(size)


def split_props(value):
    """`vol,key=v,flag=1` -> ('vol', {'key': 'v', 'flag': '1'})."""
    parts = [p for p in str(value).split(',') if p != '']
    head = parts[0] if parts else ''
    props = {}
    for part in parts[1:]:
        key, sep, val = part.partition('=')
        props[key] = val if sep else '1'
    return head, props


def join_props(head, props, order=()):
    keys = [k for k in order if k in props] + sorted(k for k in props if k not in order)
    return ','.join([head] + ['{0}={1}'.format(k, props[k]) for k in keys])


def _flag(value):
    return '1' if value else '0'


def _truthy(text):
    return str(text).strip().lower() in ('1', 'on', 'yes', 'true')


def normalise_tags(value):
    if isinstance(value, (list, tuple)):
        items = value
    else:
        items = re.split(r'[;, ]+', str(value or ''))
    return ';'.join(sorted(set(t.strip().lower() for t in items if t and t.strip())))


def parse_startup(value):
    props = {}
    for part in str(value or '').split(','):
        key, sep, val = part.partition('=')
        if sep:
            props[key.strip()] = val.strip()
        elif key.strip():
            props['order'] = key.strip()
    return props


def format_startup(startup):
    return ','.join('{0}={1}'.format(k, startup[k]) for k in STARTUP_ORDER if startup.get(k) is not None)


def agent_enabled(value):
    head, props = split_props(value)
    if '=' in head:
        key, val = head.split('=', 1)
        props[key] = val
        head = ''
    return _truthy(props.get('enabled', head or '0'))


def parse_net(value):
    """`virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=10` -> dict with model and mac."""
    head, props = split_props(value)
    model, _sep, mac = head.partition('=')
    props = dict(props)
    props['model'] = model
    if mac:
        props['macaddr'] = mac.upper()
    return props


def format_net(net):
    head = net['model'] + ('=' + net['macaddr'] if net.get('macaddr') else '')
    props = dict((k, v) for k, v in net.items() if k not in ('model', 'macaddr'))
    return join_props(head, props, order=('bridge', 'tag', 'firewall'))


def scalar_config(params):
    """The plain keys the options ask for, as PVE stores them; options left unset are absent."""
    cfg = {}
    for key in INT_KEYS:
        if params.get(key) is not None:
            cfg[key] = str(int(params[key]))
    for key in ('cpu', 'scsihw'):
        if params.get(key):
            cfg[key] = params[key]
    for key in FLAG_KEYS:
        if params.get(key) is not None:
            cfg[key] = _flag(params[key])
    if params.get('agent') is not None:
        cfg['agent'] = _flag(params['agent'])
    if params.get('tags') is not None:
        cfg['tags'] = normalise_tags(params['tags'])
    if params.get('description') is not None:
        cfg['description'] = params['description'].rstrip()
    if params.get('startup'):
        cfg['startup'] = format_startup(params['startup'])
    if params.get('boot'):
        cfg['boot'] = 'order=' + ';'.join(params['boot'])
    if params.get('iso'):
        cfg['ide2'] = '{0},media=cdrom'.format(params['iso'])
    if params.get('name'):
        cfg['name'] = params['name']
    return cfg


def _scalar_equal(key, want, have):
    if have is None:
        return False
    if key in INT_KEYS:
        return str(have).split(',', maxsplit=1)[0].replace('current=', '') == want
    if key in FLAG_KEYS:
        return _flag(_truthy(have)) == want
    if key == 'agent':
        return _flag(agent_enabled(have)) == want
    if key == 'tags':
        return normalise_tags(have) == want
    if key == 'description':
        return str(have).rstrip() == want
    if key == 'startup':
        return parse_startup(have) == parse_startup(want)
    if key == 'ide2':
        return split_props(have)[0] == split_props(want)[0]
    return str(have) == want


def disk_value(spec, volume=None, current_props=None):
    """A disk entry: the existing volume with updated options, or `storage:GiB` for a new one."""
    props = dict(current_props or {})
    for option in ('discard', 'iothread', 'ssd'):
        if spec.get(option) is not None:
            if option == 'discard':
                props['discard'] = 'on' if spec[option] else 'ignore'
            else:
                props[option] = _flag(spec[option])
    if volume is None:
        props.pop('size', None)
        gib = max(1, -(-parse_size(spec['size']) // UNITS['G']))
        return join_props('{0}:{1}'.format(spec['storage'], gib), props)
    return join_props(volume, props, order=('size',))


def _disk_options_equal(spec, props):
    for option in ('discard', 'iothread', 'ssd'):
        if spec.get(option) is None:
            continue
        have = props.get(option)
        if option == 'discard':
            if (have == 'on') != bool(spec[option]):
                return False
        elif _truthy(have or '0') != bool(spec[option]):
            return False
    return True


def check_spec(params):
    """Reject impossible options before any request; errors name the option."""
    for disk in params.get('disks') or []:
        if not DISK_SLOT.match(disk['slot']):
            raise SpecError('disks: slot {0!r} is not a disk slot such as scsi0, virtio1, sata0'.format(disk['slot']))
        parse_size(disk['size'])
    slots = [d['slot'] for d in params.get('disks') or []]
    if len(set(slots)) != len(slots):
        raise SpecError('disks: a slot is listed twice ({0})'.format(', '.join(slots)))
    for net in params.get('networks') or []:
        if not NET_SLOT.match(net['slot']):
            raise SpecError('networks: slot {0!r} is not a network slot such as net0'.format(net['slot']))
        if net.get('mac') and not MAC.match(net['mac']):
            raise SpecError('networks: {0!r} is not a MAC address'.format(net['mac']))
        if net.get('vlan') is not None and not 1 <= net['vlan'] <= 4094:
            raise SpecError('networks: vlan {0} is outside 1-4094'.format(net['vlan']))
    if params.get('target_storage') and params.get('full') is False:
        raise SpecError('target_storage applies to full clones only; a linked clone stays on the template\'s storage')
    if params.get('balloon') and params.get('memory') and params['balloon'] > params['memory']:
        raise SpecError('balloon ({0}) cannot exceed memory ({1})'.format(params['balloon'], params['memory']))


def desired_net(spec, current=None):
    net = dict(current or {})
    net['model'] = spec.get('model') or net.get('model') or 'virtio'
    if spec.get('mac'):
        net['macaddr'] = spec['mac'].upper()
    if spec.get('bridge'):
        net['bridge'] = spec['bridge']
    if spec.get('vlan') is not None:
        net['tag'] = str(spec['vlan'])
    if spec.get('firewall') is not None:
        net['firewall'] = _flag(spec['firewall'])
    return net


def plan_changes(params, effective):
    """What to write so `effective` (the VM's config with pending values applied) matches the options.

    Returns (config, deletes, resizes): keys to set in one config write, keys to delete, and
    [(slot, size)] disks to grow. Raises SpecError for a shrink or a disk on another storage.
    """
    config = {}
    deletes = []
    for key, want in scalar_config(params).items():
        if not _scalar_equal(key, want, effective.get(key)):
            config[key] = want
    if params.get('serial') is not None:
        has_serial = effective.get('serial0') is not None
        if params['serial'] and effective.get('serial0') != 'socket':
            config['serial0'] = 'socket'
        elif not params['serial'] and has_serial:
            deletes.append('serial0')
    resizes = []
    for disk in params.get('disks') or []:
        slot = disk['slot']
        if slot not in effective:
            if not disk.get('storage'):
                raise SpecError('disks: {0} does not exist yet; give its storage'.format(slot))
            config[slot] = disk_value(disk)
            continue
        volume, props = split_props(effective[slot])
        if disk.get('storage') and not volume.startswith(disk['storage'] + ':'):
            raise SpecError('disks: {0} is on {1}, not {2}; this module does not move disks'.format(
                slot, volume.split(':')[0], disk['storage']))
        have = parse_size(props.get('size', '0'))
        want = parse_size(disk['size'])
        if want < have:
            raise SpecError('disks: {0} is {1}; shrinking it to {2} is not possible (disks only grow)'.format(
                slot, format_size(have), disk['size']))
        if want > have:
            resizes.append((slot, format_size(want)))
        if not _disk_options_equal(disk, props):
            config[slot] = disk_value(disk, volume, props)
    for spec in params.get('networks') or []:
        slot = spec['slot']
        current = parse_net(effective[slot]) if slot in effective else None
        want = desired_net(spec, current)
        if current != want:
            config[slot] = format_net(want)
    return config, deletes, resizes


def create_config(params):
    """Every key of a VM made from scratch, for one create request."""
    cfg = scalar_config(params)
    if params.get('serial'):
        cfg['serial0'] = 'socket'
    for disk in params.get('disks') or []:
        if not disk.get('storage'):
            raise SpecError('disks: {0} needs a storage to be created'.format(disk['slot']))
        cfg[disk['slot']] = disk_value(disk)
    for spec in params.get('networks') or []:
        cfg[spec['slot']] = format_net(desired_net(spec))
    return cfg


def apply_plan(effective, config, deletes, resizes):
    """The config after a plan, for diffs and check mode."""
    after = dict(effective)
    after.update(config)
    for key in deletes:
        after.pop(key, None)
    for slot, size in resizes:
        volume, props = split_props(after[slot])
        props['size'] = size
        after[slot] = join_props(volume, props, order=('size',))
    return after


def macs(config):
    return dict((k, parse_net(v).get('macaddr')) for k, v in sorted(config.items()) if NET_SLOT.match(k))


def storages_needed(params):
    names = set(d['storage'] for d in params.get('disks') or [] if d.get('storage'))
    if params.get('target_storage'):
        names.add(params['target_storage'])
    if params.get('iso'):
        names.add(params['iso'].split(':', 1)[0])
    return names
