"""Shared fixtures: one castle-lab per test session, on its own loopback network and state directory."""

import functools
import http.server
import json
import os
import pathlib
import shlex
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid

import pytest
from kubernetes import client as kube_client, config as kube_config, dynamic as kube_dynamic
from proxmoxer import ProxmoxAPI

REPO = pathlib.Path(__file__).resolve().parents[1]
VENV_BIN = pathlib.Path(sys.executable).parent
# ansible_collections.ephemeral.castle resolves to this checkout (make setup links it there).
sys.path.insert(0, str(REPO / '.collections'))
# The module tests' fake clients (fake_pve, fake_kube, ...) import by name, as the helpers beside this file do;
# the tests themselves are a package there, so their names do not clash with the integration tests'.
sys.path.insert(0, str(REPO / 'tests' / 'unit' / 'plugins' / 'modules'))


def worker_net(base, worker):
    """The loopback /24 of one pytest-xdist worker's lab: the base network for gw0 (and for a run without
    workers), the next ones up for gw1, gw2..., so each worker's lab has addresses of its own."""
    parts = base.split('.')
    if len(parts) != 3 or parts[0] != '127' or not all(p.isdigit() and int(p) <= 255 for p in parts):
        raise ValueError('CASTLE_TEST_LAB_NET must be the first three octets of a 127.0.0.0/8 network, '
                         'not {0!r}'.format(base))
    index = int(worker[2:]) if worker.startswith('gw') and worker[2:].isdigit() else 0
    third = int(parts[2]) + index
    if third > 255:
        raise ValueError('CASTLE_TEST_LAB_NET {0!r} leaves no network for worker {1}'.format(base, worker))
    return '{0}.{1}.{2}'.format(parts[0], parts[1], third)


def spare_net(net):
    """A network for a lab of a test's own beside `net`'s: the same /24 one /16 up, clear of the networks
    the other workers' labs take next to it."""
    first, second, third = net.split('.')
    if int(second) == 255:
        raise ValueError('no spare network beside {0}: its second octet is 255'.format(net))
    return '{0}.{1}.{2}'.format(first, int(second) + 1, third)


# CASTLE_TEST_LAB_NET moves the session's lab, so two test runs on one machine do not collide;
# under pytest-xdist every worker has a lab of its own on its own network.
LAB_NET = worker_net(os.environ.get('CASTLE_TEST_LAB_NET', '127.0.20'), os.environ.get('PYTEST_XDIST_WORKER', 'gw0'))


def lab_environ(name, net, user):
    """Environment of a lab separate from the developer's own (.lab/ on 127.0.10.x)."""
    env = dict(os.environ)
    env.update(CASTLE_LAB_DIR=str(REPO / '.lab' / name), CASTLE_LAB_NET=net, CASTLE_LAB_OPENCLAW_USER=user,
               ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), PATH='{0}:{1}'.format(VENV_BIN, env['PATH']),
               # Every Ansible run against the lab leaves its output here, for the secret scan.
               ANSIBLE_LOG_PATH=str(REPO / '.lab' / name / 'ansible.log'))
    env.pop('CASTLE_LAB_INVENTORY', None)
    return env


class Lab:
    """A lab driven through the castle-lab command, as an operator would."""

    def __init__(self, name, net, user):
        self.env = lab_environ(name, net, user)
        self.dir = pathlib.Path(self.env['CASTLE_LAB_DIR'])
        self.inventory = self.dir / 'inventory'

    def run(self, *args, check=True, env=None, timeout=300, cwd=REPO):
        result = subprocess.run(list(args), env=env or self.env, cwd=cwd, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            pytest.fail('{0} exited {1}\nstdout:\n{2}\nstderr:\n{3}'.format(
                shlex.join(args), result.returncode, result.stdout, result.stderr))
        return result

    def castle_lab(self, *args, check=True):
        return self.run('castle-lab', *args, check=check)

    def info(self, *services):
        """`castle-lab env --json` of the started services (or these): the variables, the lab's paths, and each
        service's address, ports and files."""
        return json.loads(self.castle_lab('env', '--json', *services).stdout)

    def client_env(self):
        """The variables `castle-lab env` exports, merged over this lab's environment."""
        return dict(self.env, **self.info()['env'])

    def pid(self, service):
        return int((self.dir / service / (service + '.pid')).read_text().split()[0])

    def wipe(self):
        self.castle_lab('down', check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope='session')
def lab():
    """The session's (or the xdist worker's) lab, started from a clean state directory and stopped at the end.
    Its directory, network and OpenClaw user follow LAB_NET, so they are the worker's own too."""
    yield from running(Lab('test-lab-' + LAB_NET, LAB_NET, 'castle-claw-t' + LAB_NET.split('.')[-1]))


def running(instance, *services):
    """A lab fixture's body: the lab (or only these services of it) up from a clean state directory, then down,
    failing when a secret value or a traceback shows in its logs."""
    instance.wipe()
    instance.castle_lab('up', *services)
    yield instance
    leaked = leaked_secrets(instance.dir)
    crashed = crashes(instance.dir)
    instance.castle_lab('down')
    assert not leaked, 'secret values found in logs: {0}'.format(leaked)
    assert not crashed, 'tracebacks in the lab services\' logs: {0}'.format(crashed)


def wait_for(check, what, timeout=60, every=0.2):
    """check()'s first true answer within timeout seconds, asked every `every` seconds; fails naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(every)
    return pytest.fail('not within {0} s: {1}'.format(timeout, what))


# Secret values the tests seed; none may ever show up in an Ansible output or a service log.
SECRET_MARKERS = []


def secret_value(label='secret'):
    """A recognisable random secret value; the session fails if a log of its lab ever contains it."""
    value = 'castle-secret-{0}-{1}'.format(label, secrets.token_hex(8))
    SECRET_MARKERS.append(value)
    return value


def leaked_secrets(directory):
    """{log file: [markers]} for every log under the lab directory that holds a seeded secret value."""
    found = {}
    for log in sorted(pathlib.Path(directory).rglob('*.log')):
        text = log.read_text(errors='replace')
        hits = [marker for marker in SECRET_MARKERS if marker in text]
        if hits:
            found[str(log)] = hits
    return found


TRACEBACK = 'Traceback (most recent call last)'


def crashes(directory):
    """{service log: the lines after its first traceback} for every log of the lab's services that shows one: a
    refused input must be answered, never crash a handler. Ansible's own log and npm's are not the services'."""
    found = {}
    for log in sorted(pathlib.Path(directory).rglob('*.log')):
        if log.name == 'ansible.log' or '.npm' in log.parts:
            continue
        text = log.read_text(errors='replace')
        if TRACEBACK in text:
            found[str(log)] = text[text.index(TRACEBACK):][:2000]
    return found


@pytest.fixture(scope='module')
def env(lab):
    return lab.client_env()


# Clients of the lab's Kubernetes API (a module with a lab of its own, like test_kube_flux.py, defines its own).
@pytest.fixture(scope='module')
def kenv(env):
    return env


@pytest.fixture(scope='module')
def api_client(kenv):
    return kube_config.new_client_from_config(kenv['KUBECONFIG'])


@pytest.fixture(scope='module')
def core(api_client):
    return kube_client.CoreV1Api(api_client)


@pytest.fixture(scope='module')
def dyn(api_client):
    return kube_dynamic.DynamicClient(api_client)


@pytest.fixture(scope='module')
def pve(env):
    user, token = env['PROXMOX_TOKEN_ID'].split('!')
    return ProxmoxAPI(env['PROXMOX_HOST'], port=8006, user=user, token_name=token,
                      token_value=env['PROXMOX_TOKEN_SECRET'], verify_ssl=env['PROXMOX_CA'])


@pytest.fixture
def control(env):
    """The lab Proxmox VE's control API, with the fake put back to its initial state before and after the test."""
    from castle_lab.control import ProxmoxControl
    client = ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL'])
    client.reset()
    yield client
    client.reset()


@pytest.fixture
def served(tmp_path):
    """A loopback HTTP server for the files written to the returned directory: (base URL, directory)."""
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:{0}'.format(server.server_address[1]), tmp_path
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def find(pve, name):
    """The cluster's VMs with this name, read straight from the API."""
    return [vm for vm in pve.cluster.resources.get(type='vm') if vm.get('name') == name]


def remove_named(pve, *names):
    """Destroy every VM with one of these names, protected or running ones too."""
    for name in names:
        for vm in find(pve, name):
            api = pve.nodes(vm['node']).qemu(vm['vmid'])
            if api.config.get().get('protection'):
                api.config.put(protection=0)
            if vm['status'] == 'running':
                api.status.stop.post()
            api.delete(purge=1)


@pytest.fixture
def name(pve):
    """A fresh VM name; whatever the test made under it (or under it plus a suffix) is removed afterwards."""
    made = 'it-{0}'.format(uuid.uuid4().hex[:8])
    yield made
    remove_named(pve, *[vm['name'] for vm in pve.cluster.resources.get(type='vm')
                        if str(vm.get('name', '')).startswith(made)])


@pytest.fixture
def consent(tmp_path):
    """consent(*names, ttl=600) -> the options (gate_token, gate_journal) of a phoenix gate token issued, as
    fleet_gate issues it, for exactly these names, in a journal of the test's own."""
    from ansible_collections.ephemeral.castle.plugins.module_utils import gate
    fleet = tmp_path / 'consent.fleet.yml'
    fleet.write_text('# the fleet file the token is bound to\n')
    journal = tmp_path / 'phoenix-journal.md'

    def issue(*names, ttl=600):
        token = gate.issue(str(journal), str(fleet), names[0], 'node', list(names), ttl, 'gate passed')[0]
        return dict(gate_token=token, gate_journal=str(journal))
    return issue


@pytest.fixture(scope='session')
def installed_collection(tmp_path_factory):
    """The collection's artifact installed, with only its declared dependencies, into an empty collections path,
    once per session (harness.InstalledCollection): merge its `env` over a run's to use that install alone."""
    from harness import install_collection
    return install_collection(tmp_path_factory.mktemp('installed-collection'))


@pytest.fixture
def run_module(monkeypatch):
    """run_module(name, check_mode=False, diff=False, **args) -> the result of ephemeral.castle.<name>, run in
    this process with exit_json/fail_json caught (tests/module_runner.py); fake the layer client first."""
    import module_runner
    return module_runner.runner(monkeypatch)
