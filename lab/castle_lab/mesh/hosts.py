"""The mesh's fleet machines on this one machine: each host a network, mount and UTS namespace of its own, booted
by the lab's service manager as its init; one supervisor process owns the bridge, a TCP forwarder to the lab's
vault and the control API that powers hosts off and on.

    python -m castle_lab.mesh.hosts --state DIR --net NET --vault ADDR:PORT --listen ADDR:PORT   the supervisor
    python -m castle_lab.mesh.hosts --state DIR --net NET --boot NAME       a host's first process, in its namespaces
"""

import argparse
import asyncio
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from aiohttp import web

from ..process import LabError
from ..serving import loopback_only, stop_event
from .systemctl import shim_script
from .topology import BY_NAME, HOSTS, VAULT_PORT, Mesh

# The directories each host writes to an overlay of its own (the machine's own files stay the lower layer).
OVERLAID = ('etc', 'var', 'root', 'home', 'usr/local', 'opt')
# Targets whose enabled units the host's init boots: the host starts with only the lab's, not the machine's.
OWN_TARGETS = ('multi-user.target.wants', 'timers.target.wants')
SYSTEMCTL = '/usr/bin/systemctl'


def host_dir(state, name):
    return pathlib.Path(state) / 'hosts' / name


def ip(*args, check=True):
    done = subprocess.run(['ip', *args], check=False, capture_output=True, text=True)
    if check and done.returncode:
        raise LabError('mesh: ip {0}: {1}'.format(' '.join(args), done.stderr.strip()))
    return done.stdout


def netns_pids(netns):
    return [int(pid) for pid in ip('netns', 'pids', netns, check=False).split()]


def kill_host(netns, timeout=10.0):
    """Kill every process in the host's network namespace until none is left (a power cut)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = netns_pids(netns)
        if not pids:
            return
        if time.monotonic() > deadline:
            raise LabError('mesh: {0}: processes {1} outlived SIGKILL'.format(netns, pids))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)


def cleanup(mesh):
    """Remove every namespace and link of this lab's mesh, whatever state a crash left them in (idempotent).
    A host's mounts live in its own mount namespace: they go with its last process."""
    existing = ip('netns', 'list', check=False).split()
    for host in HOSTS:
        netns = mesh.netns(host.name)
        if netns in existing:
            kill_host(netns)
            ip('netns', 'delete', netns, check=False)
        ip('link', 'delete', mesh.veth(host.name), check=False)
    ip('link', 'delete', mesh.bridge, check=False)


def wire(mesh):
    """The bridge at the mesh's gateway address and each host's namespace linked to it."""
    ip('link', 'add', mesh.bridge, 'type', 'bridge')
    ip('address', 'add', mesh.gateway + '/24', 'dev', mesh.bridge)
    ip('link', 'set', mesh.bridge, 'up')
    for host in HOSTS:
        netns, veth = mesh.netns(host.name), mesh.veth(host.name)
        ip('netns', 'add', netns)
        ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', veth + 'p')
        ip('link', 'set', veth + 'p', 'netns', netns)
        ip('-n', netns, 'link', 'set', veth + 'p', 'name', 'eth0')
        ip('-n', netns, 'address', 'add', mesh.address(host.name) + '/24', 'dev', 'eth0')
        ip('-n', netns, 'link', 'set', 'lo', 'up')
        ip('-n', netns, 'link', 'set', 'eth0', 'up')
        ip('-n', netns, 'route', 'add', 'default', 'via', mesh.gateway)
        ip('link', 'set', veth, 'master', mesh.bridge)


# Inside a host (`boot`): its filesystem, its files, then the service manager.

def _mount(*args):
    subprocess.run(['mount', *args], check=True)


def _overlay(state, name):
    for path in OVERLAID:
        base = host_dir(state, name) / path.replace('/', '-')
        upper, work = base / 'upper', base / 'work'
        first = not upper.exists()
        for directory in (upper, work):
            directory.mkdir(parents=True, exist_ok=True)
        lower = os.stat('/' + path)
        os.chmod(upper, lower.st_mode & 0o7777)  # the overlay's root takes the upper directory's mode
        if first and path == 'etc':
            for target in OWN_TARGETS:
                wants = upper / 'systemd' / 'system' / target
                wants.mkdir(parents=True)
                os.setxattr(wants, 'trusted.overlay.opaque', b'y')
        _mount('-t', 'overlay', 'overlay', '-o', 'lowerdir=/{0},upperdir={1},workdir={2}'.format(path, upper, work),
               '/' + path)
    _mount('-t', 'tmpfs', '-o', 'mode=0755,nosuid,nodev', 'tmpfs', '/run')
    # The machine's own distribution units (dbus, logind, apt's timers) are not the host's: it boots what its /etc
    # enables, and nothing its /lib would add.
    for target in OWN_TARGETS:
        wants = '/lib/systemd/system/' + target
        if os.path.isdir(wants):
            _mount('-t', 'tmpfs', '-o', 'mode=0755,ro', 'tmpfs', wants)


def _write(path, text, mode=0o644):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding='utf-8')
    path.chmod(mode)


def endpoint_unit(python, workload, port):
    return ('[Unit]\nDescription=castle-lab endpoint {0}\nAfter=network.target\n\n'
            '[Service]\nType=simple\nExecStart={1} -m castle_lab.mesh.endpoint --workload {0} --port {2}\n'
            'Restart=always\nRestartSec=1\n\n[Install]\nWantedBy=multi-user.target\n').format(workload, python, port)


def sshd_config(address):
    return ('# Written by castle-lab for this mesh host; included first by /etc/ssh/sshd_config.\n'
            'ListenAddress {0}\nHostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\n'
            'PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n').format(address)


def _install(state, mesh, name, python):
    """The host's own files, written through its overlays on every boot."""
    own = host_dir(state, name)
    _write('/etc/hostname', name + '\n')
    _write('/etc/hosts', mesh.hosts_file(name))
    for suffix, mode in (('', 0o600), ('.pub', 0o644)):
        shutil.copyfile(own / ('ssh_host_ed25519_key' + suffix), '/etc/ssh/ssh_host_ed25519_key' + suffix)
        os.chmod('/etc/ssh/ssh_host_ed25519_key' + suffix, mode)
    _write('/etc/ssh/sshd_config.d/00-castle-lab.conf', sshd_config(mesh.address(name)))
    # With UsePAM no, sshd refuses even key logins to a locked account ('!'); '*' only forbids passwords.
    subprocess.run(['usermod', '--password', '*', 'root'], check=True)
    os.makedirs('/root/.ssh', mode=0o700, exist_ok=True)
    _write('/root/.ssh/authorized_keys', (pathlib.Path(state) / 'id_ed25519.pub').read_text(), 0o600)
    units = pathlib.Path('/etc/systemd/system')
    wanted = {'ssh.service': '/lib/systemd/system/ssh.service'}
    for workload, port in BY_NAME[name].endpoints:
        unit = 'castle-lab-endpoint-{0}.service'.format(workload)
        _write(units / unit, endpoint_unit(python, workload, port))
        wanted[unit] = str(units / unit)
    for unit, target in wanted.items():
        link = units / 'multi-user.target.wants' / unit
        if not link.is_symlink():
            link.symlink_to(target)
    _write('/run/castle-lab/systemctl', shim_script(python), 0o755)
    _mount('--bind', '/run/castle-lab/systemctl', SYSTEMCTL)


def boot(state, net, name, python):
    """Run inside the host's fresh namespaces: mount its filesystem, write its files, exec its init."""
    mesh = Mesh(net)
    _overlay(state, name)
    socket.sethostname(name)
    _install(state, mesh, name, python)
    log = host_dir(state, name) / 'units.log'
    os.execv(python, [python, '-m', 'castle_lab.mesh.units', '--log', str(log)])


# The supervisor.

class Fleet:
    """The hosts' power: each host's init process, started and killed on request."""

    def __init__(self, state, mesh):
        self.state, self.mesh = pathlib.Path(state), mesh
        self.inits = {}
        self.lock = threading.Lock()

    def power_on(self, name):
        """Boot the host unless its init runs; what a dead init left behind goes first."""
        with self.lock:
            if name in self.inits and self.inits[name].poll() is None:
                return
            kill_host(self.mesh.netns(name))
            own = host_dir(self.state, name)
            ip('link', 'set', self.mesh.veth(name), 'up')
            argv = ['ip', 'netns', 'exec', self.mesh.netns(name), 'unshare', '--mount', '--uts',
                    '--propagation', 'private', sys.executable, '-m', 'castle_lab.mesh.hosts', '--state', str(self.state),
                    '--net', self.mesh.net, '--boot', name]
            with open(own / 'console.log', 'ab') as console:
                self.inits[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console,
                                                    stderr=subprocess.STDOUT, start_new_session=True, cwd='/')

    def power_off(self, name):
        """Cut the host's link, then kill every process it runs; its disk (the overlays' upper dirs) stays."""
        with self.lock:
            ip('link', 'set', self.mesh.veth(name), 'down')
            kill_host(self.mesh.netns(name))
            init = self.inits.pop(name, None)
            if init:
                init.wait()

    def describe(self, name):
        init = self.inits.get(name)
        return {'name': name, 'address': self.mesh.address(name), 'role': BY_NAME[name].role,
                'netns': self.mesh.netns(name), 'power': 'on' if init else 'off',
                'init_pid': init.pid if init and init.poll() is None else None}


def control_app(fleet):
    async def hosts(_request):
        return web.json_response({'hosts': [fleet.describe(host.name) for host in HOSTS]})

    async def power(request):
        name = request.match_info['name']
        if name not in BY_NAME:
            return web.json_response({'error': 'no host {0!r}; hosts: {1}'.format(name, ', '.join(BY_NAME))},
                                     status=404)
        try:
            state = (await request.json()).get('state')
        except (ValueError, AttributeError):
            state = None
        if state not in ('on', 'off'):
            return web.json_response({'error': 'the body must be {"state": "on"} or {"state": "off"}'}, status=400)
        try:
            await asyncio.to_thread(fleet.power_on if state == 'on' else fleet.power_off, name)
        except LabError as exc:
            return web.json_response({'error': str(exc)}, status=500)
        return web.json_response(fleet.describe(name))

    app = web.Application(middlewares=[loopback_only])
    app.router.add_get('/hosts', hosts)
    app.router.add_post('/hosts/{name}/power', power)
    return app


async def _pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


def forwarder(target_host, target_port):
    async def forward(reader, writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
    return forward


async def supervise(args):
    mesh = Mesh(args.net)
    fleet = Fleet(args.state, mesh)
    await asyncio.to_thread(cleanup, mesh)
    try:
        await asyncio.to_thread(wire, mesh)
        vault_host, vault_port = args.vault.rsplit(':', 1)
        server = await asyncio.start_server(forwarder(vault_host, int(vault_port)), mesh.gateway, VAULT_PORT)
        runner = web.AppRunner(control_app(fleet), access_log=None)
        await runner.setup()
        listen_host, listen_port = args.listen.rsplit(':', 1)
        await web.TCPSite(runner, listen_host, int(listen_port)).start()
        for host in HOSTS:
            await asyncio.to_thread(fleet.power_on, host.name)
        stopping = stop_event()
        print('mesh: {0} hosts on {1}0/24, control on http://{2}'.format(len(HOSTS), mesh.prefix, args.listen),
              flush=True)
        await stopping.wait()
        server.close()
        await runner.cleanup()
    finally:
        await asyncio.to_thread(cleanup, mesh)
        for init in fleet.inits.values():
            init.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--state', required=True)
    parser.add_argument('--net', required=True)
    parser.add_argument('--boot', choices=sorted(BY_NAME), help='boot this host (run in its namespaces)')
    parser.add_argument('--vault', help="the lab vault's address:port, forwarded from the gateway's")
    parser.add_argument('--listen', help="the control API's address:port")
    args = parser.parse_args(argv)
    try:
        if args.boot:
            boot(args.state, args.net, args.boot, sys.executable)
        else:
            asyncio.run(supervise(args))
    except (LabError, OSError, subprocess.CalledProcessError) as exc:
        print('mesh: {0}'.format(exc), file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
