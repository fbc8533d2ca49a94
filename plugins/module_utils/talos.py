# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Talos layer's one client: the talosctl runner. PRIVATE to the collection: other collections must not import it.

talosctl is run with argument lists (never a shell). Secrets (bundle, machine configs, talosconfig
content) reach it only as files created 0600 in a private directory that is removed afterwards.
Calls that failed on an unreachable node (gRPC Unavailable, refused or broken connections) are
retried a bounded number of times with jittered backoff, within a deadline on the monotonic clock.
Machine config patches and comparisons live in talos_config.
"""

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
# hashicorp/go-multierror's list: a count line, then one `\t* <node>: <error>` line per node.
MULTIERROR = re.compile(r'\d+ errors? occurred:\s*$')
NODE_ERROR = re.compile(r'^\t\* (?P<node>\S+?): (?P<error>.*)$')
# `talosctl version --short`: the client's name and tag (pkg/machinery/version Short()).
SHORT_VERSION = re.compile(r'^(?P<name>\S+) (?P<tag>v\d+\.\d+\.\d+\S*)$')
# The MachineConfig resource of the config a node runs (its other one, `persistent`, is the one on disk).
ACTIVE_CONFIG = 'v1alpha1'
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
        return self.run_both(args, connect=connect, nodes=nodes, insecure=insecure, retry=retry, sensitive=sensitive,
                             cwd=cwd)[0]

    def run_both(self, args, connect=True, nodes=None, insecure=False, retry=True, sensitive=False, cwd=None):
        """(stdout, stderr) of a successful run: talosctl writes its answers and progress (apply-config's
        mode details, health's checks, reset's tracking) on stderr. Failures as run() raises them."""
        cmd = self.argv(args, connect=connect, nodes=nodes, insecure=insecure)
        deadline = self._clock() + self.retry_timeout
        attempt = 0
        while True:
            self.calls += 1
            rc, out, err = self._run(cmd, check_rc=False, cwd=cwd)
            self.last_stderr = err
            if rc == 0:
                return out, err
            retryable = retry and connect and is_retryable(err) and attempt < self.retries
            left = deadline - self._clock()
            if not retryable or left <= 0:
                raise TalosError('{0} failed (rc={1}){2}: {3}'.format(
                    command_name(args), rc,
                    ' after {0} tries'.format(attempt + 1) if attempt else '', failure_text(err) or last_line(out)),
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
        """The machine config documents a configured node runs: of the MachineConfig resources, `v1alpha1` (the
        active one), not `persistent` (the one on disk, ahead after a staged apply, behind during a try)."""
        found = [doc for doc in self.run_yaml(['get', 'machineconfig'], nodes=[node], sensitive=True)
                 if ((doc or {}).get('metadata') or {}).get('id') == ACTIVE_CONFIG]
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


def node_errors(text):
    """{node: error} of a multierror talosctl printed (`N error(s) occurred:` then `\t* <node>: <error>` lines,
    the nodes' errors of one call through an endpoint); {} when text holds none."""
    found = {}
    listing = False
    for line in (text or '').splitlines():
        if MULTIERROR.search(line):
            listing = True
            continue
        item = NODE_ERROR.match(line)
        if listing and item:
            found[item.group('node')] = item.group('error').strip()
        elif line.strip():
            listing = False
    return found


def failure_text(text):
    """What went wrong, in one line: each node's error of a multierror (`<node>: <error>; ...`), else the
    last line talosctl printed."""
    errors = node_errors(text)
    if errors:
        return '; '.join('{0}: {1}'.format(node, error) for node, error in errors.items())
    return last_line(text)


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
    """`talosctl version` as {'client': {...}, 'servers': [{'node': ..., 'tag': ...}, ...]}. With --short the
    client's part is one line, `Talos <tag>`; a server's part is always the long one."""
    found = dict(client={}, servers=[])
    current = None
    for raw in (text or '').splitlines():
        line = raw.strip()
        if line in ('Client:', 'Server:'):
            current = found['client'] if line == 'Client:' else None
            continue
        short = SHORT_VERSION.match(line)
        if short and current is found['client']:
            found['client'].update(name=short.group('name'), tag=short.group('tag'))
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


def redacted(value, field=''):
    """A copy safe to show: keys, certificates and tokens become a marker with a short digest."""
    if isinstance(value, dict):
        return dict((k, redacted(v, k)) for k, v in value.items())
    if isinstance(value, list):
        return [redacted(v, field) for v in value]
    if isinstance(value, str) and SECRET_FIELD.search(field) and value:
        return '{0} {1}'.format(HIDDEN, digest(field + value)[:8])
    return value


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
