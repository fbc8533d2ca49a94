"""VMID allocation and the retry policy of the Proxmox client."""

import pytest
import requests
from proxmoxer import ResourceException

from ansible_collections.ephemeral.castle.plugins.module_utils import proxmox


class NextIds(object):
    """Hands out VMIDs the way /cluster/nextid does, and records them."""

    def __init__(self, *ids):
        self.ids = list(ids)
        self.asked = []

    def next_vmid(self):
        self.asked.append(self.ids.pop(0))
        return self.asked[-1]


def test_a_vmid_taken_meanwhile_is_allocated_again():
    client = NextIds(100, 100, 101)
    taken = {100}

    def create(vmid):
        if vmid in taken:
            raise proxmox.ProxmoxError('POST nodes/pve1/qemu: 500 unable to create VM {0}: config file already '
                                       'exists'.format(vmid))
        taken.add(vmid)
        return 'UPID:{0}'.format(vmid)

    assert proxmox.allocate_vmid(client, create) == (101, 'UPID:101')
    assert client.asked == [100, 100, 101]


def test_other_create_errors_are_not_retried():
    client = NextIds(100, 101)

    def create(vmid):
        raise proxmox.ProxmoxError("storage 'nosuch' does not exist")

    with pytest.raises(proxmox.ProxmoxError, match='nosuch'):
        proxmox.allocate_vmid(client, create)
    assert client.asked == [100]


def test_allocation_gives_up_after_its_attempts():
    client = NextIds(*range(100, 110))

    def create(vmid):
        raise proxmox.ProxmoxError('VM {0} already exists'.format(vmid))

    with pytest.raises(proxmox.ProxmoxError, match='already exists'):
        proxmox.allocate_vmid(client, create, attempts=3)
    assert client.asked == [100, 101, 102]


@pytest.mark.parametrize('exc, method, retry', [
    (ResourceException(500, 'Internal Server Error', "can't lock file '/var/lock/qemu-server/lock-100.conf' - "
                       'got timeout'), 'put', True),
    (ResourceException(503, 'Service Unavailable', ''), 'get', True),
    (ResourceException(595, 'Errors during connection establishment', ''), 'get', True),
    (ResourceException(501, 'Not Implemented', ''), 'get', False),
    (ResourceException(400, 'Parameter verification failed', ''), 'post', False),
    (ResourceException(401, 'authentication failure', ''), 'get', False),
    (requests.ConnectTimeout(), 'post', True),
    (requests.ConnectionError(), 'get', True),
    (requests.ConnectionError(), 'post', False),
    (requests.ReadTimeout(), 'post', False),
    (ValueError('bug'), 'get', False),
])
def test_only_transient_failures_are_retried(exc, method, retry):
    assert proxmox.is_retryable(exc, method) is retry


def test_token_id_may_carry_its_user():
    assert proxmox._split_token_id('root@pam!castle', None) == ('root@pam', 'castle')
    assert proxmox._split_token_id('castle', 'root@pam') == ('root@pam', 'castle')
    with pytest.raises(proxmox.ProxmoxError, match='belongs to root@pam, not api_user ops@pve'):
        proxmox._split_token_id('root@pam!castle', 'ops@pve')
