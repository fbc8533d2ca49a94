"""The lab's service manager as a host's init, in a mount and network namespace of the test's own: unit files run
as written (Debian's ssh.service included), restart and start-limit semantics, timers, enablement symlinks,
`systemd-analyze verify` at load, Ansible's systemd_service/service/service_facts modules, and a clean shutdown."""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from castle_lab.mesh.systemctl import shim_script
from castle_lab.process import wait_until
from conftest import crashes

ANSIBLE = pathlib.Path(sys.executable).parent / 'ansible'


class Sandbox:
    """A host in miniature: private /run, its own /etc/systemd/system, the lab's systemctl, the manager as init."""

    def __init__(self, tmp):
        self.tmp = pathlib.Path(tmp)
        self.units = self.tmp / 'etc-units'
        self.units.mkdir(parents=True)
        self.log = self.tmp / 'units.log'
        (self.tmp / 'systemctl').write_text(shim_script(sys.executable))
        (self.tmp / 'systemctl').chmod(0o755)
        (self.tmp / 'sshd_config').write_text(pathlib.Path('/etc/ssh/sshd_config').read_text())
        script = '\n'.join((
            'set -e', 'mount -t tmpfs tmpfs /run', 'mount --bind {0} /etc/systemd/system'.format(self.units),
            'mount -t tmpfs tmpfs /lib/systemd/system/multi-user.target.wants',
            'mount -t tmpfs tmpfs /lib/systemd/system/timers.target.wants',
            'mount --bind {0}/systemctl /usr/bin/systemctl'.format(self.tmp),
            'mount --bind {0}/sshd_config /etc/ssh/sshd_config'.format(self.tmp), 'ip link set lo up',
            'exec {0} -m castle_lab.mesh.units --log {1}'.format(sys.executable, self.log)))
        self.proc = subprocess.Popen(['unshare', '--mount', '--propagation', 'private', '--net', 'sh', '-c', script])
        wait_until(lambda: self.systemctl('is-system-running', check=False).stdout.strip() == 'running', 20, 'manager')

    def run(self, *args, check=True, env=None):
        result = subprocess.run(['nsenter', '--target', str(self.proc.pid), '--mount', '--net', '--', *args],
                                capture_output=True, text=True, check=False, timeout=60, env=env)
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr, self.log.read_text()[-3000:])
        return result

    def systemctl(self, *args, check=True):
        return self.run('/usr/bin/systemctl', *args, check=check)

    def show(self, unit):
        return dict(line.split('=', 1) for line in self.systemctl('show', unit).stdout.splitlines() if '=' in line)

    def unit(self, name, text):
        (self.units / name).write_text(text)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@pytest.fixture(scope='module')
def host(tmp_path_factory):
    sandbox = Sandbox(tmp_path_factory.mktemp('host'))
    yield sandbox
    if sandbox.proc.poll() is None:
        sandbox.stop()
    assert not crashes(sandbox.tmp), crashes(sandbox.tmp)


def service(exec_start, extra='', unit='', install='[Install]\nWantedBy=multi-user.target\n'):
    return '[Unit]\nDescription=test unit\n{0}\n[Service]\nExecStart={1}\n{2}\n{3}'.format(unit, exec_start, extra, install)


def test_verify_and_parser_problems_make_the_unit_bad_setting(host):
    host.unit('bad-key.service', service('/bin/sleep 100', 'Restart=always\nFooBar=1\n'))
    host.unit('bad-exe.service', service('/nonexistent/daemon --flag'))
    for name, reason in (('bad-key.service', "Unknown key 'FooBar'"), ('bad-exe.service', '/nonexistent/daemon is not executable')):
        started = host.systemctl('start', name, check=False)
        assert started.returncode == 1 and 'has a bad unit file setting' in started.stderr
        props = host.show(name)
        assert props['LoadState'] == 'bad-setting' and reason in props['LoadError'], props
        assert reason in host.systemctl('status', name, check=False).stdout


def restarted(props, first):
    return props if props['SubState'] == 'running' and props['MainPID'] not in ('0', str(first)) else None


def failed(props):
    return props if props['ActiveState'] == 'failed' else None


def test_restart_always_brings_a_killed_process_back(host):
    host.unit('phoenix.service', service('/bin/sleep 1000', 'Restart=always\nRestartSec=300ms\n'))
    host.systemctl('start', 'phoenix')
    first = int(host.show('phoenix')['MainPID'])
    killed = time.monotonic()
    os.kill(first, signal.SIGKILL)
    props = wait_until(lambda: restarted(host.show('phoenix'), first), 5, 'restart')
    assert time.monotonic() - killed >= 0.3
    assert props['NRestarts'] == '1' and props['ActiveState'] == 'active'
    host.systemctl('stop', 'phoenix')
    assert host.show('phoenix')['SubState'] == 'dead' and host.systemctl('is-active', 'phoenix', check=False).returncode == 3


def test_default_start_limit_stops_a_crash_loop(host):
    host.unit('crashloop.service', service('/bin/false', 'Restart=always\nRestartSec=20ms\n'))
    host.unit('tunnel.service', service('/bin/false', 'Restart=always\nRestartSec=20ms\n', 'StartLimitIntervalSec=0\n'))
    host.systemctl('start', 'crashloop', 'tunnel')
    props = wait_until(lambda: failed(host.show('crashloop')), 10, 'start limit')
    assert props['Result'] == 'start-limit-hit' and props['NRestarts'] == '5'
    wait_until(lambda: int(host.show('tunnel')['NRestarts']) >= 8, 10, 'tunnel restarts')
    assert host.show('tunnel')['Result'] != 'start-limit-hit'
    again = host.systemctl('start', 'crashloop', check=False)
    assert again.returncode == 1 and 'attempted too often' in again.stderr
    host.systemctl('reset-failed', 'crashloop')
    assert host.show('crashloop')['ActiveState'] == 'inactive'
    host.systemctl('stop', 'tunnel')


def timer_ticks(host, name, timer, count):
    """Start `name`.timer (the [Timer] lines given) for a oneshot that notes the time it runs; the first `count` times."""
    stamp = host.tmp / name
    host.unit(name + '.service', '[Service]\nType=oneshot\nExecStart=/bin/sh -c "date +%%s.%%N >> {0}"\n'.format(stamp))
    host.unit(name + '.timer', '[Timer]\n{0}\n[Install]\nWantedBy=timers.target\n'.format(timer))
    host.systemctl('start', name + '.timer')
    wait_until(lambda: stamp.exists() and len(stamp.read_text().split()) >= count, 10, '{0} elapses of {1}.timer'.format(count, name))
    listed = host.systemctl('list-timers').stdout
    host.systemctl('stop', name + '.timer')
    assert host.show(name + '.timer')['ActiveState'] == 'inactive'
    assert name + '.service' in listed
    return [float(t) for t in stamp.read_text().split()[:count]]


def test_timer_fires_a_oneshot_repeatedly(host):
    times = timer_ticks(host, 'tick', 'OnActiveSec=0\nOnUnitActiveSec=300ms', 3)
    assert all(b - a >= 0.25 for a, b in zip(times, times[1:])), times  # 300ms apart, less the jitter of starting `date`


def test_calendar_timer_fires_on_whole_seconds(host):
    first, second = timer_ticks(host, 'calendar', 'OnCalendar=*:*:0/1', 2)
    assert int(second) > int(first) and second - int(second) < 0.7, (first, second)  # on the second, plus the start-up of `date`


def test_execution_environment_user_and_output_to_the_log(host):
    (host.tmp / 'env').write_text('OPTS="-n  x"\n')
    host.unit('envtest.service', '\n'.join((
        '[Unit]', 'ConditionPathExists=!/nonexistent', '[Service]', 'Type=oneshot', 'RemainAfterExit=yes', 'User=_apt',
        'Environment="GREETING=hello world" UNIT=%n', 'EnvironmentFile=-/nonexistent/env', 'EnvironmentFile={0}/env'.format(host.tmp),
        'WorkingDirectory=/tmp', 'RuntimeDirectory=envtest',
        "ExecStart=/bin/sh -c 'echo \"$(id -un) $GREETING $UNIT $(pwd) $RUNTIME_DIRECTORY $HOME $(stat -c %%U $RUNTIME_DIRECTORY)\"'",
        'ExecStart=/bin/echo $OPTS [${OPTS}] $$OPTS', '')))
    host.unit('skipped.service', service('/bin/sleep 100', unit='ConditionPathExists=/nonexistent'))
    host.systemctl('start', 'envtest', 'skipped')
    log = host.log.read_text()
    assert re.search(r'envtest\.service\[\d+\]: _apt hello world envtest\.service /tmp /run/envtest /nonexistent _apt\n', log), log
    assert re.search(r'envtest\.service\[\d+\]: x \[-n  x\] \$OPTS\n', log), log
    assert host.show('envtest')['SubState'] == 'exited'
    skipped = host.show('skipped')
    assert (skipped['ActiveState'], skipped['ConditionResult'], skipped['MainPID']) == ('inactive', 'no', '0')
    host.systemctl('stop', 'envtest')
    assert not host.run('test', '-e', '/run/envtest', check=False).returncode == 0


def listening(pid, port):
    table = pathlib.Path('/proc/{0}/net/tcp'.format(pid)).read_text() + pathlib.Path('/proc/{0}/net/tcp6'.format(pid)).read_text()
    return any(re.match(r'\s*\d+: [0-9A-F]+:{0:04X} [0-9A-F]+:0000 0A'.format(port), line) for line in table.splitlines())


def test_debian_ssh_service_runs_as_notify_and_reloads_with_hup(host):
    enabled = host.systemctl('enable', 'ssh')
    assert 'Created symlink /etc/systemd/system/multi-user.target.wants/ssh.service → /lib/systemd/system/ssh.service.' in enabled.stderr
    assert os.readlink(host.units / 'sshd.service') == '/lib/systemd/system/ssh.service'
    host.systemctl('start', 'sshd')
    props = host.show('ssh')
    assert (props['Type'], props['SubState'], props['Id']) == ('notify', 'running', 'ssh.service')
    pid = int(props['MainPID'])
    wait_until(lambda: listening(pid, 22), 5, 'sshd on 22')
    with open(host.tmp / 'sshd_config', 'a', encoding='utf-8') as config:
        config.write('\nPort 2222\n')
    host.systemctl('reload', 'ssh')
    wait_until(lambda: listening(pid, 2222), 5, 'sshd re-executed on HUP')
    assert host.show('ssh')['MainPID'] == str(pid)
    host.systemctl('stop', 'ssh')
    wait_until(lambda: not os.path.exists('/proc/{0}'.format(pid)), 5, 'sshd gone')


def test_enable_disable_symlinks(host):
    host.unit('linked.service', service('/bin/sleep 100', install='[Install]\nWantedBy=multi-user.target\nAlias=other-name.service\n'))
    host.unit('static.service', service('/bin/sleep 100', install=''))
    assert host.systemctl('is-enabled', 'linked', check=False).stdout.strip() == 'disabled'
    enabled = host.systemctl('enable', 'linked.service')
    wants = host.units / 'multi-user.target.wants' / 'linked.service'
    assert os.readlink(wants) == '/etc/systemd/system/linked.service'
    assert os.readlink(host.units / 'other-name.service') == '/etc/systemd/system/linked.service'
    assert enabled.stderr == ('Created symlink /etc/systemd/system/other-name.service → /etc/systemd/system/linked.service.\n'
                              'Created symlink /etc/systemd/system/multi-user.target.wants/linked.service → /etc/systemd/system/linked.service.\n')
    assert 'not meant to be enabled using systemctl' in host.systemctl('enable', 'static').stderr
    missing = host.systemctl('enable', 'no-such-unit', check=False)
    assert (missing.returncode, missing.stderr) == (1, 'Failed to enable unit, unit no-such-unit.service does not exist.\n')
    assert host.systemctl('is-enabled', 'linked').stdout.strip() == 'enabled'
    assert host.systemctl('is-enabled', 'other-name.service').stdout.strip() == 'alias'
    assert host.systemctl('is-enabled', 'static').stdout.strip() == 'static'
    disabled = host.systemctl('disable', 'linked')
    assert 'Removed "/etc/systemd/system/multi-user.target.wants/linked.service".' in disabled.stderr
    assert not os.path.lexists(wants) and not os.path.lexists(host.units / 'other-name.service')
    assert host.systemctl('is-enabled', 'linked', check=False).returncode == 1
    assert host.systemctl('status', 'no-such-unit', check=False).returncode == 4
    assert host.systemctl('is-active', 'no-such-unit', check=False).returncode == 4


def test_a_removed_unit_leaves_the_unit_list_once_stopped_and_reloaded(host):
    """systemd forgets a dead unit without a file when nothing references it; a list that kept it would show the
    role's removed tunnels for ever."""
    host.unit('going.service', service('/bin/sleep 100'))
    host.systemctl('start', 'going')
    listed = host.systemctl('list-units', '--all', '--plain', '--no-legend', 'going.service').stdout
    assert listed.split()[:4] == ['going.service', 'loaded', 'active', 'running']
    host.systemctl('stop', 'going')
    (host.units / 'going.service').unlink()
    host.systemctl('daemon-reload')
    assert host.systemctl('list-units', '--all', '--plain', '--no-legend', 'going.service').stdout.strip() == ''
    assert host.show('going.service')['LoadState'] == 'not-found'


def ansible(host, module, args, *extra):
    """One ad-hoc run of a real Ansible module against the sandbox (connection local): its result."""
    tree = host.tmp / 'tree'
    shutil.rmtree(tree, ignore_errors=True)
    host.run(str(ANSIBLE), 'localhost', '-c', 'local', '-i', 'localhost,', '-e', 'ansible_python_interpreter=' + sys.executable,
             '--tree', str(tree), '-m', module, '-a', args, *extra, check=False)
    return json.loads((tree / 'localhost').read_text())


def test_ansible_systemd_service_module(host):
    host.unit('app.service', service('/bin/sleep 1000'))
    args = 'name=app state=started enabled=true daemon_reload=true'
    checked = ansible(host, 'ansible.builtin.systemd_service', args, '--check')
    assert checked['changed'] and 'msg' not in checked, checked
    assert host.show('app')['ActiveState'] == 'inactive' and not (host.units / 'multi-user.target.wants/app.service').exists()
    first = ansible(host, 'ansible.builtin.systemd_service', args)
    assert first['changed'] and 'msg' not in first, first
    assert host.show('app')['ActiveState'] == 'active' and host.systemctl('is-enabled', 'app').stdout.strip() == 'enabled'
    second = ansible(host, 'ansible.builtin.systemd_service', args)
    assert not second['changed'] and 'msg' not in second, second
    pid = host.show('app')['MainPID']
    restarted = ansible(host, 'ansible.builtin.service', 'name=app state=restarted')
    assert restarted['changed'] and host.show('app')['MainPID'] not in (pid, '0'), restarted
    facts = ansible(host, 'ansible.builtin.service_facts', '')
    assert facts['ansible_facts']['services']['app.service']['state'] == 'running', facts['ansible_facts']['services']
    refused = host.systemctl('mask', 'app', check=False)
    assert (refused.returncode, refused.stderr) == (1, 'Failed to mask unit, file "/etc/systemd/system/app.service" already exists.\n')
    host.run('sh', '-c', 'printf "[Service]\\nExecStart=/bin/sleep 1000\\n" > /run/systemd/system/runtime.service')
    masked = ansible(host, 'ansible.builtin.systemd_service', 'name=runtime masked=true')
    assert masked['changed'] and host.show('runtime')['LoadState'] == 'masked', masked
    assert host.systemctl('start', 'runtime', check=False).stderr.strip() == 'Failed to start runtime.service: Unit runtime.service is masked.'
    bad = ansible(host, 'ansible.builtin.systemd_service', 'name=bad-key state=started')
    assert not bad['changed'] and "Unknown key 'FooBar'" in bad['msg'], bad


def test_stopping_the_manager_stops_everything(tmp_path):
    sandbox = Sandbox(tmp_path)
    sandbox.unit('forker.service', service('/bin/sh -c "sleep 1000 & exec sleep 1001"'))
    sandbox.unit('stubborn.service', service('/bin/sh -c "trap \'\' TERM; sleep 1000"',
                                             'TimeoutStopSec=1s\nKillMode=mixed\n'))
    sandbox.unit('pre.service', service('/bin/sleep 1000', 'ExecStop=/bin/sh -c "echo stopping > {0}/stopped"'.format(tmp_path)))
    sandbox.unit('leaver.service', service('/bin/sh -c "sleep 1000 & exec sleep 1001"', 'KillMode=process\n'))
    sandbox.systemctl('start', 'forker', 'stubborn', 'pre', 'leaver')
    sessions = {int(sandbox.show(u)['MainPID']) for u in ('forker', 'stubborn', 'pre', 'leaver')}
    wait_until(lambda: len(members(sessions)) == 7, 5, 'unit processes')
    sandbox.systemctl('stop', 'leaver')
    assert len(members(sessions)) == 6, 'KillMode=process leaves the main process\'s children running'

    assert sandbox.stop() == 0
    assert not members(sessions), members(sessions)
    assert (tmp_path / 'stopped').read_text() == 'stopping\n'
    assert not crashes(tmp_path), crashes(tmp_path)


def members(sessions):
    """Live processes in the given sessions."""
    found = []
    for entry in os.listdir('/proc'):
        try:
            fields = pathlib.Path('/proc/{0}/stat'.format(entry)).read_text().rpartition(')')[2].split()
        except (OSError, ValueError):
            continue
        if entry.isdigit() and fields[0] != 'Z' and int(fields[3]) in sessions:
            found.append(int(entry))
    return found
