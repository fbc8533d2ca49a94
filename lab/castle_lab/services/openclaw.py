"""The OpenClaw gateway node: the lab's own sshd on loopback, key auth only, a dedicated user
whose PATH has Node.js and the real openclaw CLI; on request also a real OpenClaw gateway run as that user."""

import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import urllib.request

from .. import process
from ..process import LabError, ProcessGone
from .base import Service

SSHD = '/usr/sbin/sshd'
SETPRIV = '/usr/bin/setpriv'
LAB_TOOLS = ('node', 'openclaw', 'kubectl')
GATEWAY = 'gateway'


def run(argv, timeout=30):
    try:
        return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout).stdout
    except FileNotFoundError as exc:
        raise LabError('{0} is not installed (make setup installs it)'.format(argv[0])) from exc
    except subprocess.CalledProcessError as exc:
        lines = (exc.stderr or exc.stdout or '').strip().splitlines()
        raise LabError('{0} exited {1}: {2}'.format(os.path.basename(argv[0]), exc.returncode,
                                                     lines[-1] if lines else 'no output')) from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError('{0}: no answer in {1}s'.format(os.path.basename(argv[0]), timeout)) from exc


class OpenClawService(Service):
    name = 'openclaw'
    host = 4
    port = 2222
    # The gateway's cold start (plugins, sqlite, sidecars) takes 15-40 s on a busy machine.
    gateway_ready_timeout = 180.0

    @property
    def user(self):
        return self.cfg.openclaw_user

    @property
    def home(self):
        return self.dir / 'home'

    @property
    def client_key(self):
        return self.dir / 'id_ed25519'

    @property
    def known_hosts(self):
        return self.dir / 'known_hosts'

    @property
    def gateway_port(self):
        """The gateway's port, one per lab network: it also listens on 127.0.0.1, which every lab shares."""
        second, third = (int(octet) for octet in self.cfg.net.split('.')[1:])
        return 20000 + (second * 256 + third) % 40000

    @property
    def gateway_address(self):
        return '127.0.0.1'

    @property
    def gateway_token_file(self):
        return self.dir / 'gateway-token'

    @property
    def gateway_log(self):
        return self.dir / (GATEWAY + '.log')

    def _gateway_token(self):
        if not self.gateway_token_file.exists():
            self.gateway_token_file.touch(mode=0o600)
            self.gateway_token_file.write_text(secrets.token_hex(24))
        return self.gateway_token_file.read_text().strip()

    def prepare(self):
        if not os.access(SSHD, os.X_OK):
            raise LabError('{0} is missing: install openssh-server (make setup does)'.format(SSHD))
        self._ensure_user()
        host_key = self.dir / 'ssh_host_ed25519_key'
        for key, comment in ((host_key, 'castle-lab-openclaw-host'), (self.client_key, 'castle-lab-operator')):
            if not key.exists():
                run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', str(key)])
        self.known_hosts.write_text('[{0}]:{1} {2}'.format(
            self.address, self.port, (self.dir / 'ssh_host_ed25519_key.pub').read_text()))
        self._prepare_home()
        bindir = self.home / 'bin'
        (self.dir / 'sshd_config').write_text('\n'.join([
            'ListenAddress {0}:{1}'.format(self.address, self.port),
            'HostKey {0}'.format(host_key),
            'PidFile none',
            'AllowUsers {0}'.format(self.user),
            'AuthenticationMethods publickey',
            'PubkeyAuthentication yes',
            'PasswordAuthentication no',
            'KbdInteractiveAuthentication no',
            'PermitRootLogin no',
            'UsePAM no',
            'PrintMotd no',
            'X11Forwarding no',
            # The node reaches no package registry: npm says so at once instead of waiting for a timeout
            # whenever the CLI looks a plugin up. The CLI finds the node's gateway (when it runs) through
            # OPENCLAW_GATEWAY_PORT and authenticates with OPENCLAW_GATEWAY_TOKEN.
            'SetEnv PATH={0}:/usr/local/bin:/usr/bin:/bin npm_config_offline=true OPENCLAW_GATEWAY_PORT={1} '
            'OPENCLAW_GATEWAY_TOKEN={2}'.format(bindir, self.gateway_port, self._gateway_token()),
            'Subsystem sftp internal-sftp',
            '']))
        (self.dir / 'sshd_config').chmod(0o600)
        os.makedirs('/run/sshd', mode=0o755, exist_ok=True)

    def _ensure_user(self):
        try:
            entry = pwd.getpwnam(self.user)
        except KeyError:
            run(['useradd', '--system', '--no-create-home', '--home-dir', str(self.home),
                 '--shell', '/bin/bash', self.user])
            entry = pwd.getpwnam(self.user)
        if entry.pw_dir != str(self.home):
            # The user served another lab; sessions left from there (an SSH ControlPersist) would block usermod.
            self._end_sessions(entry.pw_uid)
            run(['usermod', '--home', str(self.home), self.user])
        # A locked password ('!') makes sshd refuse even key logins when PAM is off; '*' only forbids passwords.
        run(['usermod', '--password', '*', self.user])

    @staticmethod
    def _end_sessions(uid):
        """End every process of the node's user: SSH sessions outlive sshd's listener (clients keep them open)."""
        for entry in os.listdir('/proc'):
            if not entry.isdigit():
                continue
            try:
                if os.stat('/proc/' + entry).st_uid == uid:
                    os.kill(int(entry), signal.SIGTERM)
            except OSError:
                continue
        process.wait_until(lambda: not any(
            e.isdigit() and _owner(e) == uid and process.alive(int(e)) for e in os.listdir('/proc')),
            10, 'the node user\'s sessions to end')

    def start(self):
        super().start()
        if self.cfg.openclaw_gateway:
            self._start_gateway()

    def _start_gateway(self):
        """`openclaw gateway run` in the foreground as the node's user, on the node's state directory
        (~/.openclaw, the one its CLI and Ansible use), bound to loopback on the lab's own port. Its settings
        come from flags and the environment, so whatever a test writes to openclaw.json leaves them alone."""
        entry = pwd.getpwnam(self.user)
        with socket.socket() as sock:
            if sock.connect_ex((self.gateway_address, self.gateway_port)) == 0:
                raise LabError('openclaw gateway: {0}:{1} is already taken by a process the lab did not start'.format(
                    self.gateway_address, self.gateway_port))
        env = {'HOME': str(self.home), 'USER': self.user, 'LOGNAME': self.user, 'LANG': 'C.UTF-8',
               'PATH': '{0}:/usr/local/bin:/usr/bin:/bin'.format(self.home / 'bin'), 'npm_config_offline': 'true',
               'OPENCLAW_GATEWAY_TOKEN': self._gateway_token(),
               # Restarts (SIGUSR2, `openclaw gateway restart`) stay in this process, the one the lab records.
               'OPENCLAW_NO_RESPAWN': '1'}
        argv = [SETPRIV, '--reuid={0}'.format(entry.pw_uid), '--regid={0}'.format(entry.pw_gid), '--init-groups',
                '--', str(self.home / 'bin' / 'openclaw'), 'gateway', 'run', '--allow-unconfigured',
                '--bind', 'loopback', '--port', str(self.gateway_port), '--auth', 'token']
        process.spawn(self.dir, GATEWAY, argv, env=env, cwd=self.home)

    def gateway_started(self):
        return (self.dir / (GATEWAY + '.pid')).exists()

    def ready(self):
        super().ready()
        if self.gateway_started():
            process.wait_until(self._gateway_answers, self.gateway_ready_timeout, 'openclaw gateway')

    def _gateway_answers(self):
        if process.recorded(self.dir, GATEWAY) is None:
            raise ProcessGone('openclaw gateway: process exited; see {0}'.format(self.gateway_log))
        return self.gateway_ready()

    def gateway_ready(self):
        """The gateway's own readiness probe (/readyz): true once it serves with every startup sidecar up."""
        url = 'http://{0}:{1}/readyz'.format(self.gateway_address, self.gateway_port)
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return json.load(answer).get('ready') is True
        except OSError as exc:
            raise LabError('openclaw gateway: {0}: {1}'.format(url, exc)) from exc

    def stop(self):
        process.stop(self.dir, GATEWAY)
        pid = super().stop()
        try:
            self._end_sessions(pwd.getpwnam(self.user).pw_uid)
        except KeyError:
            pass
        return pid

    def _prepare_home(self):
        entry = pwd.getpwnam(self.user)
        ssh = self.home / '.ssh'
        bindir = self.home / 'bin'
        for directory, mode in ((self.home, 0o755), (ssh, 0o700), (bindir, 0o755)):
            directory.mkdir(exist_ok=True)
            directory.chmod(mode)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        keys = ssh / 'authorized_keys'
        keys.write_text((self.dir / 'id_ed25519.pub').read_text())
        keys.chmod(0o600)
        os.chown(keys, entry.pw_uid, entry.pw_gid)
        for tool in LAB_TOOLS:
            source = self.cfg.tools / 'bin' / tool
            if tool in ('node', 'openclaw') and not source.exists():
                raise LabError('{0} is missing under {1} (make setup installs it)'.format(tool, source.parent))
            link = bindir / tool
            if source.exists() and (not link.is_symlink() or os.readlink(link) != str(source)):
                link.unlink(missing_ok=True)
                link.symlink_to(source)

    def command(self):
        return [SSHD, '-D', '-e', '-f', str(self.dir / 'sshd_config')]

    def ssh_argv(self, *remote):
        return ['ssh', '-i', str(self.client_key), '-p', str(self.port), '-o', 'BatchMode=yes',
                '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=yes',
                '-o', 'UserKnownHostsFile={0}'.format(self.known_hosts), '-o', 'ConnectTimeout=5',
                '{0}@{1}'.format(self.user, self.address), *remote]

    def answers(self):
        run(self.ssh_argv('true'), timeout=10)
        return True

    def check(self):
        version = run(self.ssh_argv('openclaw', '--version'), timeout=30).strip()
        if not version.startswith('OpenClaw '):
            raise LabError('openclaw --version answered {0!r}'.format(version))
        if self.cfg.openclaw_gateway and not self.gateway_started():
            raise LabError('the gateway was asked for (CASTLE_LAB_OPENCLAW_GATEWAY) but is not running')
        if self.gateway_started():
            if process.recorded(self.dir, GATEWAY) is None:
                raise LabError('openclaw gateway: process exited; see {0}'.format(self.gateway_log))
            if not self.gateway_ready():
                raise LabError('openclaw gateway on {0}:{1} is not ready'.format(self.gateway_address, self.gateway_port))
            return '{0}, gateway ready on {1}:{2}'.format(version, self.gateway_address, self.gateway_port)
        return version

    def files(self):
        return dict(super().files(), client_key=self.client_key, known_hosts=self.known_hosts,
                    gateway_pid=self.dir / (GATEWAY + '.pid'), gateway_log=self.gateway_log)

    def env(self):
        values = {'CASTLE_OPENCLAW_HOST': self.address, 'CASTLE_OPENCLAW_PORT': str(self.port),
                  'CASTLE_OPENCLAW_USER': self.user, 'CASTLE_OPENCLAW_KEY': str(self.client_key),
                  'CASTLE_OPENCLAW_KNOWN_HOSTS': str(self.known_hosts)}
        if self.gateway_started():
            values.update(CASTLE_OPENCLAW_GATEWAY_URL='ws://{0}:{1}'.format(self.gateway_address, self.gateway_port),
                          CASTLE_OPENCLAW_GATEWAY_LOG=str(self.gateway_log))
        return values


def _owner(pid):
    try:
        return os.stat('/proc/' + pid).st_uid
    except OSError:
        return None
