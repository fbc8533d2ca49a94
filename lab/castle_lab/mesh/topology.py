"""The fleet machines of a lab's mesh: their names, roles, addresses and endpoints, and the names of the kernel
objects (network namespaces, links) each lab's mesh uses."""

from dataclasses import dataclass

VAULT_NAME = 'vault.lab.castle.internal'
VAULT_PORT = 8200
CONTROL_HOST = 8  # the control API's address in the lab's loopback /24
CONTROL_PORT = 9100
DEFAULT_PREFIX = '10.200.10.'  # the default lab's (127.0.10) mesh, as files written for it name it


@dataclass(frozen=True)
class Host:
    name: str
    role: str
    index: int  # last octet of its address
    endpoints: tuple  # (workload, port) pairs served on the host's 127.0.0.1


HOSTS = (
    Host('railiance00', 'frozen', 10, (('archive', 8090),)),
    Host('railiance01', 'production', 11, (('gateway', 18789), ('pve-ui', 8006))),
    Host('railiance02', 'production', 12, (('blog', 8080), ('keycloak', 8081))),
    Host('workstation', 'workstation', 20, (('reports', 9090),)),
)
BY_NAME = {host.name: host for host in HOSTS}


@dataclass(frozen=True)
class Mesh:
    """One lab's mesh, derived from its loopback network (CASTLE_LAB_NET)."""

    net: str

    @property
    def octets(self):
        """The mesh's second and third octets: 10.{200 + second octet of the lab net % 50}.{third octet}."""
        second, third = (int(octet) for octet in self.net.split('.')[1:])
        return 200 + second % 50, third

    @property
    def prefix(self):
        return '10.{0}.{1}.'.format(*self.octets)

    @property
    def gateway(self):
        """The bridge's address in the machine's network namespace; hosts reach the vault there."""
        return self.prefix + '1'

    @property
    def tag(self):
        """What tells this lab's kernel objects apart from another lab's: the third octet, preceded by the
        second octet's offset when it is not 0 (interface names hold 15 characters at most)."""
        second, third = self.octets
        return str(third) if second == 200 else '{0}-{1}'.format(second - 200, third)

    @property
    def bridge(self):
        return 'cmesh' + self.tag

    def address(self, host):
        return self.prefix + str(BY_NAME[host].index)

    def netns(self, host):
        return 'castle-{0}-{1}'.format(self.tag, host)

    def veth(self, host):
        """The machine's end of the host's link; the host's end is moved in and renamed eth0."""
        return 'cm{0}h{1}'.format(self.tag, HOSTS.index(BY_NAME[host]))

    def hosts_file(self, host):
        """The host's /etc/hosts: loopback, its own name, the other hosts and the lab vault's name."""
        lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback',
                 '{0}\t{1}'.format(self.address(host), host)]
        lines += ['{0}\t{1}'.format(self.address(other.name), other.name) for other in HOSTS if other.name != host]
        lines.append('{0}\t{1}'.format(self.gateway, VAULT_NAME))
        return '\n'.join(lines) + '\n'
