"""The lab's fleet of Talos nodes: power events of different machines handled side by side."""

import asyncio
import types

from castle_lab.talos.fleet import Fleet


def test_machines_booting_together_drop_each_vanished_node_once(tmp_path):
    """Every booting machine's power worker sweeps away nodes whose VM is gone; two sweeping at once must not
    both take the same node out (the loser's worker would die, and its machine would never boot)."""
    fleet = Fleet(tmp_path)
    gone = {key: types.SimpleNamespace(mac='bc:24:11:00:00:{0}'.format(key), address='127.0.99.{0}'.format(key))
            for key in (100, 101)}
    fleet.nodes = dict(gone)
    fleet.exists = lambda key: key not in gone
    dropped = []

    async def drop(node):
        dropped.append(node)
        await asyncio.sleep(0)  # dropping a node waits on its cluster: other workers run meanwhile

    fleet._drop = drop

    async def two_sweeps():
        await asyncio.gather(fleet._forget_vanished(102, 'bc:24:11:00:00:02'),
                             fleet._forget_vanished(103, 'bc:24:11:00:00:03'))

    asyncio.run(two_sweeps())
    assert sorted(node.address for node in dropped) == ['127.0.99.100', '127.0.99.101'] and fleet.nodes == {}
