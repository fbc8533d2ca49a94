# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Talos layer's one client: the talosctl runner, and the layer's options. PRIVATE to the collection: other
collections must not import it.

talosctl is run with argument lists (never a shell). Secrets (bundle, machine configs, talosconfig
content) reach it only as files created 0600 in a private directory that is removed afterwards.
Calls that failed on an unreachable node (gRPC Unavailable, refused or broken connections) are
retried a bounded number of times with jittered backoff, within a deadline on the monotonic clock.
What talosctl prints is read in talos_output, machine configs as data and their comparison are in
talos_documents, patches (read for `talosctl machineconfig patch`) and a node's own settings in talos_config.

A module asks TALOS for its AnsibleModule and runs its work with a Talosctl:

    module = TALOS.module(dict(...))
    with Talosctl(module) as talosctl:
        run_module(module, lambda: work(module, talosctl))
"""

import os
import random
import re
import shlex
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import env_fallback

from ansible_collections.ephemeral.castle.plugins.module_utils._wait import Deadline, backoff
from ansible_collections.ephemeral.castle.plugins.module_utils.base import Layer, option
from ansible_collections.ephemeral.castle.plugins.module_utils.talos_documents import load_config
from ansible_collections.ephemeral.castle.plugins.module_utils.talos_output import (
    HAS_YAML, HIDDEN, YAML_IMPORT_ERROR, TalosError, failure_text, last_line, parse_json_stream, parse_table,
    parse_yaml_docs)

# talosctl's own words for a node it could not reach; nothing else is retried.
RETRYABLE = re.compile(
    r'code = Unavailable|connection refused|connection reset by peer|no route to host|i/o timeout'
    r'|network is unreachable|transport is closing|error reading server preface|broken pipe', re.IGNORECASE)
# The MachineConfig resource of the config a node runs (its other one, `persistent`, is the one on disk).
ACTIVE_CONFIG = 'v1alpha1'


def connection_argument_spec():
    """Options shared by every module that runs talosctl (doc fragment ephemeral.castle.talos)."""
    return dict(
        binary_path=option('path'),
        talosconfig=option('path', fallback=(env_fallback, ['TALOSCONFIG'])),
        talosconfig_content=option('str', no_log=True),
        context=option('str'),
        endpoints=option('list', elements='str'),
        nodes=option('list', elements='str'),
        retries=option('int', 3),
        retry_timeout=option('int', 60),
    )


# What every module that runs talosctl shares.
TALOS = Layer(connection_argument_spec(), requires=('PyYAML', HAS_YAML, YAML_IMPORT_ERROR),
              mutually_exclusive=[('talosconfig', 'talosconfig_content')])


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
        deadline = Deadline(self.retry_timeout, self._clock)
        attempt = 0
        while True:
            self.calls += 1
            rc, out, err = self._run(cmd, check_rc=False, cwd=cwd)
            self.last_stderr = err
            if rc == 0:
                return out, err
            retryable = retry and connect and is_retryable(err) and attempt < self.retries
            if not retryable or deadline.passed:
                raise TalosError('{0} failed (rc={1}){2}: {3}'.format(
                    command_name(args), rc,
                    ' after {0} tries'.format(attempt + 1) if attempt else '', failure_text(err) or last_line(out)),
                    rc=rc, stdout=HIDDEN if sensitive else out, stderr=err, command=shlex.join(cmd))
            # Full jitter up to an exponential cap, never past the deadline.
            self._sleep(min(backoff(attempt, jitter=self._jitter), deadline.left))
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


def target_node(talosctl, what):
    """The one node a module acts on: the first of nodes."""
    if not talosctl.nodes:
        raise TalosError('nodes must name the node to {0}'.format(what))
    return talosctl.nodes[0]
