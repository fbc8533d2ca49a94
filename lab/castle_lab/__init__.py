"""castle-lab: the rehearsal lab of the ephemeral.castle collection.

Real services (OpenBao, git, sshd with the openclaw CLI, moto's S3 server) and emulators (Proxmox VE through fakepve, Talos, Kubernetes)
on loopback addresses, so the whole flow runs on one machine. The top-level modules are the supervisor; each product
has a package of its own.

Supervisor:
    cli        the `castle-lab` command: up, down, status, env, fault, requests, vault-requests
    config     where a lab lives (CASTLE_LAB_DIR) and which addresses it uses (CASTLE_LAB_NET)
    services/  one class per service: how to prepare, start, check it and which variables it exports
    process    processes started detached, recorded by PID and start time, stopped by process group
    control    clients of the control APIs (Proxmox VE, Kubernetes) and the one ControlError
    inventory  the inventory `castle-lab up` writes
    pki        the lab CA and the server certificates it signs
    serving    what the in-process servers share: their command line, stopping on a signal, loopback-only control APIs

Products:
    proxmox/   Proxmox VE: fakepve with the lab's additions, its server and control API
    talos/     Talos Linux: nodes on the Proxmox VMs, talosctl, the machine config schema, the Image Factory
    kube/      Kubernetes: the API machinery, its HTTPS server, and the controllers (Flux, External Secrets, ...)
    git/       the Git host, its seed repositories and the Flux install manifest it publishes
    s3/        the S3 store for backups: moto's server with an outage switch
"""
