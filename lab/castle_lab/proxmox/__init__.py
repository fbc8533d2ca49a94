"""The lab's Proxmox VE: fakepve with what the collection's Proxmox layer depends on, in one process.

    server     the process (`python -m castle_lab.proxmox.server`): the API over HTTPS, the control API, Talos nodes
    fake       LabPve: fakepve plus resize, clone and create that take time, shared locks, reset
    storage    storages each node has its own of, PVE sizes, volume owners, storage maps
    migration  offline and online migration copying local disks
    downloads  download-url that really downloads
    control    the control API: fault injection and server-side state (its client is castle_lab.control)
"""
