# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Talos layer's one client: the talosctl runner. PRIVATE to the collection: other collections must not import it.

talosctl is run with argument lists (never a shell). Secrets (bundle, machine configs, talosconfig
content) reach it only as files created 0600 in a private directory that is removed afterwards.
Calls that failed on an unreachable node (gRPC Unavailable, refused or broken connections) are
retried a bounded number of times with jittered backoff, within a deadline on the monotonic clock.
Machine config patches are merged here the way Talos merges them, so a rendered config can be
compared with the one a node runs.
"""

import copy
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import env_fallback, missing_required_lib

try:
    import yaml
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()

HIDDEN = '<hidden>'
# talosctl's own words for a node it could not reach; nothing else is retried.
RETRYABLE = re.compile(
    r'code = Unavailable|connection refused|connection reset by peer|no route to host|i/o timeout'
    r'|network is unreachable|transport is closing|error reading server preface|broken pipe', re.IGNORECASE)
# Fields whose values are keys, certificates or tokens; diffs show a digest instead.
SECRET_FIELD = re.compile(r'^(key|crt|token|secret|id|bootstraptoken)$|(Secret|Token)$')


def connection_argument_spec():
    """Options shared by every module that runs talosctl (doc fragment ephemeral.castle.talos)."""
    return dict(
        binary_path=dict(type='path'),
        talosconfig=dict(type='path', fallback=(env_fallback, ['TALOSCONFIG'])),
        talosconfig_content=dict(type='str', no_log=True),
        context=dict(type='str'),
        endpoints=dict(type='list', elements='str'),
        nodes=dict(type='list', elements='str'),
        retries=dict(type='int', default=3),
        retry_timeout=dict(type='int', default=60),
    )


CONNECTION_OPTIONS = dict(mutually_exclusive=[('talosconfig', 'talosconfig_content')])


class TalosError(Exception):
    """talosctl failed, or its input or output is not what Talos takes; the message names what and why."""

    def __init__(self, message, rc=None, stdout=None, stderr=None, command=None):
        super(TalosError, self).__init__(message)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.command = command

    def details(self):
        """What fail_json carries besides the message: rc, stdout, stderr and the command line."""
        found = dict(rc=self.rc, stdout=self.stdout, stderr=self.stderr, command=self.command)
        return dict((k, v) for k, v in found.items() if v is not None)


def require_yaml():
    if not HAS_YAML:
        raise TalosError(missing_required_lib('PyYAML'))


def is_retryable(text):
    return bool(RETRYABLE.search(text or ''))


class Talosctl(object):
    """talosctl with the module's connection options; use it as a context manager so its private
    directory of secret files is removed whatever happens."""

    def __init__(self, module, run_command=None, sleep=time.sleep, clock=time.monotonic, jitter=random.uniform):
        params = module.params
        self.module = module
        self.binary = params.get('binary_path') or module.get_bin_path('talosctl', required=True)
        self.talosconfig = params.get('talosconfig')
        self.context = params.get('context')
        self.endpoints = list(params.get('endpoints') or [])
        self.nodes = list(params.get('nodes') or [])
        self.retries = max(0, params.get('retries') or 0)
        self.retry_timeout = params.get('retry_timeout') or 0
        self._run = run_command or module.run_command
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._dir = None
        self.calls = 0
        self.last_stderr = ''
        if params.get('talosconfig_content'):
            self.talosconfig = self.secret_file('talosconfig', params['talosconfig_content'])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.cleanup()

    # ------------------------------------------------------------ secret files

    @property
    def private_dir(self):
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix='castle-talos-')  # mode 0700
        return self._dir

    def secret_file(self, name, content):
        """A 0600 file holding content in the private directory; its path is what talosctl sees."""
        path = os.path.join(self.private_dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as handle:
            handle.write(content)
        return path

    def cleanup(self):
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # ----------------------------------------------------------------- running

    def argv(self, args, connect=True, nodes=None, insecure=False):
        """The command line: talosctl, the subcommand, then the connection flags when it talks to nodes.
        --insecure goes straight to the nodes (maintenance API), so it takes no talosconfig or endpoints."""
        cmd = [self.binary] + [str(a) for a in args]
        if not connect:
            return cmd
        if insecure:
            cmd.append('--insecure')
        else:
            if self.talosconfig:
                cmd += ['--talosconfig', self.talosconfig]
            if self.context:
                cmd += ['--context', self.context]
            if self.endpoints:
                cmd += ['--endpoints', ','.join(self.endpoints)]
        targets = self.nodes if nodes is None else nodes
        if targets:
            cmd += ['--nodes', ','.join(targets)]
        return cmd

    def run(self, args, connect=True, nodes=None, insecure=False, retry=True, sensitive=False, cwd=None):
        """stdout of a successful run; TalosError with rc, stdout, stderr and the command otherwise.
        sensitive: stdout holds secrets, so it is left out of the error."""
        cmd = self.argv(args, connect=connect, nodes=nodes, insecure=insecure)
        deadline = self._clock() + self.retry_timeout
        attempt = 0
        while True:
            self.calls += 1
            rc, out, err = self._run(cmd, check_rc=False, cwd=cwd)
            self.last_stderr = err
            if rc == 0:
                return out
            retryable = retry and connect and is_retryable(err) and attempt < self.retries
            left = deadline - self._clock()
            if not retryable or left <= 0:
                raise TalosError('{0} failed (rc={1}){2}: {3}'.format(
                    command_name(args), rc,
                    ' after {0} tries'.format(attempt + 1) if attempt else '', last_line(err) or last_line(out)),
                    rc=rc, stdout=HIDDEN if sensitive else out, stderr=err, command=shlex.join(cmd))
            # Full jitter up to an exponential cap, never past the deadline.
            self._sleep(min(self._jitter(0, min(8.0, 0.5 * 2 ** attempt)), left))
            attempt += 1

    def run_json(self, args, **kwargs):
        return parse_json_stream(self.run(list(args) + ['--output', 'json'], **kwargs))

    def run_yaml(self, args, **kwargs):
        return parse_yaml_docs(self.run(list(args) + ['--output', 'yaml'], **kwargs))

    # ------------------------------------------------------------ node queries

    def machine_status(self, node, maintenance_first=False):
        """('configured' | 'maintenance' | 'unreachable', MachineStatus spec or None, error text).

        A configured node answers over mTLS; a node waiting for its config answers only on the
        insecure maintenance API. maintenance_first asks the maintenance API first."""
        errors = []
        for insecure in ((True, False) if maintenance_first else (False, True)):
            try:
                found = self.run_json(['get', 'machinestatus'], nodes=[node], insecure=insecure, retry=False)
            except TalosError as exc:
                errors.append(str(exc))
                continue
            spec = (found[0].get('spec') if found else {}) or {}
            if insecure and spec.get('stage', 'maintenance') == 'maintenance':
                return 'maintenance', spec, '; '.join(errors) or None
            return 'configured', spec, '; '.join(errors) or None
        return 'unreachable', None, '; '.join(errors)

    def machine_states(self, nodes, workers=16):
        """{node: machine_status(node)} of many nodes. One mTLS call asks them all, as talosctl asks
        each node through the endpoint; when that fails (a node in maintenance, or down), each node is
        asked on its own, all at once, the maintenance API first."""
        nodes = list(nodes)
        if not nodes:
            return {}
        try:
            found = self.run_json(['get', 'machinestatus'], nodes=nodes, retry=False)
        except TalosError:
            found = []
        specs = dict((item.get('node'), (item.get('spec') or {})) for item in found if isinstance(item, dict))
        if nodes and all(node in specs for node in nodes):
            return dict((node, ('configured', specs[node], None)) for node in nodes)
        with ThreadPoolExecutor(max_workers=min(workers, len(nodes))) as pool:
            states = list(pool.map(lambda node: self.machine_status(node, maintenance_first=True), nodes))
        return dict(zip(nodes, states))

    def running_config(self, node):
        """The machine config documents a configured node runs."""
        found = self.run_yaml(['get', 'machineconfig'], nodes=[node], sensitive=True)
        if not found:
            return []
        spec = found[0].get('spec')
        if isinstance(spec, str):
            return load_config(spec)
        if isinstance(spec, list):
            return spec
        return [spec] if spec else []

    def etcd_members(self, node, retry=True):
        return parse_table(self.run(['etcd', 'members'], nodes=[node], retry=retry))


def command_name(args):
    """`talosctl etcd members`: the subcommand's words, for messages."""
    words = []
    for arg in args:
        if str(arg).startswith('-') or len(words) == 2:
            break
        words.append(str(arg))
    return ' '.join(['talosctl'] + words)


def last_line(text):
    lines = [line.strip() for line in (text or '').splitlines() if line.strip()]
    return lines[-1] if lines else ''


# ------------------------------------------------------------------ output parsing

def parse_json_stream(text):
    """talosctl -o json prints one JSON document per resource, one after the other."""
    decoder = json.JSONDecoder()
    found, pos, text = [], 0, text or ''
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return found
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except ValueError as exc:
            raise TalosError('talosctl printed something that is not JSON: {0}'.format(exc))
        found.append(doc)


def parse_yaml_docs(text):
    require_yaml()
    try:
        return [doc for doc in yaml.safe_load_all(text or '') if doc is not None]
    except yaml.YAMLError as exc:
        raise TalosError('not valid YAML: {0}'.format(exc))


def parse_table(text):
    """talosctl's tables: a header line, then rows; columns are padded with at least two spaces."""
    lines = [line for line in (text or '').splitlines() if line.strip()]
    if not lines:
        return []
    header = re.split(r'\s{2,}', lines[0].strip())
    return [dict(zip(header, re.split(r'\s{2,}', line.strip()))) for line in lines[1:]]


def parse_version(text):
    """`talosctl version` as {'client': {...}, 'servers': [{'node': ..., 'tag': ...}, ...]}."""
    found = dict(client={}, servers=[])
    current = None
    for raw in (text or '').splitlines():
        line = raw.strip()
        if line in ('Client:', 'Server:'):
            current = found['client'] if line == 'Client:' else None
            continue
        key, sep, value = line.partition(':')
        if not sep:
            continue
        key = key.strip().lower().replace(' ', '_')
        if key == 'node':
            current = dict(node=value.strip())
            found['servers'].append(current)
        elif current is not None:
            current[key] = value.strip()
    return found


# ------------------------------------------------------------- machine configs

def load_config(text):
    """Machine config text (one or more YAML documents) as a list of dicts."""
    docs = parse_yaml_docs(text)
    for doc in docs:
        if not isinstance(doc, dict):
            raise TalosError('a machine config document must be a mapping, not {0}'.format(type(doc).__name__))
    return docs


def dump_config(docs):
    require_yaml()
    return '---\n'.join(yaml.safe_dump(doc, default_flow_style=False, sort_keys=False) for doc in docs)


def digest(text):
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def doc_identity(doc):
    """How Talos tells documents apart: v1alpha1 is the one without a kind; others by kind and name."""
    if 'kind' not in doc:
        return ('v1alpha1',)
    return (doc.get('kind'), doc.get('name'))


def comparable(docs):
    """Documents in a stable order, for comparing a rendered config with a running one."""
    return sorted((copy.deepcopy(d) for d in docs or []), key=lambda d: json.dumps(doc_identity(d)))


def redacted(value, field=''):
    """A copy safe to show: keys, certificates and tokens become a marker with a short digest."""
    if isinstance(value, dict):
        return dict((k, redacted(v, k)) for k, v in value.items())
    if isinstance(value, list):
        return [redacted(v, field) for v in value]
    if isinstance(value, str) and SECRET_FIELD.search(field) and value:
        return '{0} {1}'.format(HIDDEN, digest(field + value)[:8])
    return value


# Strategic merge as Talos does it: maps merge, lists append, except the lists Talos merges by a key
# and the fields it replaces whole. `$patch: delete` removes a map key or a keyed list item.
KEYED_LISTS = {
    ('machine', 'network', 'interfaces'): ('interface', 'deviceSelector'),
    ('machine', 'network', 'interfaces', '*', 'vlans'): ('vlanId',),
    ('cluster', 'apiServer', 'admissionControl'): ('name',),
}
REPLACED = frozenset([
    ('machine', 'network', 'nameservers'),
    ('cluster', 'network', 'podSubnets'),
    ('cluster', 'network', 'serviceSubnets'),
    ('cluster', 'apiServer', 'auditPolicy'),
])
_DELETE = object()


def _is_delete(value):
    return isinstance(value, dict) and value.get('$patch') == 'delete'


def _strip(value):
    """A patch value taken as is, without delete markers."""
    if isinstance(value, dict):
        return dict((k, _strip(v)) for k, v in value.items() if not _is_delete(v) and k != '$patch')
    if isinstance(value, list):
        return [_strip(v) for v in value if not _is_delete(v)]
    return value


def _merge(base, patch, path):
    if _is_delete(patch):
        return _DELETE
    if path in REPLACED:
        return _strip(patch)
    if isinstance(patch, dict):
        if not isinstance(base, dict):
            return _strip(patch)
        merged = dict(base)
        for key, value in patch.items():
            found = _merge(base.get(key), value, path + (key,))
            if found is _DELETE:
                merged.pop(key, None)
            else:
                merged[key] = found
        return merged
    if isinstance(patch, list):
        if not isinstance(base, list):
            return _strip(patch)
        keys = KEYED_LISTS.get(path)
        if not keys:
            return copy.deepcopy(base) + _strip(patch)
        merged = copy.deepcopy(base)
        for item in patch:
            index = _keyed_index(merged, item, keys)
            if index is None:
                if not _is_delete(item):
                    merged.append(_strip(item))
                continue
            found = _merge(merged[index], item, path + ('*',))
            if found is _DELETE:
                del merged[index]
            else:
                merged[index] = found
        return merged
    return patch


def _keyed_index(items, item, keys):
    if not isinstance(item, dict):
        return None
    for key in keys:
        if key in item:
            for index, existing in enumerate(items):
                if isinstance(existing, dict) and existing.get(key) == item[key]:
                    return index
            return None
    return None


def strategic_merge(docs, patch_docs):
    """Merge patch documents into config documents; each patch meets the document with its identity,
    and a document nobody has yet is added."""
    merged = [copy.deepcopy(d) for d in docs]
    for patch in patch_docs:
        if not isinstance(patch, dict):
            raise TalosError('a strategic merge patch must be a mapping, not {0}'.format(type(patch).__name__))
        identity = doc_identity(patch)
        for index, doc in enumerate(merged):
            if doc_identity(doc) == identity:
                found = _merge(doc, patch, ())
                if found is _DELETE:
                    del merged[index]
                else:
                    merged[index] = found
                break
        else:
            if not _is_delete(patch):
                merged.append(_strip(patch))
    return merged


def _pointer(path):
    if path == '':
        return []
    if not path.startswith('/'):
        raise TalosError('JSON patch path {0!r} must start with /'.format(path))
    return [part.replace('~1', '/').replace('~0', '~') for part in path[1:].split('/')]


def _container(doc, parts, path):
    target = doc
    for part in parts[:-1]:
        try:
            target = target[int(part)] if isinstance(target, list) else target[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise TalosError('JSON patch path {0} does not exist'.format(path))
    return target


def _get(doc, path):
    parts = _pointer(path)
    if not parts:
        return doc
    target = _container(doc, parts, path)
    try:
        return target[int(parts[-1])] if isinstance(target, list) else target[parts[-1]]
    except (KeyError, IndexError, ValueError, TypeError):
        raise TalosError('JSON patch path {0} does not exist'.format(path))


def _remove(doc, path):
    parts = _pointer(path)
    target = _container(doc, parts, path)
    try:
        if isinstance(target, list):
            return target.pop(int(parts[-1]))
        return target.pop(parts[-1])
    except (KeyError, IndexError, ValueError, TypeError):
        raise TalosError('JSON patch cannot remove {0}: it does not exist'.format(path))


def _add(doc, path, value):
    parts = _pointer(path)
    if not parts:
        raise TalosError('JSON patch cannot replace the whole document')
    target = _container(doc, parts, path)
    if isinstance(target, list):
        if parts[-1] == '-':
            target.append(value)
            return
        try:
            index = int(parts[-1])
        except ValueError:
            raise TalosError('JSON patch path {0}: {1!r} is not a list index'.format(path, parts[-1]))
        if not 0 <= index <= len(target):
            raise TalosError('JSON patch path {0}: index out of range'.format(path))
        target.insert(index, value)
    elif isinstance(target, dict):
        target[parts[-1]] = value
    else:
        raise TalosError('JSON patch path {0} does not exist'.format(path))


def json_patch(doc, operations):
    """RFC 6902 operations (add, remove, replace, move, copy, test) on a copy of one document."""
    doc = copy.deepcopy(doc)
    for number, op in enumerate(operations, 1):
        if not isinstance(op, dict) or 'op' not in op or 'path' not in op:
            raise TalosError('JSON patch operation {0} needs op and path: {1!r}'.format(number, op))
        kind, path = op['op'], op['path']
        if kind in ('add', 'replace', 'test') and 'value' not in op:
            raise TalosError('JSON patch operation {0} ({1} {2}) needs a value'.format(number, kind, path))
        if kind == 'add':
            _add(doc, path, copy.deepcopy(op['value']))
        elif kind == 'remove':
            _remove(doc, path)
        elif kind == 'replace':
            _remove(doc, path)
            _add(doc, path, copy.deepcopy(op['value']))
        elif kind in ('move', 'copy'):
            if 'from' not in op:
                raise TalosError('JSON patch operation {0} ({1} {2}) needs from'.format(number, kind, path))
            value = _remove(doc, op['from']) if kind == 'move' else copy.deepcopy(_get(doc, op['from']))
            _add(doc, path, value)
        elif kind == 'test':
            if _get(doc, path) != op['value']:
                raise TalosError('JSON patch test failed at {0}'.format(path))
        else:
            raise TalosError('JSON patch operation {0}: unknown op {1!r}'.format(number, kind))
    return doc


def read_patch(patch):
    """A patch as Talos takes it: a mapping (strategic merge), a list of operations (JSON 6902), or
    text holding either, or @path of a file holding either. Returns ('strategic', docs) or ('json6902', ops)."""
    if isinstance(patch, str):
        text = patch
        if patch.startswith('@'):
            try:
                with open(patch[1:]) as handle:
                    text = handle.read()
            except (IOError, OSError) as exc:
                raise TalosError('patch file {0}: {1}'.format(patch[1:], exc))
        docs = parse_yaml_docs(text)
        if len(docs) == 1 and isinstance(docs[0], list):
            return 'json6902', docs[0]
        return 'strategic', docs
    if isinstance(patch, list):
        return 'json6902', patch
    if isinstance(patch, dict):
        return 'strategic', [patch]
    raise TalosError('a patch must be a mapping, a list of JSON patch operations or text, not {0}'.format(
        type(patch).__name__))


def apply_patches(docs, patches):
    """Apply patches in order; JSON 6902 patches work on the v1alpha1 document, as in Talos."""
    for number, patch in enumerate(patches or [], 1):
        try:
            kind, body = read_patch(patch)
            if kind == 'strategic':
                docs = strategic_merge(docs, body)
                continue
            for index, doc in enumerate(docs):
                if doc_identity(doc) == ('v1alpha1',):
                    docs = docs[:index] + [json_patch(doc, body)] + docs[index + 1:]
                    break
            else:
                raise TalosError('JSON patches need a v1alpha1 document to work on')
        except TalosError as exc:
            raise TalosError('patch {0}: {1}'.format(number, exc))
    return docs


def node_patch(hostname=None, address=None, gateway=None, interface='eth0', install_disk=None,
               install_image=None, vip=None, nameservers=None):
    """The strategic merge patch that makes a generic config one node's: hostname, a static address and
    default route on one interface (DHCP on it when the VIP comes without a static address), the shared
    control-plane VIP, the install disk and image."""
    machine, network = {}, {}
    if hostname:
        network['hostname'] = hostname
    device = {}
    if address:
        if '/' not in address:
            raise TalosError('address {0!r} needs a prefix length, for example 10.0.0.11/24'.format(address))
        device['addresses'] = [address]
    if gateway:
        device['routes'] = [{'network': '0.0.0.0/0', 'gateway': gateway}]
    if vip:
        device['vip'] = {'ip': vip}
        if not address:
            # An interface named in the config takes DHCP only when asked to.
            device['dhcp'] = True
    if device:
        device = dict([('interface', interface or 'eth0')] + list(device.items()))
        network['interfaces'] = [device]
    if nameservers:
        network['nameservers'] = list(nameservers)
    if network:
        machine['network'] = network
    install = {}
    if install_disk:
        install['disk'] = install_disk
    if install_image:
        install['image'] = install_image
    if install:
        machine['install'] = install
    return {'machine': machine} if machine else {}


def kubeconfig_identity(text):
    """What tells two kubeconfigs of one cluster apart, without the client certificate talosctl makes
    anew on every call: each cluster's server and CA, and the context names."""
    docs = parse_yaml_docs(text)
    config = docs[0] if docs and isinstance(docs[0], dict) else {}
    clusters = sorted((c.get('name'), (c.get('cluster') or {}).get('server'),
                       (c.get('cluster') or {}).get('certificate-authority-data'))
                      for c in config.get('clusters') or [])
    contexts = sorted(c.get('name') for c in config.get('contexts') or [])
    return dict(clusters=clusters, contexts=contexts)


def write_private(path, content, check_mode=False):
    """Write content to path with mode 0600 (through a temporary file beside it); True when it changed
    (in check mode: when it would)."""
    try:
        with open(path) as handle:
            if handle.read() == content:
                if os.stat(path).st_mode & 0o777 != 0o600:
                    if not check_mode:
                        os.chmod(path, 0o600)
                    return True
                return False
    except (IOError, OSError):
        pass
    if check_mode:
        return True
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.castle-')
    try:
        with os.fdopen(fd, 'w') as handle:
            handle.write(content)
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except (IOError, OSError) as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise TalosError('cannot write {0}: {1}'.format(path, exc))
    return True


def config_diff(before, after):
    """An Ansible diff of two configs (lists of documents, or None), keys and tokens redacted."""
    def text(docs):
        return dump_config(redacted(comparable(docs))) if docs else ''
    return dict(before=text(before), after=text(after))


def target_node(talosctl, what):
    """The one node a module acts on: the first of nodes."""
    if not talosctl.nodes:
        raise TalosError('nodes must name the node to {0}'.format(what))
    return talosctl.nodes[0]


def talos_module(argument_spec, **kwargs):
    """An AnsibleModule with the talosctl connection options besides its own, check mode supported."""
    from ansible.module_utils.basic import AnsibleModule
    spec = connection_argument_spec()
    spec.update(argument_spec)
    options = dict(CONNECTION_OPTIONS)
    for key, value in kwargs.items():
        options[key] = list(options.get(key, [])) + list(value) if key in options else value
    return AnsibleModule(argument_spec=spec, supports_check_mode=True, **options)


def run_module(module, action, errors=()):
    """exit_json with what action(talosctl) returns; fail_json naming the error (with rc, stdout, stderr
    and the command when talosctl failed). The private directory is gone either way."""
    result = {}
    try:
        with Talosctl(module) as talosctl:
            result = action(talosctl)
    except TalosError as exc:
        module.fail_json(msg=str(exc), **exc.details())
    except errors as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)
