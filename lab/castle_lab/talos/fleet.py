"""Every emulated Talos node of a process, on one event loop: the machines by key (their VM), their power changes
handled in order, and the clusters they form."""

import asyncio
import logging
import pathlib
import shutil

from .api import RpcError
from .cluster import Cluster
from .node import Node

LOG = logging.getLogger('castle_lab.talos')



class Fleet:
    """Every emulated Talos node of this process, by key (the VM), and the clusters they form."""

    def __init__(self, state):
        self.state = pathlib.Path(state)
        self.nodes = {}
        self.clusters = {}
        self.power = {}  # key -> a queue of power events, handled in order
        self.on_shutdown = None  # called with a node that powered itself off
        self.on_boot = None  # called with a node as it boots, before it serves
        self.exists = None  # key -> whether the machine (its VM) still exists; set by the Proxmox hook

    def cluster(self, cluster_id):
        if cluster_id not in self.clusters:
            self.clusters[cluster_id] = Cluster(self, cluster_id)
        return self.clusters[cluster_id]

    def nodes_by_address(self):
        return {node.address: node for node in self.nodes.values() if node.stage != 'off'}

    def node(self, key, address, mac):
        """The node of a machine, created on first boot; a new MAC means a new machine."""
        node = self.nodes.get(key)
        if node is None or node.mac != mac:
            node = self.nodes[key] = Node(self, address, mac)
        node.address = address
        return node

    def switch(self, key, on, address=None, mac=None):
        """Queue a power change of a machine; changes of one machine happen in the order they came."""
        queue = self.power.get(key)
        if queue is None:
            queue = self.power[key] = asyncio.Queue()
            asyncio.ensure_future(self._power_worker(queue))
        queue.put_nowait((key, on, address, mac))

    async def _power_worker(self, queue):
        while True:
            key, on, address, mac = await queue.get()
            try:
                if on:
                    await self._forget_vanished(key, mac)
                    node = self.node(key, address, mac)
                    if node.stage == 'off' and not node.booting:
                        await node.boot()
                elif key in self.nodes and (self.nodes[key].stage != 'off' or self.nodes[key].booting):
                    await self.nodes[key].power_off()
            except (OSError, RpcError, ValueError) as exc:
                LOG.error('talos node %s: power %s failed: %s', key, 'on' if on else 'off', exc)

    async def _forget_vanished(self, key, mac):
        """Machines whose VM was destroyed, or made again with a new MAC, lost their disks: their etcd
        membership goes, and a cluster left without members needs a new bootstrap."""
        for other, node in list(self.nodes.items()):
            replaced = other == key and node.mac != mac
            # Each machine's power worker sweeps: the one that takes a node out drops it, once.
            if (replaced or (self.exists is not None and not self.exists(other))) and self.nodes.get(other) is node:
                del self.nodes[other]
                await self._drop(node)

    async def _drop(self, node):
        for cluster in self.clusters.values():
            if cluster.etcd.pop(node.address, None) is not None and not cluster.etcd:
                await cluster.stop_kube()
                cluster.kube_node = None
                cluster.bootstrapped = False

    async def reboot(self, node):
        await node.reboot()

    async def shutdown(self, node):
        await node.power_off()
        if self.on_shutdown is not None:
            self.on_shutdown(node)

    async def close(self):
        for node in list(self.nodes.values()):
            if node.stage != 'off':
                await node.power_off()
        for cluster in self.clusters.values():
            await cluster.stop_kube()
        for node in self.nodes.values():
            shutil.rmtree(node.scratch, ignore_errors=True)
