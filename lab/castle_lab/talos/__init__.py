"""Emulated Talos Linux for the lab: nodes on the Proxmox VMs, talosctl, and what both share.

    cli            talosctl (console script): the subset of the v1.11 command line the collection drives
    client         talosctl's side of the node API: talosconfig contexts, TLS credentials, calls
    api            the node API's protocol: JSON over HTTPS on port 50000, errors as gRPC codes
    machineconfig  `talosctl gen config`: machine configs and a talosconfig from a secrets bundle, config patches
    secrets        the secrets bundle and certificates from its CAs
    schema         machine configs validated against the derived upstream schema (schema/)
    network        a node's links and addresses from machine.network.interfaces
    health         `talosctl health`: the cluster checks, run on the node
    node           one Talos machine: maintenance mode, apply-config, bootstrap, reset, upgrade, its API server
    cluster        what a cluster's nodes share: etcd members and the Kubernetes API bootstrap starts
    fleet          every node of a process, their power changes in order, and their clusters
    proxmox_hook   Talos nodes for the Proxmox VMs that boot the Talos ISO
    factory        the Image Factory (`python -m castle_lab.talos.factory`): schematics, ISOs, installer images
"""

TALOS_VERSION = 'v1.11.6'
KUBERNETES_VERSION = '1.34.1'
API_PORT = 50000
