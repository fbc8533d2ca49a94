"""talosctl for the lab's Talos nodes: the subset of the v1.11 command line the collection drives.

Flags, outputs, errors and exit codes follow the upstream CLI reference; see docs/lab.md.
"""

import argparse
import base64
import importlib
import math
import json
import os
import pathlib
import re
import sys
import time

import yaml

from . import KUBERNETES_VERSION, TALOS_VERSION
from .api import ALIASES, ConfigError, RpcError


class _Later(object):
    """A module of this package imported on first use: each command loads only what it needs (the PKI and
    schema code, or the API client), as the real talosctl starts in milliseconds."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module('.' + self._name, __package__), attr)


machineconfig = _Later('machineconfig')
secrets = _Later('secrets')
schema = _Later('schema')
_client = _Later('client')


def Client(args, insecure=False):
    return _client.Client(args, insecure=insecure)

GO_VERSION = 'go1.24.11'
SHA = '6dd14300'
# Boolean flags that also take `--flag=false` (pflag style).
BOOL_FLAGS = ('force', 'merge', 'graceful', 'reboot', 'wait', 'debug', 'insecure', 'dry-run', 'strict', 'client',
              'short', 'with-docs', 'with-examples', 'persist', 'server', 'recover-skip-hash-check')
DURATION = re.compile(r'(\d+(?:\.\d+)?)(h|ms|m|s)')
TRACK_POLL = 0.5  # seconds between the reset tracker's looks at a node


class Failure(Exception):
    """A command that failed: its message goes to stderr and talosctl exits 1."""


class Parser(argparse.ArgumentParser):
    """Usage errors as cobra reports them: `Error: ...` and exit 1."""

    def error(self, message):
        message = re.sub(r'unrecognized arguments: (\S+).*', r'unknown flag: \1', message)
        self.exit(1, 'Error: {0}\n'.format(message))


def go_duration(text):
    """Seconds in a Go duration (`20m0s`, `90s`, `1h`, `500ms`)."""
    text = str(text).strip()
    matches = DURATION.findall(text)
    if not matches or ''.join(a + b for a, b in matches) != text:
        raise argparse.ArgumentTypeError('invalid duration {0!r}'.format(text))
    scale = {'h': 3600, 'm': 60, 's': 1, 'ms': 0.001}
    return sum(float(amount) * scale[unit] for amount, unit in matches)


def normalize_bools(argv):
    """`--flag=true|false` of a boolean flag becomes `--flag` or `--no-flag`."""
    out = []
    for token in argv:
        name, sep, value = token.partition('=')
        if sep and name.startswith('--') and name[2:] in BOOL_FLAGS and value.lower() in ('true', 'false', '1', '0'):
            out.append(name if value.lower() in ('true', '1') else '--no-' + name[2:])
        else:
            out.append(token)
    return out


def bool_flag(parser, name, default, help_text, short=None):
    dest = name.replace('-', '_')
    flags = ([short] if short else []) + ['--' + name]
    parser.add_argument(*flags, dest=dest, action='store_true', default=default, help=help_text)
    parser.add_argument('--no-' + name, dest=dest, action='store_false', help=argparse.SUPPRESS)


def connection_flags(parser, suppress=False):
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument('--talosconfig', default=default, help='The path to the Talos configuration file')
    parser.add_argument('--context', default=default, help='Context to be used in command')
    parser.add_argument('-e', '--endpoints', action='append', default=default, help='override default endpoints')
    parser.add_argument('-n', '--nodes', action='append', default=default, help='target the specified nodes')
    parser.add_argument('--cluster', default=default, help='Cluster to connect to if a proxy endpoint is used.')


# ------------------------------------------------------------------ output helpers

def table(rows):
    """Rows aligned like Go's tabwriter with a padding of 3."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return '\n'.join('   '.join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


def write_new(path, data, force):
    path = pathlib.Path(path)
    if path.exists() and not force:
        raise Failure('{0!r} already exists, use --force to overwrite'.format(str(path)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as handle:
        handle.write(data)


def multierror(errors):
    """hashicorp/go-multierror's list format: `N error(s) occurred:`, a `\\t* ` line each, a blank line."""
    errors = list(errors)
    return '{0} error{1} occurred:\n\t{2}\n\n'.format(
        len(errors), '' if len(errors) == 1 else 's', '\n\t'.join('* {0}'.format(error) for error in errors))


def each_node(client, verb, action, aggregated=True):
    """Run action(node) for every target node. Through an endpoint talosctl sends one machine API call naming the
    nodes (gRPC metadata `nodes`, even for one node): apid answers for each, and the client turns the nodes' errors
    into one multierror, `<node>: <error>` each (machinery client FilterMessages). A call that reached no node (the
    endpoint itself unreachable), and a direct call to the maintenance service, fail with the plain gRPC error.
    aggregated=False: a command asking node by node (resources), whose single error stays plain."""
    errors = []
    for node in client.targets():
        try:
            action(node)
        except RpcError as exc:
            if client.insecure or node is None or exc.whole_call:
                raise Failure('error {0}: {1}'.format(verb, exc)) from None
            errors.append((node, exc))
    if not errors:
        return
    if aggregated:
        raise Failure('error {0}: {1}'.format(verb, multierror('{0}: {1}'.format(*e) for e in errors)))
    if len(errors) == 1 and len(client.targets()) == 1:
        raise Failure('error {0}: {1}'.format(verb, errors[0][1]))
    raise Failure(multierror('{0}: {1}'.format(*e) for e in errors))


def single_node(client, command):
    """Commands that take one node: more is refused before any call (talosctl helpers.FailIfMultiNodes)."""
    if len(client.targets()) > 1:
        raise Failure('command "{0}" is not supported with multiple nodes'.format(command))


# ------------------------------------------------------------------ gen

TALOS_VERSION_ARG = re.compile(r'^v?(\d+)\.(\d+)(?:\.\d+)?$')


def check_talos_version(value):
    """--talos-version: a Talos version up to this one (configs are generated for it)."""
    if value is None:
        return
    found = TALOS_VERSION_ARG.match(value)
    current = tuple(int(part) for part in TALOS_VERSION.lstrip('v').split('.')[:2])
    if not found:
        raise Failure('invalid talos version {0!r}'.format(value))
    if (int(found.group(1)), int(found.group(2))) > current:
        raise Failure('version of Talos {0} is too new to be used for generating the config'.format(value))


def cmd_gen_secrets(args):
    check_talos_version(args.talos_version)
    write_new(args.output_file, secrets.dump(secrets.generate()), args.force)
    return 0


def _patches(arguments):
    try:
        return [machineconfig.read_patch(argument) for argument in arguments or ()]
    except machineconfig.PatchError as exc:
        raise Failure(str(exc)) from None


def cmd_gen_config(args):
    endpoint = args.endpoint
    if not re.match(r'^https://[^/]+', endpoint):
        raise Failure('error validating cluster endpoint: {0!r} must be an https:// URL'.format(endpoint))
    check_talos_version(args.talos_version)
    types = [t for value in args.output_types for t in value.split(',') if t]
    unknown = [t for t in types if t not in machineconfig.OUTPUT_TYPES]
    if unknown:
        raise Failure('invalid output type: {0!r}'.format(unknown[0]))
    if len(types) > 1 and args.output == '-':
        raise Failure('the output must be a directory when multiple output types are specified')
    if args.with_secrets:
        try:
            bundle = secrets.load(pathlib.Path(args.with_secrets).read_text())
        except OSError as exc:
            raise Failure('failed to load secrets bundle: {0}'.format(exc)) from None
        except secrets.BundleInvalid as exc:
            raise Failure(str(exc)) from None
    else:
        print('generating PKI and tokens', file=sys.stderr)
        bundle = secrets.generate()
    try:
        generated = machineconfig.generate(
            bundle, args.cluster_name, endpoint, _patches(args.config_patch), _patches(args.config_patch_control_plane),
            _patches(args.config_patch_worker), kubernetes_version=args.kubernetes_version.lstrip('v'),
            install_disk=args.install_disk or machineconfig.DEFAULT_INSTALL_DISK,
            install_image=args.install_image or machineconfig.DEFAULT_INSTALL_IMAGE, dns_domain=args.dns_domain,
            additional_sans=[san for value in args.additional_sans or () for san in value.split(',') if san])
    except machineconfig.PatchError as exc:
        raise Failure(str(exc)) from None
    for machine_type in ('controlplane', 'worker'):
        try:
            schema.validate(generated[machine_type], mode='metal')
        except schema.ConfigInvalid as exc:
            raise Failure('failed to generate {0} config: {1}'.format(machine_type, exc)) from None
    _write_outputs(args, types, generated)
    return 0


def cmd_machineconfig_patch(args):
    """`talosctl machineconfig patch`: the file's config with every --patch applied, printed or written to --output."""
    patched = _patched(_read(args.file), args.patch)
    if not args.output:
        print(patched)
        return 0
    output = pathlib.Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(patched)
    return 0


def _read(path):
    try:
        return pathlib.Path(path).read_text()
    except OSError as exc:
        raise Failure('open {0}: {1}'.format(path, exc.strerror.lower())) from None


def _patched(text, arguments):
    """Config text with each --patch argument applied in order (configpatcher.Apply)."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
        return machineconfig.dump_documents(machineconfig.apply_patches(documents, _patches(arguments)))
    except (yaml.YAMLError, machineconfig.PatchError) as exc:
        raise Failure(str(exc)) from None


def _write_outputs(args, types, generated):
    names = {'controlplane': 'controlplane.yaml', 'worker': 'worker.yaml', 'talosconfig': 'talosconfig'}
    output = args.output
    if len(types) == 1 and output == '-':
        sys.stdout.write(generated[types[0]])
        return
    if len(types) == 1 and output and not pathlib.Path(output).is_dir() and not output.endswith('/'):
        write_new(output, generated[types[0]], args.force)
        print('Created {0}'.format(os.path.abspath(output)), file=sys.stderr)
        return
    directory = pathlib.Path(output or '.')
    for kind in types:
        path = directory / names[kind]
        write_new(path, generated[kind], args.force)
        print('Created {0}'.format(os.path.abspath(path)), file=sys.stderr)


# ------------------------------------------------------------------ validate, version

def cmd_validate(args):
    text = _read(args.config)
    try:
        _documents, warnings = schema.validate(text, mode=args.mode, strict=args.strict)
    except schema.ConfigInvalid as exc:
        raise Failure(multierror(exc.errors)) from None
    except ValueError as exc:
        raise Failure(str(exc)) from None
    for warning in warnings:
        print('WARNING: {0}'.format(warning), file=sys.stderr)
    print('{0} is valid for {1} mode'.format(args.config, args.mode))
    return 0


def _version_block(fields):
    return ['\t{0:<13}{1}'.format(key + ':', value) for key, value in fields.items()]


def cmd_version(args):
    """Client: `Talos <tag>` with --short, else the long block; Server: once, then each node's long block and its
    enabled features (--short shortens the client's part only)."""
    print('Client:')
    if args.short:
        print('Talos {0}'.format(TALOS_VERSION))
    else:
        print('\n'.join(_version_block({'Tag': TALOS_VERSION, 'SHA': SHA, 'Built': '', 'Go version': GO_VERSION,
                                        'OS/Arch': 'linux/amd64'})))
    if args.client:
        return 0
    print('Server:')
    client = Client(args, insecure=args.insecure)

    def show(node):
        answer = client.call('Version', node)
        print('\n'.join(_version_block({
            'NODE': answer['node'], 'Tag': answer['tag'], 'SHA': answer['sha'], 'Built': '',
            'Go version': answer['go_version'], 'OS/Arch': '{0}/{1}'.format(answer['os'], answer['arch']),
            'Enabled': 'RBAC' if answer['features'].get('rbac') else ''})))
    each_node(client, 'getting version', show)
    return 0


# ------------------------------------------------------------------ apply-config, bootstrap, upgrade, reset

def cmd_apply_config(args):
    if not args.file:
        raise Failure('no filename supplied for configuration')
    text = _read(args.file)
    if args.config_patch:
        try:
            text = _patched(text, args.config_patch)
        except Failure as exc:
            raise Failure('error applying patches: {0}'.format(exc)) from None
    client = Client(args, insecure=args.insecure)

    def apply(node):
        answer = client.call('ApplyConfiguration', node, data=text, mode=args.mode, dry_run=args.dry_run,
                             try_timeout=args.timeout)
        # helpers.PrintApplyResults: warnings, then the node's mode details, all on stderr.
        for warning in answer.get('warnings') or ():
            print('WARNING: {0}'.format(warning), file=sys.stderr)
        if answer.get('mode_details'):
            print(answer['mode_details'], file=sys.stderr)
    each_node(client, 'applying new configuration', apply)
    return 0


def _snapshot_status(path):
    """etcdutl's snapshot status of a file: (hash, revision, total keys, total size)."""
    from ..kube.api import snapshot
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise Failure('stat {0}: {1}'.format(path, exc.strerror.lower())) from None
    try:
        found = snapshot.status(data)
    except snapshot.SnapshotInvalid as exc:
        raise Failure(str(exc)) from None
    return data, found


def _snapshot_info(found):
    return 'hash {0:08x}, revision {1}, total keys {2}, total size {3}'.format(
        found['hash'], found['revision'], found['total_key'], found['total_size'])


def cmd_bootstrap(args):
    client = Client(args)
    single_node(client, 'bootstrap')
    if args.recover_from:
        # talosctl reads the snapshot's status, uploads it (EtcdRecover), then bootstraps in recovery mode.
        data, found = _snapshot_status(args.recover_from)
        print('recovering from snapshot {0}: {1}'.format(json.dumps(args.recover_from), _snapshot_info(found)))
        upload = base64.b64encode(data).decode()
        each_node(client, 'uploading snapshot', lambda node: client.call('EtcdRecover', node, data=upload))
    each_node(client, 'executing bootstrap', lambda node: client.call(
        'Bootstrap', node, recover_etcd=bool(args.recover_from), recover_skip_hash_check=args.recover_skip_hash_check))
    return 0


def cmd_upgrade(args):
    client = Client(args, insecure=args.insecure)
    each_node(client, 'performing upgrade', lambda node: client.call('Upgrade', node, image=args.image))
    return 0


def cmd_reset(args):
    client = Client(args, insecure=args.insecure)
    labels = [label for value in args.system_labels_to_wipe or () for label in value.split(',') if label]
    wait = (args.wait or args.debug) and not args.insecure
    deadline = time.monotonic() + args.timeout
    actors = {}

    def reset(node):
        actors[node] = client.call('Reset', node, graceful=args.graceful, reboot=args.reboot,
                                   system_labels_to_wipe=labels, wipe_mode=args.wipe_mode).get('actor_id', '')
    each_node(client, 'executing reset', reset)
    if not wait:
        return 0
    # The action tracker: progress on stderr (`"<node>": <message>` when stderr is not a terminal), done once the
    # node stopped its services (its API goes away) and, with --reboot, once it answers again (a new boot).
    failed = False
    for node in client.targets():
        label = node or client.endpoints[0]
        track = _Tracker(label)
        track.update('waiting for actor ID')
        track.update('actor ID: {0}'.format(actors[node]))
        if not track.until(deadline, lambda: not _answers(client, node)):
            failed = True
            continue
        track.update('events check condition met')
        if args.reboot:
            if not track.until(deadline, lambda: _answers(client, node), 'unavailable, retrying...'):
                failed = True
                continue
            track.update('post check passed')
    return 1 if failed else 0


class _Tracker:
    """One node's progress lines, as talosctl's tracker prints them to a stderr that is not a terminal."""

    def __init__(self, node):
        self.node = node

    def update(self, message):
        print('"{0}": {1}'.format(self.node, message), file=sys.stderr, flush=True)

    def until(self, deadline, done, waiting=None):
        """Poll done() until it holds (True) or the deadline passes (False, reported as the context's error)."""
        said = False
        while not done():
            if time.monotonic() >= deadline:
                self.update('context deadline exceeded')
                return False
            if waiting and not said:
                self.update(waiting)
                said = True
            time.sleep(TRACK_POLL)
        return True


def _answers(client, node):
    try:
        client.call('Version', node)
        return True
    except RpcError:
        return False


# ------------------------------------------------------------------ kubeconfig

def _merge_kubeconfig(existing, new, force, context_name):
    if context_name:
        old = new['contexts'][0]['name']
        new['contexts'][0]['name'] = context_name
        if new.get('current-context') == old:
            new['current-context'] = context_name
    merged = dict(existing or {'apiVersion': 'v1', 'kind': 'Config'})
    for section in ('clusters', 'users', 'contexts'):
        items = list(merged.get(section) or [])
        for item in new[section]:
            names = [have['name'] for have in items]
            if item['name'] in names and not force:
                suffix = 1
                while '{0}-{1}'.format(item['name'], suffix) in names:
                    suffix += 1
                renamed = '{0}-{1}'.format(item['name'], suffix)
                _rename(new, section, item['name'], renamed)
            items = [have for have in items if have['name'] != item['name']] + [item]
        merged[section] = items
    merged['current-context'] = new['current-context']
    return merged


def _rename(config, section, old, new):
    for item in config[section]:
        if item['name'] == old:
            item['name'] = new
    key = {'clusters': 'cluster', 'users': 'user'}.get(section)
    for context in config['contexts']:
        if key and context['context'].get(key) == old:
            context['context'][key] = new
    if section == 'contexts' and config.get('current-context') == old:
        config['current-context'] = new


def cmd_kubeconfig(args):
    client = Client(args)
    targets = client.targets()
    if len(targets) > 1:
        raise Failure('please use exactly one node with the kubeconfig command')
    try:
        text = client.call('Kubeconfig', targets[0])['kubeconfig']
    except RpcError as exc:
        raise Failure('error copying: {0}'.format(exc)) from None
    path = args.local_path
    if not args.merge:
        if path == '-':
            sys.stdout.write(text)
            return 0
        target = pathlib.Path(path or '.')
        if target.is_dir():
            target = target / 'kubeconfig'
        write_new(target, text, args.force)
        return 0
    target = pathlib.Path(path) if path and path != '-' else pathlib.Path.home() / '.kube' / 'config'
    if target.is_dir():
        target = target / 'kubeconfig'
    existing = yaml.safe_load(target.read_text()) if target.exists() else None
    merged = _merge_kubeconfig(existing, yaml.safe_load(text), args.force, args.force_context_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_new(target, yaml.safe_dump(merged, sort_keys=False), True)
    return 0


# ------------------------------------------------------------------ get, etcd

SHORT_TYPES = {'MachineConfigs': 'MachineConfig', 'Members': 'Member', 'MachineStatuses': 'MachineStatus',
               'HostnameStatuses': 'HostnameStatus', 'LinkStatuses': 'LinkStatus', 'AddressStatuses': 'AddressStatus'}


def _short_type(rtype):
    plural = rtype.split('.')[0]
    return SHORT_TYPES.get(plural, plural)


def _table_rows(kind, node, items):
    head = ['NODE', 'NAMESPACE', 'TYPE', 'ID', 'VERSION']
    extra = {'members': ['HOSTNAME', 'MACHINE TYPE', 'OS', 'ADDRESSES'], 'machinestatus': ['STAGE', 'READY'],
             'hostname': ['HOSTNAME', 'DOMAINNAME'], 'links': ['TYPE', 'KIND', 'HW ADDR', 'OPER STATE', 'LINK STATE'],
             'addresses': ['ADDRESS', 'LINK'], 'extensions': ['NAME', 'VERSION']}
    rows = []
    for item in items:
        meta, spec = item['metadata'], item['spec']
        row = [node, meta['namespace'], _short_type(meta['type']), meta['id'], meta['version']]
        if kind == 'members':
            row += [spec['hostname'], spec['machineType'], spec['operatingSystem'], json.dumps(spec['addresses'])]
        elif kind == 'machinestatus':
            row += [spec['stage'], str(spec['status']['ready']).lower()]
        elif kind == 'hostname':
            row += [spec['hostname'], spec['domainname']]
        elif kind == 'links':
            row += [spec['type'], spec['kind'], spec['hardwareAddr'], spec['operationalState'],
                    str(spec['linkState']).lower()]
        elif kind == 'addresses':
            row += [spec['address'], spec['linkName']]
        elif kind == 'extensions':
            row += [spec['metadata']['name'], spec['metadata']['version']]
        rows.append(row)
    return head + extra.get(kind, []), rows


class _Literal(str):
    """A string dumped as a YAML literal block."""


yaml.SafeDumper.add_representer(_Literal, lambda dumper, value: dumper.represent_scalar(
    'tag:yaml.org,2002:str', value, style='|'))


def cmd_get(args):
    kind = ALIASES.get(args.type.lower())
    if kind is None:
        raise Failure('error getting resources: resource type {0!r} is not registered'.format(args.type))
    if args.output not in ('table', 'json', 'yaml'):
        raise Failure('output format {0!r} is not supported'.format(args.output))
    client = Client(args, insecure=args.insecure)
    out, rows, head = [], [], None

    def get(node):
        nonlocal head
        answer = client.call('Get', node, type=kind, id=args.id)
        label = node or client.endpoints[0]
        for item in answer['items']:
            out.append({'node': label, 'metadata': item['metadata'], 'spec': item['spec']})
        head, found = _table_rows(kind, label, answer['items'])
        rows.extend(found)
    each_node(client, 'getting resources', get, aggregated=False)
    if args.output == 'json':
        for item in out:
            print(json.dumps(item, indent=4))
    elif args.output == 'yaml':
        docs = []
        for item in out:
            if isinstance(item['spec'], str):
                item = dict(item, spec=_Literal(item['spec']))
            docs.append(yaml.safe_dump(item, sort_keys=False, indent=4))
        sys.stdout.write('---\n'.join(docs))
    else:
        print(table([head or ['NODE', 'NAMESPACE', 'TYPE', 'ID', 'VERSION']] + rows))
    return 0


def cmd_etcd_members(args):
    client = Client(args)
    rows = [['NODE', 'ID', 'HOSTNAME', 'PEER URLS', 'CLIENT URLS', 'LEARNER']]

    def members(node):
        for member in client.call('EtcdMemberList', node)['members']:
            rows.append([node or client.endpoints[0], member['id'], member['hostname'], ','.join(member['peer_urls']),
                         ','.join(member['client_urls']), str(member['is_learner']).lower()])
    each_node(client, 'getting members', members)
    print(table(rows))
    return 0


def humanize_bytes(size):
    """go-humanize Bytes: SI units, one decimal below 10."""
    if size < 10:
        return '{0} B'.format(size)
    exponent = int(math.floor(math.log(size) / math.log(1000)))
    value = math.floor(size / 1000 ** exponent * 10 + 0.5) / 10
    unit = ('B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB')[exponent]
    return '{0:.{1}f} {2}'.format(value, 0 if value >= 10 else 1, unit)


def cmd_etcd_status(args):
    client = Client(args)
    rows = [['NODE', 'MEMBER', 'DB SIZE', 'IN USE', 'LEADER', 'RAFT INDEX', 'RAFT TERM', 'RAFT APPLIED INDEX',
             'LEARNER', 'PROTOCOL', 'STORAGE', 'ERRORS']]

    def status(node):
        found = client.call('EtcdStatus', node)['member_status']
        ratio = found['db_size_in_use'] / found['db_size'] * 100.0 if found['db_size'] > 0 else 0.0
        rows.append([node or client.endpoints[0], found['member_id'], humanize_bytes(found['db_size']),
                     '{0} ({1:.2f}%)'.format(humanize_bytes(found['db_size_in_use']), ratio), found['leader'],
                     found['raft_index'], found['raft_term'], found['raft_applied_index'],
                     str(found['is_learner']).lower(), found['protocol_version'], found['storage_version'],
                     ', '.join(found['errors'])])
    each_node(client, 'getting status', status)
    print(table(rows))
    return 0


def cmd_etcd_snapshot(args):
    """Streams the node's etcd snapshot to <path>.part, checks it carries a hash trailer, renames it to <path>."""
    client = Client(args)
    single_node(client, 'etcd snapshot')
    path = args.path
    part = path + '.part'
    try:
        try:
            data = base64.b64decode(client.call('EtcdSnapshot', client.targets()[0])['data'])
        except RpcError as exc:
            raise Failure('error reading: {0}'.format(exc)) from None
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if len(data) % 512 != 32:
            raise Failure('sha256 checksum not found (size {0})'.format(len(data)))
        os.rename(part, path)
    finally:
        if os.path.exists(part):
            os.remove(part)
    print('etcd snapshot saved to {0} ({1} bytes)'.format(json.dumps(path), len(data)))
    _data, found = _snapshot_status(path)
    print('snapshot info: {0}'.format(_snapshot_info(found)))
    return 0


def cmd_etcd_remove_member(args):
    client = Client(args)
    each_node(client, 'removing member', lambda node: client.call('EtcdRemoveMember', node, member=args.member))
    return 0


# ------------------------------------------------------------------ health

def cmd_health(args):
    from .health import run_health
    client = Client(args)
    return run_health(client, args)


# ------------------------------------------------------------------ parser

def _command(commands, name, help_text, run, connected=True, **options):
    """A subcommand running `run`, with the connection flags when it talks to nodes."""
    sub = commands.add_parser(name, help=help_text, **options)
    if connected:
        connection_flags(sub, suppress=True)
    sub.set_defaults(run=run)
    return sub


def _parser():
    parser = Parser(prog='talosctl', description='A CLI for out-of-band management of Kubernetes nodes created by Talos')
    connection_flags(parser)
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND', parser_class=Parser)

    gen = commands.add_parser('gen', help='Generate CAs, certificates, and private keys')
    gen_commands = gen.add_subparsers(dest='gen_command', required=True, parser_class=Parser)
    gen_secrets = _command(gen_commands, 'secrets', 'Generates a secrets bundle file', cmd_gen_secrets,
                           connected=False)
    gen_secrets.add_argument('-o', '--output-file', default='secrets.yaml', help='path of the output file')
    gen_secrets.add_argument('--talos-version', help='the desired Talos version to generate secrets bundle for')
    bool_flag(gen_secrets, 'force', False, 'will overwrite existing files', short='-f')
    gen_config = _command(gen_commands, 'config', 'Generates a set of configuration files for Talos cluster',
                          cmd_gen_config, connected=False)
    gen_config.add_argument('cluster_name')
    gen_config.add_argument('endpoint')
    gen_config.add_argument('--with-secrets')
    for flag in ('--config-patch', '--config-patch-control-plane', '--config-patch-worker'):
        gen_config.add_argument(flag, action='append')
    gen_config.add_argument('-t', '--output-types', action='append', default=None)
    gen_config.add_argument('-o', '--output')
    gen_config.add_argument('--kubernetes-version', default=KUBERNETES_VERSION)
    gen_config.add_argument('--install-disk')
    gen_config.add_argument('--install-image')
    gen_config.add_argument('--dns-domain', default='cluster.local')
    gen_config.add_argument('--additional-sans', action='append')
    gen_config.add_argument('--talos-version', help='the desired Talos version to generate config for')
    bool_flag(gen_config, 'force', False, 'will overwrite existing files', short='-f')
    # Comments only; the lab's configs carry none either way.
    bool_flag(gen_config, 'with-docs', True, 'renders all machine configs adding the documentation for each field')
    bool_flag(gen_config, 'with-examples', True, 'renders all machine configs with the commented examples')

    config_commands = commands.add_parser('machineconfig', aliases=['mc'], help='Machine config related commands')
    config_commands = config_commands.add_subparsers(dest='machineconfig_command', required=True, parser_class=Parser)
    patch = _command(config_commands, 'patch', 'Patch a machine config', cmd_machineconfig_patch, connected=False)
    patch.add_argument('file', metavar='<machineconfig-file>')
    patch.add_argument('-p', '--patch', action='append')
    patch.add_argument('-o', '--output', default='')

    validate_cmd = _command(commands, 'validate', 'Validate config', cmd_validate, connected=False)
    validate_cmd.add_argument('-c', '--config', required=True)
    validate_cmd.add_argument('-m', '--mode', required=True)
    bool_flag(validate_cmd, 'strict', False, 'treat validation warnings as errors')

    version = _command(commands, 'version', 'Prints the version', cmd_version)
    bool_flag(version, 'client', False, 'Print client version only')
    bool_flag(version, 'short', False, 'Print the short version')
    bool_flag(version, 'insecure', False, 'use Talos maintenance mode API', short='-i')

    apply = _command(commands, 'apply-config', 'Apply a new configuration to a node', cmd_apply_config, aliases=['apply'])
    apply.add_argument('-f', '--file')
    apply.add_argument('-p', '--config-patch', action='append')
    apply.add_argument('-m', '--mode', default='auto', choices=('auto', 'interactive', 'no-reboot', 'reboot',
                                                               'staged', 'try'))
    apply.add_argument('--timeout', type=go_duration, default=60.0)
    bool_flag(apply, 'insecure', False, 'apply the config using the insecure maintenance service', short='-i')
    bool_flag(apply, 'dry-run', False, 'check how the config change will be applied in dry-run mode')

    bootstrap = _command(commands, 'bootstrap', 'Bootstrap the etcd cluster on the specified node.', cmd_bootstrap)
    bootstrap.add_argument('--recover-from', default='', help='recover etcd cluster from the snapshot')
    bool_flag(bootstrap, 'recover-skip-hash-check', False,
              'skip integrity check when recovering etcd (use when recovering from data directory copy)')

    kubeconfig = _command(commands, 'kubeconfig', 'Download the admin kubeconfig from the node', cmd_kubeconfig)
    kubeconfig.add_argument('local_path', nargs='?')
    bool_flag(kubeconfig, 'force', False, 'Force overwrite of kubeconfig if already present', short='-f')
    bool_flag(kubeconfig, 'merge', True, 'Merge with existing kubeconfig', short='-m')
    kubeconfig.add_argument('--force-context-name')

    health = _command(commands, 'health', 'Check cluster health', cmd_health)
    health.add_argument('--control-plane-nodes', action='append')
    health.add_argument('--worker-nodes', action='append')
    health.add_argument('--init-node')
    health.add_argument('--k8s-endpoint')
    health.add_argument('--wait-timeout', type=go_duration, default=1200.0)
    bool_flag(health, 'server', True, 'run server-side check')

    get = _command(commands, 'get', 'Get a specific resource or list of resources', cmd_get)
    get.add_argument('type')
    get.add_argument('id', nargs='?')
    get.add_argument('-o', '--output', default='table')
    get.add_argument('--namespace')
    bool_flag(get, 'insecure', False, 'get resources using the insecure maintenance service', short='-i')

    etcd = commands.add_parser('etcd', help='Manage etcd')
    connection_flags(etcd, suppress=True)
    etcd_commands = etcd.add_subparsers(dest='etcd_command', required=True, parser_class=Parser)
    _command(etcd_commands, 'members', 'Get the list of etcd cluster members', cmd_etcd_members)
    remove = _command(etcd_commands, 'remove-member', 'Remove the node from etcd cluster', cmd_etcd_remove_member)
    remove.add_argument('member', metavar='<member ID>')
    snapshot = _command(etcd_commands, 'snapshot', 'Stream snapshot of the etcd node to the path.', cmd_etcd_snapshot)
    snapshot.add_argument('path', metavar='<path>')
    _command(etcd_commands, 'status', 'Get the status of etcd cluster member', cmd_etcd_status)

    reset = _command(commands, 'reset', 'Reset a node', cmd_reset)
    bool_flag(reset, 'graceful', True, 'attempt to cordon/drain node and leave etcd')
    bool_flag(reset, 'reboot', False, 'reboot the node after resetting instead of shutting down')
    bool_flag(reset, 'insecure', False, 'reset using the insecure maintenance service')
    bool_flag(reset, 'wait', True, 'wait for the operation to complete, tracking its progress')
    bool_flag(reset, 'debug', False, 'debug operation from kernel logs; --wait is set to true when this flag is set')
    reset.add_argument('--system-labels-to-wipe', action='append')
    reset.add_argument('--wipe-mode', default='all', choices=('all', 'system-disk', 'user-disks'))
    reset.add_argument('--timeout', type=go_duration, default=1800.0)

    upgrade = _command(commands, 'upgrade', 'Upgrade Talos on the target node', cmd_upgrade)
    upgrade.add_argument('-i', '--image', default='ghcr.io/siderolabs/installer:{0}'.format(TALOS_VERSION))
    bool_flag(upgrade, 'insecure', False, 'upgrade using the insecure maintenance service')
    bool_flag(upgrade, 'wait', True, 'wait for the operation to complete')
    upgrade.add_argument('--timeout', type=go_duration, default=1800.0)
    return parser


def main(argv=None):
    parser = _parser()
    args, extra = parser.parse_known_args(normalize_bools(sys.argv[1:] if argv is None else argv))
    # cobra takes flags anywhere: `get <type> -n <node> <id>` names the id after the flags.
    if getattr(args, 'run', None) is cmd_get and args.id is None and len(extra) == 1 and not extra[0].startswith('-'):
        args.id, extra = extra[0], []
    if extra:
        parser.error('unrecognized arguments: {0}'.format(' '.join(extra)))
    if getattr(args, 'output_types', 1) is None:
        args.output_types = list(machineconfig.OUTPUT_TYPES)
    try:
        return args.run(args)
    except (Failure, ConfigError, RpcError) as exc:
        message = str(exc)
        sys.stderr.write(message if message.endswith('\n') else message + '\n')
        return 1


if __name__ == '__main__':
    sys.exit(main())
