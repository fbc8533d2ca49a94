"""Emulated Talos Linux for the lab: machine config schema, secrets, nodes, and the talosctl CLI."""

TALOS_VERSION = 'v1.11.6'
KUBERNETES_VERSION = '1.34.1'
API_PORT = 50000
