"""How a lab is named by the environment."""

import pytest

from castle_lab import config


def test_default_lab_lives_in_the_repository():
    cfg = config.load({})
    assert cfg.state == config.REPO / '.lab'
    assert cfg.inventory == config.REPO / 'inventories' / 'lab'
    assert cfg.address(4) == '127.0.10.4'


def test_a_lab_elsewhere_keeps_its_inventory_beside_it(tmp_path):
    cfg = config.load({'CASTLE_LAB_DIR': str(tmp_path), 'CASTLE_LAB_NET': '127.0.33'})
    assert cfg.inventory == tmp_path / 'inventory'
    assert cfg.address(1) == '127.0.33.1'
    assert cfg.tools == config.REPO / '.lab' / 'tools'


@pytest.mark.parametrize('net', ['10.0.0', '127.0', '127.0.0.1', '192.168.1'])
def test_only_loopback_networks_are_accepted(net):
    with pytest.raises(ValueError, match='CASTLE_LAB_NET'):
        config.load({'CASTLE_LAB_NET': net})
