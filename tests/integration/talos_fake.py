"""A stand-in talosctl for module tests: it records every argv and answers the subset of v1.11 commands
the collection runs with the outputs the CLI reference documents, keeping node state in a JSON file.

Shapes as talosctl v1.11 has them: answers and progress on stderr (apply-config's mode details, health's
checks), a node's errors through an endpoint as a multierror (`1 error occurred:` then `\t* <node>: ...`),
the maintenance service refusing --mode no-reboot and staged, `get machineconfig` listing `persistent` and
`v1alpha1`, `bootstrap` and `health` refusing more than one node, `reset` waiting unless --wait=false.

It checks nothing of Talos itself (no PKI, no real validation beyond required fields); it exists to
show what the modules ask talosctl and what they make of its answers.
"""

import json
import pathlib
import stat
import sys

SCRIPT = r'''#!PYTHON
import base64, fcntl, ipaddress, json, os, sys, yaml

STATE = os.environ['FAKE_TALOS_STATE']
# The modules run talosctl for several nodes at once: one call at a time reads and writes the state.
LOCK = open(STATE + '.lock', 'a')
fcntl.flock(LOCK, fcntl.LOCK_EX)
with open(STATE) as handle:
    state = json.load(handle)
argv = sys.argv[1:]
with open(STATE + '.log', 'a') as log:
    log.write(json.dumps(argv) + '\n')


def flag(name, default=None):
    return argv[argv.index(name) + 1] if name in argv else default


def save():
    with open(STATE, 'w') as handle:
        json.dump(state, handle)


def fail(message, rc=1):
    sys.stderr.write(message + '\n')
    sys.exit(rc)


def answer(message):
    """talosctl's answers go to stderr (helpers.PrintApplyResults, the health and reset progress)."""
    sys.stderr.write(message + '\n')
    sys.exit(0)


def node_failed(verb, node, error):
    """A node's error through the endpoint: talosctl's multierror of the one-to-many call."""
    fail('error {0}: 1 error occurred:\n\t* {1}: rpc error: {2}\n'.format(verb, node, error))


words = []
for arg in argv:  # the command and its positional arguments come before the flags
    if arg.startswith('-') and arg != '-':
        break
    words.append(arg)
command = ' '.join(words[:2])
nodes = (flag('--nodes') or '').split(',') if '--nodes' in argv else []
insecure = '--insecure' in argv
key = words[0] if words else ''
if state.get('unavailable', {}).get(key, 0) > 0:
    state['unavailable'][key] -= 1
    save()
    fail('error: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
         'dial tcp {0}:50000: connect: connection refused"'.format(nodes[0] if nodes else '127.0.0.1'))
for node in nodes:
    if node not in state['nodes']:
        fail('error: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
             'dial tcp {0}:50000: connect: no route to host"'.format(node))


def node_state(node):
    found = state['nodes'][node]
    if not insecure and not found.get('config'):
        fail('error: rpc error: code = Unavailable desc = connection error: desc = "transport: authentication '
             'handshake failed: tls: certificate required"')
    return found


def resource(node, spec, kind):
    return {'node': node, 'metadata': {'namespace': 'runtime', 'type': kind, 'id': 'x', 'version': 1,
                                       'phase': 'running'}, 'spec': spec}


def output(docs):
    if flag('--output') == 'json':
        print('\n'.join(json.dumps(d, indent=4) for d in docs))
    else:
        print('---\n'.join(yaml.safe_dump(d, sort_keys=False) for d in docs), end='')


b64 = lambda text: base64.b64encode(text.encode()).decode()
if command == 'gen secrets':
    path = flag('--output-file', 'secrets.yaml')
    seed = base64.b64encode(os.urandom(24)).decode()
    bundle = {'cluster': {'id': seed, 'secret': b64('cluster-' + seed)},
              'secrets': {'bootstraptoken': seed[:6].lower() + '.' + seed[6:22].lower(),
                          'secretboxencryptionsecret': b64('box-' + seed)},
              'trustdinfo': {'token': seed[:6] + '.' + seed[6:22]},
              'certs': {name: {'crt': b64(name + ' certificate ' + seed), 'key': b64(name + ' key ' + seed)}
                        for name in ('etcd', 'k8s', 'k8saggregator', 'os')}}
    with open(path, 'w') as handle:
        yaml.safe_dump(bundle, handle)
elif command == 'gen config':
    name, endpoint = words[2], words[3]
    with open(flag('--with-secrets')) as handle:
        bundle = yaml.safe_load(handle)
    kind = flag('--output-types')
    certs = bundle['certs']
    if kind == 'talosconfig':
        print(yaml.safe_dump({'context': name, 'contexts': {name: {
            'endpoints': ['127.0.0.1'], 'ca': certs['os']['crt'],
            'crt': b64('client ' + base64.b64encode(os.urandom(8)).decode()), 'key': b64('client key')}}}), end='')
        sys.exit(0)
    config = {'version': 'v1alpha1', 'debug': False, 'persist': True,
              'machine': {'type': kind, 'token': bundle['trustdinfo']['token'], 'ca': certs['os'], 'certSANs': [],
                          'kubelet': {'image': 'ghcr.io/siderolabs/kubelet:v' + (flag('--kubernetes-version') or '1.34.1')},
                          'network': {}, 'install': {'disk': '/dev/sda', 'image': 'ghcr.io/siderolabs/installer:v1.11.6',
                                                     'wipe': False}},
              'cluster': {'id': bundle['cluster']['id'], 'secret': bundle['cluster']['secret'],
                          'controlPlane': {'endpoint': endpoint}, 'clusterName': name,
                          'network': {'dnsDomain': 'cluster.local', 'podSubnets': ['10.244.0.0/16'],
                                      'serviceSubnets': ['10.96.0.0/12']},
                          'token': bundle['secrets']['bootstraptoken'], 'ca': certs['k8s']}}
    if kind == 'controlplane':
        config['cluster']['secretboxEncryptionSecret'] = bundle['secrets']['secretboxencryptionsecret']
        config['cluster']['etcd'] = {'ca': certs['etcd']}
    print(yaml.safe_dump(config, sort_keys=False), end='')
elif command == 'machineconfig patch':
    # Merged by the lab's talosctl engine, which the table of upstream merge cases tests.
    from castle_lab.talos import machineconfig
    with open(words[2]) as handle:
        docs = [d for d in yaml.safe_load_all(handle) if d is not None]
    try:
        patches = [machineconfig.read_patch(argv[i + 1]) for i, arg in enumerate(argv) if arg in ('--patch', '-p')]
        print(machineconfig.dump_documents(machineconfig.apply_patches(docs, patches)))
    except machineconfig.PatchError as exc:
        fail(str(exc))
elif command.startswith('validate'):
    with open(flag('--config')) as handle:
        config = yaml.safe_load(handle)
    problems = []
    if not (config.get('cluster') or {}).get('clusterName'):
        problems.append('cluster name is empty')
    for device in ((config.get('machine') or {}).get('network') or {}).get('interfaces') or []:
        for address in device.get('addresses') or []:
            try:
                ipaddress.ip_interface(address)
            except ValueError:
                problems.append('[networking.os.device.addresses] "{0}": invalid CIDR address: {1}'.format(
                    device.get('interface'), address))
    if problems:
        fail('1 error occurred:\n\t* ' + '\n\t* '.join(problems))
    print('{0} is valid for {1} mode'.format(flag('--config'), flag('--mode')))
elif command == 'get machinestatus':
    found = node_state(nodes[0])
    stage = 'running' if found.get('config') else 'maintenance'
    output([resource(nodes[0], {'stage': stage, 'status': {'ready': stage == 'running'}}, 'MachineStatuses.runtime.talos.dev')])
elif command == 'get machineconfig':
    found = node_state(nodes[0])
    docs = [resource(nodes[0], found.get('staged') or found['config'], 'MachineConfigs.config.talos.dev'),
            resource(nodes[0], found['config'], 'MachineConfigs.config.talos.dev')]
    docs[0]['metadata']['id'], docs[1]['metadata']['id'] = 'persistent', 'v1alpha1'
    output(docs)
elif command == 'get hostname':
    found = node_state(nodes[0])
    hostname = ((yaml.safe_load(found['config'])['machine'].get('network') or {}).get('hostname')) or 'talos-x'
    output([resource(nodes[0], {'hostname': hostname}, 'HostnameStatuses.network.talos.dev')])
elif command == 'get members':
    found = node_state(nodes[0])
    output([resource(n, {'hostname': n, 'machineType': yaml.safe_load(s['config'])['machine']['type'],
                         'addresses': [n]}, 'Members.cluster.talos.dev')
            for n, s in sorted(state['nodes'].items()) if s.get('config')])
elif command == 'apply-config':
    found = node_state(nodes[0])
    mode = flag('--mode', 'auto')
    with open(flag('--file')) as handle:
        text = handle.read()
    if insecure:
        if mode not in ('auto', 'reboot', 'try'):
            fail('error applying new configuration: rpc error: code = Unimplemented desc = apply configuration '
                 "--mode='{0}' is not supported in maintenance mode".format(mode))
        if '--dry-run' in argv:
            answer('Dry run summary:\nNode is running in maintenance mode and does not have a config yet.')
        found['config'] = text
        save()
        sys.exit(0)
    if '--dry-run' in argv:
        answer('Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).\n\nConfig diff:\n')
    if mode == 'staged':
        found['staged'] = text
    else:
        found['config'] = text
        found.pop('staged', None)
    save()
    answer({'staged': 'Staged configuration to be applied after a reboot', 'reboot': 'Applied configuration with a '
          'reboot', 'try': 'Applied configuration with a try mode: will roll back in 1m0s'}.get(
              mode, 'Applied configuration without a reboot'))
elif command == 'etcd members':
    node_state(nodes[0])
    if not state.get('bootstrapped') or nodes[0] in state.get('etcd_not_joined', []):
        node_failed('getting members', nodes[0], 'code = FailedPrecondition desc = etcd is not running')
    print('NODE         ID                 HOSTNAME   PEER URLS                 CLIENT URLS               LEARNER')
    print('{0}   3a2f7c9d1e0b4a56   cp-1       https://{0}:2380   https://{0}:2379   false'.format(nodes[0]))
elif command == 'bootstrap':
    if len(nodes) > 1:
        fail('command "bootstrap" is not supported with multiple nodes')
    node_state(nodes[0])
    if state.get('bootstrap_error'):
        node_failed('executing bootstrap', nodes[0], state['bootstrap_error'])
    # Like Talos, a node looks at its own etcd data only: one that has not joined yet starts a second cluster.
    if state.get('bootstrapped') and nodes[0] not in state.get('etcd_not_joined', []):
        node_failed('executing bootstrap', nodes[0], 'code = AlreadyExists desc = etcd data directory is not empty')
    if state.get('bootstrapped'):
        state['split_brain'] = nodes[0]
    state['bootstrapped'] = True
    save()
elif command == 'kubeconfig -':
    node_state(nodes[0])
    print(yaml.safe_dump({'apiVersion': 'v1', 'kind': 'Config', 'clusters': [
        {'name': 'lab', 'cluster': {'server': 'https://10.0.40.10:6443', 'certificate-authority-data': b64('k8s ca')}}],
        'contexts': [{'name': 'admin@lab', 'context': {'cluster': 'lab', 'user': 'admin@lab'}}],
        'current-context': 'admin@lab',
        'users': [{'name': 'admin@lab', 'user': {'client-certificate-data': b64(base64.b64encode(os.urandom(8)).decode()),
                                                'client-key-data': b64('admin key')}}]}), end='')
elif command == 'health':
    if len(nodes) > 1:
        fail('command "health" is not supported with multiple nodes')
    node_state(nodes[0])
    listed = flag('--control-plane-nodes', '').split(',') + [n for n in flag('--worker-nodes', '').split(',') if n]
    for name in listed:
        if not all(part.isdigit() for part in name.split('.')) or name.count('.') != 3:
            fail('healthcheck error: rpc error: code = Unknown desc = ParseAddr("{0}"): unable to parse '
                 'IP'.format(name))
    deadline_error = 'healthcheck error: rpc error: code = DeadlineExceeded desc = context deadline exceeded'
    sys.stderr.write('discovered nodes: [{0}]\n'.format(' '.join('"{0}"'.format(n) for n in listed)))
    sys.stderr.write('waiting for etcd to be healthy: ...\n')
    if not state.get('bootstrapped'):
        fail('waiting for etcd to be healthy: 1 error occurred:\n\t* {0}: service "etcd" not in expected state '
             '"Running": current state [Preparing] Running pre state\n{1}'.format(nodes[0], deadline_error))
    sys.stderr.write('waiting for etcd to be healthy: OK\n')
    sys.stderr.write('waiting for all k8s nodes to report ready: ...\n')
    not_ready = [n for n in listed if not state['nodes'].get(n, {}).get('config')]
    # A check that does not pass within its own cap ends the run (health_failing: how many runs it takes).
    if state.get('health_failing', 0) > 0:
        state['health_failing'] -= 1
        save()
        not_ready = not_ready or listed[-1:]
    if not_ready:
        fail('waiting for all k8s nodes to report ready: some nodes are not ready: {0}\n{1}'.format(
            not_ready, deadline_error))
    sys.stderr.write('waiting for all k8s nodes to report ready: OK\n')
    sys.stderr.write('waiting for kube-proxy to report ready: SKIP\n')
elif command == 'reset':
    found = node_state(nodes[0])
    found['config'] = None
    save()
    # By default talosctl tracks the reset until the node answers its mTLS client again: one wiped back to
    # maintenance mode never does, and the tracker gives up at --timeout.
    if '--wait=false' not in argv and '--reboot=true' in argv:
        fail('"{0}": waiting for actor ID\n"{0}": actor ID: 5b0f1e8e-54cf-4b43-a4c2-0d62a4b7d1a1\n"{0}": events check '
             'condition met\n"{0}": unavailable, retrying...\n"{0}": context deadline exceeded'.format(nodes[0]))
elif command == 'version':
    node_state(nodes[0])
    client = 'Talos v1.11.6' if '--short' in argv else (
        '\tTag:         v1.11.6\n\tSHA:         6dd14300\n\tBuilt:       \n\tGo version:  go1.24.11\n'
        '\tOS/Arch:     linux/amd64')
    print('Client:\n{1}\nServer:\n\tNODE:        {0}\n\tTag:         v1.11.6\n\tSHA:         6dd14300\n'
          '\tBuilt:       \n\tGo version:  go1.24.11\n\tOS/Arch:     linux/amd64\n\tEnabled:     RBAC'.format(
              nodes[0], client))
else:
    fail('Error: unknown command {0!r} for "talosctl"'.format(command))
'''


class FakeTalosctl(object):
    """The script written into a directory, with its state (nodes by address) and the argv log."""

    def __init__(self, directory, nodes):
        self.dir = pathlib.Path(directory)
        self.path = self.dir / 'talosctl'
        self.state_path = self.dir / 'state.json'
        self.path.write_text(SCRIPT.replace('PYTHON', sys.executable, 1))
        self.path.chmod(self.path.stat().st_mode | stat.S_IXUSR)
        self.state_path.write_text(json.dumps({'nodes': dict((n, {'config': None}) for n in nodes)}))

    @property
    def environ(self):
        return {'FAKE_TALOS_STATE': str(self.state_path)}

    @property
    def state(self):
        return json.loads(self.state_path.read_text())

    def update(self, **changes):
        state = self.state
        state.update(changes)
        self.state_path.write_text(json.dumps(state))

    @property
    def calls(self):
        log = pathlib.Path(str(self.state_path) + '.log')
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
