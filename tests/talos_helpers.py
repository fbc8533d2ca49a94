"""Talos machines in the lab's Proxmox VE: VMs cloned from the Talos template booting the Talos ISO."""

import contextlib
import subprocess
import uuid

import pytest

from castle_lab.talos.factory import default_iso
from kube_helpers import wait_for
from proxmoxer import ResourceException

from conftest import VENV_BIN, remove_named

# The Image Factory ISO of the lab's default extensions: its nodes run the guest agent, which reports addresses.
ISO = 'local:iso/{0},media=cdrom'.format(default_iso()[0])
# The stock Talos ISO: no system extensions, so no guest agent.
STOCK_ISO = 'local:iso/talos-v1.11.6-metal-amd64.iso,media=cdrom'
DEADLINE = 30.0


def until(check, what):
    """check()'s first true result within the Talos deadline."""
    return wait_for(check, what, timeout=DEADLINE)


def agent_address(pve, vmid):
    """The VM's NIC's IPv4 address as its guest agent reports it (Talos names it ens18), or None while it has none."""
    try:
        interfaces = pve.nodes('pve1').qemu(vmid).agent('network-get-interfaces').get()['result']
    except ResourceException:  # the agent is not running (yet)
        return None
    return next((ip['ip-address'] for iface in interfaces if iface['name'] == 'ens18'
                 for ip in iface['ip-addresses'] if ip['ip-address-type'] == 'ipv4'), None)


@contextlib.contextmanager
def talos_vms(pve, label, roles=('cp', 'worker')):
    """One running VM per role, booting Talos: {'addresses': {role: address}, 'vmids': {role: vmid}}.

    The VMs are destroyed on leaving."""
    prefix = '{0}-{1}'.format(label, uuid.uuid4().hex[:6])
    names = {role: '{0}-{1}'.format(prefix, role) for role in roles}
    vmids = {}
    try:
        for role, vm_name in names.items():
            vmid = int(pve.cluster.nextid.get())
            pve.nodes('pve1').qemu(9000).clone.post(newid=vmid, name=vm_name, full=1)
            pve.nodes('pve1').qemu(vmid).config.post(ide2=ISO, boot='order=scsi0;ide2')
            pve.nodes('pve1').qemu(vmid).status.start.post()
            vmids[role] = vmid
        addresses = {role: until(lambda v=vmid: agent_address(pve, v), 'the agent of VM {0}'.format(vmid))
                     for role, vmid in vmids.items()}
        yield {'addresses': addresses, 'vmids': vmids}
    finally:
        remove_named(pve, *names.values())


class Talos:
    """talosctl run in a working directory with its TALOSCONFIG."""

    def __init__(self, env, workdir):
        self.env = dict(env, TALOSCONFIG=str(workdir / 'talosconfig'), HOME=str(workdir),
                        PATH='{0}:{1}'.format(VENV_BIN, env['PATH']))
        self.workdir = workdir

    def __call__(self, *args, expect=0):
        result = subprocess.run(['talosctl', *args], env=self.env, cwd=self.workdir, capture_output=True, text=True,
                                timeout=120, check=False)
        if expect is not None and result.returncode != expect:
            pytest.fail('talosctl {0} exited {1}\nstdout:\n{2}\nstderr:\n{3}'.format(
                ' '.join(args), result.returncode, result.stdout, result.stderr))
        return result

    def kubectl(self, *args):
        return subprocess.run(['kubectl', '--kubeconfig', str(self.workdir / 'kubeconfig'), *args], env=self.env,
                              capture_output=True, text=True, timeout=60, check=False)
