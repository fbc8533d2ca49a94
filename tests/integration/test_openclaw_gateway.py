"""playbooks/openclaw.yml against the lab's OpenClaw node while it runs a real OpenClaw gateway: the role's CLI
calls go through that gateway, and its handler reloads the plugin there once per run that changed something.
Every reload or restart is counted from the gateway's own log, not from Ansible's output."""

import json
import re
import shutil
import time

import pytest
from harness import play_recap, run_playbook

from conftest import secret_value
from test_openclaw_plugin import KNOWLEDGE_URL, RUNTIME_URL, TOOLS, diff_lines, node_config, ssh

pytestmark = pytest.mark.lab

NEW_RUNTIME_URL = 'http://kaze-runtime-3.castle.internal:8080'
ANSI = re.compile(r'\x1b\[[0-9;]*m')
# What the gateway logs for each event: the RPC answers the CLI got, its config watcher, a restart.
EVENTS = {
    'reload': re.compile(r'\[ws\] \S+ res \S+ plugins\.reload '),
    'install': re.compile(r'\[ws\] \S+ res \S+ plugins\.install '),
    'enable': re.compile(r'\[ws\] \S+ res \S+ plugins\.setEnabled '),
    'hot_reload': re.compile(r'\[reload\] config hot reload applied \((.*)\)'),
    'restart': re.compile(r'received SIGUSR2; restarting'),
}


class GatewayLog:
    """The gateway's output (its log under the lab's process supervision), read from a mark on."""

    def __init__(self, path):
        self.path = path
        self.offset = 0

    def mark(self):
        self.offset = self.path.stat().st_size

    def lines(self):
        with open(self.path, 'rb') as log:
            log.seek(self.offset)
            return [ANSI.sub('', line) for line in log.read().decode(errors='replace').splitlines()]

    def events(self, name):
        return [match for match in map(EVENTS[name].search, self.lines()) if match]

    def wait_for(self, name, count, timeout=60):
        """The events of one kind once at least `count` are logged (or the deadline passed)."""
        deadline = time.monotonic() + timeout
        while len(self.events(name)) < count and time.monotonic() < deadline:
            time.sleep(0.5)
        return self.events(name)


@pytest.fixture(scope='module')
def gateway(lab):
    """The node restarted with its gateway, on an empty state directory; the node as it was afterwards."""
    lab.castle_lab('down', 'openclaw')
    shutil.rmtree(lab.dir / 'openclaw' / 'home' / '.openclaw', ignore_errors=True)
    proc = lab.run('castle-lab', 'up', 'openclaw', env={**lab.env, 'CASTLE_LAB_OPENCLAW_GATEWAY': '1'})
    assert 'gateway ready on 127.0.0.1:' in proc.stdout
    yield GatewayLog(lab.dir / 'openclaw' / 'gateway.log')
    lab.castle_lab('down', 'openclaw')
    lab.castle_lab('up', 'openclaw')


@pytest.fixture(scope='module')
def node(lab, gateway):
    env = lab.client_env()
    assert env['CASTLE_OPENCLAW_GATEWAY_LOG'] == str(gateway.path)
    return env


@pytest.fixture(scope='module')
def play(lab, node):
    token = secret_value('kaze-gateway-token')

    def run(**overrides):
        extra = {'openclaw_plugin_runtime_url': RUNTIME_URL, 'openclaw_plugin_knowledge_url': KNOWLEDGE_URL,
                 'openclaw_plugin_api_token': token, **overrides}
        proc = run_playbook(node, 'playbooks/openclaw.yml', inventory=lab.inventory / 'hosts.yml', diff=True,
                            extra_vars=extra)
        assert token not in proc.stdout + proc.stderr
        return proc
    return run


def gateway_pid(lab):
    return int((lab.dir / 'openclaw' / 'gateway.pid').read_text().split()[0])


def test_the_node_cli_reaches_the_gateway(lab, node):
    status = json.loads(ssh(lab, node, 'openclaw gateway status --json 2>/dev/null').stdout)
    assert status['rpc']['ok'] is True
    assert status['service']['loaded'] is False, 'the lab supervises the gateway: no systemd service'
    assert status['port']['port'] == int(node['CASTLE_OPENCLAW_GATEWAY_URL'].rsplit(':', 1)[1])


def test_first_run_installs_through_the_gateway_and_reloads_it_once(lab, node, gateway, play):
    pid = gateway_pid(lab)
    gateway.mark()
    proc = play()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert play_recap(proc)['openclaw-node']['changed'] > 0
    assert 'kaze 1.0.0 loaded with {0}'.format(', '.join(TOOLS)) in proc.stdout
    assert len(gateway.wait_for('reload', 1)) == 1
    assert len(gateway.events('install')) == 1
    assert len(gateway.events('enable')) == 1
    assert gateway.events('restart') == []
    assert gateway_pid(lab) == pid
    assert node_config(lab, node)['plugins']['entries']['kaze']['enabled'] is True


def test_second_run_changes_nothing_and_the_gateway_records_nothing(lab, node, gateway, play):
    gateway.mark()
    proc = play()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert play_recap(proc)['openclaw-node']['changed'] == 0
    assert [line for line in gateway.lines() if re.search(r'\[reload\]|plugins\.|SIGUSR2', line)] == []


def test_a_new_runtime_url_is_applied_by_the_gateway_and_reloads_it_once(lab, node, gateway, play):
    pid = gateway_pid(lab)
    before = node_config(lab, node)
    gateway.mark()
    proc = play(openclaw_plugin_runtime_url=NEW_RUNTIME_URL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert diff_lines(proc, 'openclaw.json') == ['-          "runtimeUrl": "{0}",'.format(RUNTIME_URL),
                                                 '+          "runtimeUrl": "{0}",'.format(NEW_RUNTIME_URL)]
    # The handler's one reload; the gateway's watcher also hot-applies the one key that changed, by itself.
    assert len(gateway.wait_for('reload', 1)) == 1
    assert [event.group(1) for event in gateway.wait_for('hot_reload', 1)] == ['plugins.entries.kaze.config.runtimeUrl']
    assert gateway.events('restart') == []
    assert gateway.events('install') == [] and gateway.events('enable') == []
    assert gateway_pid(lab) == pid
    before['plugins']['entries']['kaze']['config']['runtimeUrl'] = NEW_RUNTIME_URL
    assert node_config(lab, node) == before

    gateway.mark()
    again = play(openclaw_plugin_runtime_url=NEW_RUNTIME_URL)
    assert again.returncode == 0, again.stdout + again.stderr
    assert play_recap(again)['openclaw-node']['changed'] == 0
    assert gateway.events('reload') == [] and gateway.events('hot_reload') == []
