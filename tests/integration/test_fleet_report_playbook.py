"""playbooks/fleet_report.yml through ansible-playbook, without the lab: the lab's inventory directory (the fleet
plugin falls back to the declared data), a fleet whose critical tunnels run through the workstation, a fleet
file given with -e. The report's files are read back: Markdown sections, SVG parsed as XML; a second run
changes nothing and --check writes nothing."""

import os
import shutil
import xml.etree.ElementTree as ET

import pytest
from harness import play_recap, run_playbook

from conftest import REPO

FIXTURES = REPO / 'tests' / 'fixtures' / 'fleet'
PLAYBOOK = REPO / 'playbooks' / 'fleet_report.yml'
SVG = '{http://www.w3.org/2000/svg}'


def play(cwd, *args, check_ok=True):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_LOCALHOST_WARNING='false',
               ANSIBLE_NOCOLOR='1')
    proc = run_playbook(env, PLAYBOOK, *args, cwd=cwd)
    if check_ok and proc.returncode != 0:
        pytest.fail('fleet_report.yml exited {0}\n{1}\n{2}'.format(proc.returncode, proc.stdout, proc.stderr))
    return proc


def recap(proc):
    return play_recap(proc)['localhost']


def test_report_of_the_lab_inventory_is_idempotent_and_check_writes_nothing(tmp_path):
    out = tmp_path / 'report'
    # A dry run first: nothing is written, the write is reported as a change.
    dry = play(tmp_path, '-i', str(REPO / 'inventories' / 'lab'), '-e', 'fleet_report_dir=' + str(out), '--check',
               '--diff')
    assert recap(dry)['changed'] == 1
    assert not out.exists()
    assert '+# Fleet report' in dry.stdout
    first = play(tmp_path, '-i', str(REPO / 'inventories' / 'lab'), '-e', 'fleet_report_dir=' + str(out))
    assert recap(first) == {'ok': 9, 'changed': 1, 'unreachable': 0, 'failed': 0, 'skipped': 0, 'rescued': 0, 'ignored': 0}
    md, svg = (out / 'fleet.md').read_text(), (out / 'fleet.svg').read_bytes()
    assert '| pve-old | 127.0.10.40 | draining | castle-2 | site=lab |' in md
    assert '| openbao | pve-old → castle | platform | 4 |  | yes | yes |' in md
    assert '- wave 1 (ready): blog → castle, kaze → castle' in md
    assert '- machine/pve-old: **fail**' in md and '`not-drained` workload openbao still runs on pve-old' in md
    assert '- workload/blog: **fail**' in md and '`no-backup-restore`' in md
    assert 'None: the fleet keeps every rule.' in md
    root = ET.fromstring(svg)
    assert root.tag == SVG + 'svg'
    assert {t.text for t in root.iter(SVG + 'text')} >= {'pve-old', 'castle', 'openclaw-runtime', 'wave 4'}
    again = play(tmp_path, '-i', str(REPO / 'inventories' / 'lab'), '-e', 'fleet_report_dir=' + str(out))
    assert recap(again)['changed'] == 0
    assert (out / 'fleet.svg').read_bytes() == svg
    # A hand-edited report is put back, and check mode says so without touching it.
    (out / 'fleet.md').write_text('edited\n')
    dry = play(tmp_path, '-i', str(REPO / 'inventories' / 'lab'), '-e', 'fleet_report_dir=' + str(out), '--check')
    assert recap(dry)['changed'] == 1
    assert (out / 'fleet.md').read_text() == 'edited\n'
    play(tmp_path, '-i', str(REPO / 'inventories' / 'lab'), '-e', 'fleet_report_dir=' + str(out))
    assert (out / 'fleet.md').read_text() == md


def test_report_lists_critical_tunnels_on_the_workstation(tmp_path):
    source = shutil.copy(FIXTURES / 'workstation-tunnels.fleet.yml', tmp_path / 'site.fleet.yml')
    proc = play(tmp_path, '-i', str(source))
    assert recap(proc)['failed'] == 0
    md = (tmp_path / 'fleet-report' / 'fleet.md').read_text()
    assert 'Fleet rules: **2 violation(s)**' in md
    violations = md[md.index('## Violations'):]
    assert violations.count('`critical-tunnel-on-workstation`') == 2
    assert 'critical tunnel vault-reverse starts on workstation laptop' in violations
    assert 'critical tunnel gateway-runtime ends on workstation laptop' in violations
    assert '| backup-sync | pve-2 → gw-1 | forward | pve-2 | yes |  |' in md
    assert 'No machine is being drained.' in md
    root = ET.fromstring((tmp_path / 'fleet-report' / 'fleet.svg').read_bytes())
    strokes = {g.get('id'): g.find(SVG + 'path').get('stroke') for g in root.iter(SVG + 'g')
               if g.get('class') == 'tunnel'}
    assert strokes['tunnel-vault-reverse'] == strokes['tunnel-gateway-runtime'] != strokes['tunnel-backup-sync']
    assert recap(play(tmp_path, '-i', str(source)))['changed'] == 0


def test_fleet_src_and_extra_machines_to_drain(tmp_path):
    source = FIXTURES / 'fixed.fleet.yml'
    out = tmp_path / 'out'
    proc = play(tmp_path, '-i', 'localhost,', '-c', 'local', '-e', 'fleet_src=' + str(source),
                '-e', 'fleet_report_dir=' + str(out), '-e', 'fleet_report_drain=pve-2,gw-1')
    assert recap(proc)['failed'] == 0
    md = (out / 'fleet.md').read_text()
    assert 'Fleet rules: all pass.' in md
    assert md.index('### gw-1') < md.index('### pve-2') < md.index('## Gates')
    assert '- machine/pve-2: **fail**' in md


def test_without_a_fleet_file_the_play_says_how_to_give_one(tmp_path):
    proc = play(tmp_path, '-i', 'localhost,', '-c', 'local', check_ok=False)
    assert proc.returncode != 0
    assert 'no fleet file' in proc.stdout and 'fleet_src' in proc.stdout
