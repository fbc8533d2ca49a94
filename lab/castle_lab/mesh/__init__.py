"""The fleet mesh: fleet machines as hosts in namespaces of their own on this one machine, each with its own sshd,
reached by Ansible as root; the `mesh` service (castle_lab.services.mesh) runs them.

    topology   the hosts, their roles, addresses and endpoints; the names of a lab's namespaces and links
    hosts      the supervisor (bridge, vault forwarder, control API) and a host's boot into its namespaces
    endpoint   a workload's HTTP endpoint on a host's 127.0.0.1
    units      the service manager each host runs as its init (systemd unit files)
    unitfile   unit files: search path, parsing, install symlinks
    systemctl  the host's systemctl, a client of its service manager
"""
