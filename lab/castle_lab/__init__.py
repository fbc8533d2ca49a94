"""castle-lab: the rehearsal lab of the ephemeral.castle collection.

Real services (OpenBao, git, sshd with the openclaw CLI) and emulators (Proxmox VE
through fakepve) on loopback addresses, so the whole flow runs on one machine.
"""
