"""A stand-in talosctl for module tests: it records every argv and answers the subset of v1.11 commands
the collection runs with the outputs the CLI reference documents, keeping node state in a JSON file.

It checks nothing of Talos itself (no PKI, no real validation beyond required fields); it exists to
show what the modules ask talosctl and what they make of its answers.
"""

import json
import pathlib
import stat
import sys

SCRIPT = r'''#!PYTHON
import base64, fcntl, json, os, sys, yaml

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
elif command.startswith('validate'):
    with open(flag('--config')) as handle:
        config = yaml.safe_load(handle)
    problems = []
    if not (config.get('cluster') or {}).get('clusterName'):
        problems.append('cluster name is empty')
    for device in ((config.get('machine') or {}).get('network') or {}).get('interfaces') or []:
        for address in device.get('addresses') or []:
            if '/' not in address:
                problems.append('[networking.os.device.address] "{0}": invalid CIDR address'.format(address))
    if problems:
        fail('1 error occurred:\n\t* ' + '\n\t* '.join(problems))
    print('{0} is valid for {1} mode'.format(flag('--config'), flag('--mode')))
elif command == 'get machinestatus':
    found = node_state(nodes[0])
    stage = 'running' if found.get('config') else 'maintenance'
    output([resource(nodes[0], {'stage': stage, 'status': {'ready': stage == 'running'}}, 'MachineStatuses.runtime.talos.dev')])
elif command == 'get machineconfig':
    found = node_state(nodes[0])
    output([resource(nodes[0], found['config'], 'MachineConfigs.config.talos.dev')])
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
    with open(flag('--file')) as handle:
        text = handle.read()
    if '--dry-run' in argv:
        print('Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).')
        sys.exit(0)
    found['config'] = text
    save()
    print('Applied configuration without a reboot' if flag('--mode') == 'no-reboot' else 'Applied configuration')
elif command == 'etcd members':
    node_state(nodes[0])
    if not state.get('bootstrapped') or nodes[0] in state.get('etcd_not_joined', []):
        fail('error getting members: 1 error occurred:\n\t* {0}: rpc error: code = FailedPrecondition desc = '
             'etcd is not running'.format(nodes[0]))
    print('NODE         ID                 HOSTNAME   PEER URLS                 CLIENT URLS               LEARNER')
    print('{0}   3a2f7c9d1e0b4a56   cp-1       https://{0}:2380   https://{0}:2379   false'.format(nodes[0]))
elif command == 'bootstrap':
    node_state(nodes[0])
    # Like Talos, a node looks at its own etcd data only: one that has not joined yet starts a second cluster.
    if state.get('bootstrapped') and nodes[0] not in state.get('etcd_not_joined', []):
        fail('error executing bootstrap: rpc error: code = AlreadyExists desc = etcd data directory is not empty')
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
    node_state(nodes[0])
    listed = flag('--control-plane-nodes', '').split(',') + [n for n in flag('--worker-nodes', '').split(',') if n]
    sys.stderr.write('discovered nodes: {0}\n'.format(listed))
    sys.stderr.write('waiting for etcd to be healthy: ...\n')
    if not state.get('bootstrapped'):
        fail('waiting for etcd to be healthy: 1 error occurred:\n\t* {0}: service "etcd" not in expected state '
             '"Running": current state [Preparing] Running pre state\nhealthcheck error: rpc error: code = '
             'DeadlineExceeded desc = context deadline exceeded'.format(nodes[0]))
    sys.stderr.write('waiting for etcd to be healthy: OK\n')
    sys.stderr.write('waiting for all k8s nodes to report ready: ...\n')
    not_ready = [n for n in listed if not state['nodes'].get(n, {}).get('config')]
    if not_ready:
        fail('waiting for all k8s nodes to report ready: some nodes are not ready: {0}\nhealthcheck error: '
             'rpc error: code = DeadlineExceeded desc = context deadline exceeded'.format(not_ready))
    sys.stderr.write('waiting for all k8s nodes to report ready: OK\n')
elif command == 'reset':
    found = node_state(nodes[0])
    found['config'] = None
    save()
elif command == 'version':
    node_state(nodes[0])
    print('Client:\n\tTag:         v1.11.6\nServer:\n\tNODE:        {0}\n\tTag:         v1.11.6'.format(nodes[0]))
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
