"""A scripted talosctl for the Talos modules' unit tests: the module's real runner (argv, retries, secret files)
runs, but run_command answers from a small model of nodes instead of starting talosctl."""

import hashlib
import importlib
import json
import os

import yaml

from ansible_collections.ephemeral.castle.plugins.module_utils import talos

CONFIGURED = 'configured'
MAINTENANCE = 'maintenance'
DOWN = 'down'
UNAVAILABLE = 'rpc error: code = Unavailable desc = connection error: desc = "transport: connect: connection refused"'


def config_text(hostname, machine_type='controlplane', **extra):
    machine = dict(type=machine_type, network=dict(hostname=hostname))
    machine.update(extra)
    return yaml.safe_dump(dict(version='v1alpha1', machine=machine), sort_keys=False)


def etcd_snapshot_bytes(body):
    """An etcd snapshot's shape: the database (pages of 512 bytes), then the sha256 of it (32 bytes)."""
    padded = body + b'\0' * (-len(body) % 512)
    return padded + hashlib.sha256(padded).digest()


def merge_into(base, patch):
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_into(base[key], value)
        else:
            base[key] = value


class Call(object):
    """One talosctl command line: its subcommand words, flags, target nodes, and the files it named (read at
    call time, as talosctl would)."""

    def __init__(self, argv, cwd):
        self.argv = argv
        self.cwd = cwd
        self.words = []
        for arg in argv[1:]:
            if arg.startswith('-'):
                break
            self.words.append(arg)
        self.insecure = '--insecure' in argv
        self.nodes = self.flag('--nodes').split(',') if '--nodes' in argv else []
        self.files = dict((a, open(a).read()) for a in argv if os.path.isfile(a))
        # --patch @file: the file's text, read as talosctl would.
        self.patches = [open(value[1:]).read() for flag, value in zip(argv, argv[1:])
                        if flag == '--patch' and value.startswith('@')]

    def flag(self, name):
        return self.argv[self.argv.index(name) + 1] if name in self.argv else None

    @property
    def command(self):
        return ' '.join(self.words)


class FakeTalosctl(object):
    """Nodes by address, each with a state (configured, maintenance, down), a config (YAML text) and etcd members
    (rows); `answers` overrides a subcommand ('bootstrap', 'etcd members', ...) with (rc, stdout, stderr) or a
    callable(call) returning one. Every call is kept in `calls`."""

    def __init__(self, nodes=None):
        self.nodes = dict(nodes or {})
        self.answers = {}
        self.calls = []
        self.now = 1000.0
        self.slept = []

    def node(self, address, state=CONFIGURED, config=None, etcd=None, hostname=None, resets=True):
        """A node; resets=False: a reset leaves it running its config."""
        self.nodes[address] = dict(state=state, config=config, etcd=etcd or [], hostname=hostname, resets=resets)
        return self

    # ----------------------------------------------------------------- the runner's transport

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds

    def install(self, monkeypatch, name):
        """Make the module ephemeral.castle.<name> build its runner on this fake."""
        module = importlib.import_module('ansible_collections.ephemeral.castle.plugins.modules.' + name)
        monkeypatch.setattr(module, 'Talosctl', lambda m: talos.Talosctl(
            m, run_command=self, sleep=self.sleep, clock=self.clock, jitter=lambda low, high: high))
        return self

    def __call__(self, argv, check_rc=False, cwd=None):
        call = Call(argv, cwd)
        self.calls.append(call)
        verb = ' '.join(call.words[:2])
        answer = self.answers.get(call.command, self.answers.get(verb))
        if answer is not None:
            return answer(call) if callable(answer) else answer
        handler = getattr(self, 'do_' + verb.replace(' ', '_').replace('-', '_'), None)
        if handler is None:
            raise AssertionError('unexpected talosctl call: {0}'.format(' '.join(argv)))
        return handler(call)

    def ran(self, command):
        return [call for call in self.calls if call.command == command or call.command.startswith(command + ' ')]

    # ----------------------------------------------------------------- what the nodes answer

    def reachable(self, call):
        """(nodes answering this call, error text) as talosctl sees them: mTLS reaches configured nodes, the
        maintenance API (--insecure) nodes in maintenance."""
        errors = []
        for node in call.nodes:
            state = self.nodes.get(node, {}).get('state', DOWN)
            if state == DOWN:
                errors.append('{0}: {1}'.format(node, UNAVAILABLE))
            elif call.insecure and state == CONFIGURED:
                errors.append('{0}: rpc error: code = Unavailable desc = tls: certificate required'.format(node))
            elif not call.insecure and state == MAINTENANCE:
                errors.append('{0}: rpc error: code = Unavailable desc = tls: certificate required'.format(node))
        if len(call.nodes) == 1 and errors:
            return None, errors[0].split(': ', 1)[1]
        if errors:
            return None, '{0} error{1} occurred:\n{2}\n'.format(
                len(errors), '' if len(errors) == 1 else 's', '\n'.join('\t* ' + e for e in errors))
        return call.nodes, None

    def do_get_machinestatus(self, call):
        nodes, error = self.reachable(call)
        if error:
            return 1, '', error
        docs = [dict(node=node, metadata=dict(id='machine'), spec=dict(
            stage='maintenance' if call.insecure else 'running', status=dict(ready=not call.insecure)))
            for node in nodes]
        return 0, '\n'.join(json.dumps(doc) for doc in docs), ''

    def do_get_machineconfig(self, call):
        nodes, error = self.reachable(call)
        if error:
            return 1, '', error
        docs = [dict(node=node, metadata=dict(id='v1alpha1'), spec=self.nodes[node]['config'] or '')
                for node in nodes]
        return 0, yaml.safe_dump_all(docs), ''

    def do_get_hostname(self, call):
        nodes, error = self.reachable(call)
        if error:
            return 1, '', error
        return 0, '\n'.join(json.dumps(dict(node=n, spec=dict(hostname=self.nodes[n]['hostname']))) for n in nodes), ''

    def do_etcd_members(self, call):
        nodes, error = self.reachable(call)
        if error:
            return 1, '', error
        rows = self.nodes[nodes[0]]['etcd']
        if not rows:
            return 1, '', 'rpc error: code = Unavailable desc = etcd is not running'
        lines = ['NODE         ID                 HOSTNAME   LEARNER']
        lines += ['{0}   {1}   {2}   false'.format(nodes[0], row['id'], row['hostname']) for row in rows]
        return 0, '\n'.join(lines) + '\n', ''

    def do_apply_config(self, call):
        nodes, error = self.reachable(call)
        if error:
            return 1, '', error
        if '--dry-run' in call.argv:
            return 0, '', 'Dry run summary:\nApplied configuration without a reboot (skipped in dry-run)\n'
        for node in nodes:
            self.nodes[node].update(state=CONFIGURED, config=call.files[call.flag('--file')])
        return 0, '', 'Applied configuration without a reboot\n'

    def do_machineconfig_patch(self, call):
        """Each strategic --patch merged into the config file's one document: mappings key by key, the rest
        replaced; JSON patches are only recorded (enough for the modules' tests; the lab's talosctl merges as
        Talos does)."""
        config = yaml.safe_load(call.files[call.words[2]])
        for text in call.patches:
            patch = yaml.safe_load(text)
            if isinstance(patch, dict):
                merge_into(config, patch)
        return 0, yaml.safe_dump(config, sort_keys=False), ''

    def do_reset(self, call):
        nodes, error = self.reachable(call)
        if error:
            return 1, '', error
        for node in nodes:
            if self.nodes[node].get('resets', True):
                self.nodes[node].update(state=MAINTENANCE, config=None)
        return 0, '', ''

    def do_version(self, call):
        nodes, error = self.reachable(call)
        if error:
            return 1, '', error
        return 0, 'Client:\n\tTag:         v1.11.6\nServer:\n\tNODE:        {0}\n\tTag:         v1.11.6\n'.format(
            nodes[0]), ''

    def do_get_members(self, call):
        return 0, json.dumps(dict(node=call.nodes[0], spec=dict(hostname='cp-1', machineType='controlplane'))), ''

    def do_etcd_snapshot(self, call):
        """`talosctl etcd snapshot <path>`: one node per call; it writes <path>.part, then renames it to <path>."""
        if len(call.nodes) != 1:
            return 1, '', 'error: command "etcd snapshot" is not supported with multiple nodes'
        nodes, error = self.reachable(call)
        if error:
            return 1, '', error
        if not self.nodes[nodes[0]]['etcd']:
            return 1, '', 'error reading file: rpc error: code = Unavailable desc = etcd is not running'
        path = call.words[2]
        data = etcd_snapshot_bytes(json.dumps(dict(node=nodes[0], members=self.nodes[nodes[0]]['etcd'])).encode())
        with open(path + '.part', 'wb') as handle:
            handle.write(data)
        os.rename(path + '.part', path)
        return 0, 'etcd snapshot saved to "{0}" ({1} bytes)\n'.format(path, len(data)), ''


class FakeKV(object):
    """Vault's KV v2 as the Talos modules use it: where, read, write; `stored` is shared by every instance of
    one test (install() makes the module build it)."""

    def __init__(self, stored=None, mount='kv'):
        self.stored = stored if stored is not None else {}
        self.mount = mount
        self.writes = []

    def install(self, monkeypatch, name):
        module = importlib.import_module('ansible_collections.ephemeral.castle.plugins.modules.' + name)
        monkeypatch.setattr(module, 'VaultKV', lambda params: self)
        return self

    def where(self, path):
        return '{0}/{1}'.format(self.mount, path)

    def read(self, path):
        return self.stored.get(path)

    def write(self, path, data):
        self.writes.append((path, data))
        self.stored[path] = data
        return len(self.writes)
