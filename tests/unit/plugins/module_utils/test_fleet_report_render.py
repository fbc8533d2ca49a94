"""The fleet report's renderer: deterministic bytes, escaping for Markdown and XML, violations, waves in order."""

import copy
import pathlib
import xml.etree.ElementTree as ET

from ansible_collections.ephemeral.castle.plugins.module_utils import fleet, fleet_report, fleet_rules

REPO = pathlib.Path(__file__).resolve().parents[4]
FIXTURES = REPO / 'tests' / 'fixtures' / 'fleet'
SVG = '{http://www.w3.org/2000/svg}'


def lab():
    return fleet.load_file(str(REPO / 'inventories' / 'lab' / 'lab.fleet.yml'))


def render(data, **kwargs):
    violations = fleet_rules.check(data)
    plans = [fleet_rules.drain_plan(data, m['name']) for m in data['machines'] if m['state'] == 'draining']
    md = fleet_report.render_markdown(data, 'Fleet report', violations, plans, kwargs.get('gates', []))
    return md, fleet_report.render_svg(data, 'Fleet report')


def test_same_fleet_same_bytes_whatever_the_input_order():
    data = lab()
    shuffled = copy.deepcopy(data)
    for key in ('machines', 'workloads', 'tunnels'):
        shuffled[key].reverse()
    assert render(data) == render(lab())
    assert render(shuffled) == render(data)


def test_markdown_lists_machines_by_role_register_tunnels_and_waves():
    md, _svg = render(lab())
    production, frozen = md.index('### production'), md.index('### frozen')
    assert production < md.index('| castle-2 | 127.0.10.41 | planned |') < frozen
    assert frozen < md.index('| pve-old | 127.0.10.40 | draining | castle-2 | site=lab |')
    assert '| mcp | pve-old → castle | platform | 2 | identity, openbao |  |  |' in md
    assert '| openclaw-runtime | openclaw-node → castle | forward | openclaw-node | yes |  |' in md
    assert '| operator-shell | workstation → openclaw-node | forward | operator |  | touches a workstation |' in md
    # Waves of the drain in ascending order, each with what blocks it.
    drain = md[md.index('### pve-old'):md.index('## Gates')]
    waves = [line for line in drain.splitlines() if line.startswith('- wave ')]
    assert [w.split(' (')[0] for w in waves] == ['- wave 1', '- wave 2', '- wave 3', '- wave 4']
    assert waves[0] == '- wave 1 (ready): blog → castle, kaze → castle'
    assert '  - openbao: identity (wave 3) depends on it and has not moved yet' in drain
    assert 'None: the fleet keeps every rule.' in md
    assert '![The fleet: mesh topology and waves](fleet.svg)' in md


def test_violations_and_workstation_tunnels_are_shown():
    data = fleet.load_file(str(FIXTURES / 'workstation-tunnels.fleet.yml'))
    md, svg = render(data)
    assert 'Fleet rules: **2 violation(s)**' in md
    section = md[md.index('## Violations'):]
    rows = [line for line in section.splitlines() if line.startswith('| `')]
    assert [r.split(' | ')[0] for r in rows] == ['| `critical-tunnel-on-workstation`'] * 2
    assert 'vault-reverse' in rows[0] and 'gateway-runtime' in rows[1]
    assert '| vault-reverse | laptop → pve-2 | reverse | laptop | yes | **critical on a workstation** |' in md
    # In the diagram: critical tunnels on the workstation in the warning colour, the other critical one red,
    # the reverse one dashed.
    root = ET.fromstring(svg)
    paths = {g.get('id'): g.find(SVG + 'path') for g in root.iter(SVG + 'g') if g.get('class') == 'tunnel'}
    assert paths['tunnel-vault-reverse'].get('stroke') == fleet_report.WARNING
    assert paths['tunnel-vault-reverse'].get('stroke-dasharray')
    assert paths['tunnel-gateway-runtime'].get('stroke') == fleet_report.WARNING
    assert paths['tunnel-backup-sync'].get('stroke') == fleet_report.CRITICAL
    assert paths['tunnel-operator-shell'].get('stroke') == fleet_report.PLAIN
    fixed = fleet.load_file(str(FIXTURES / 'fixed.fleet.yml'))
    assert 'Fleet rules: all pass.' in render(fixed)[0]


def test_text_is_escaped_for_markdown_and_xml():
    data = lab()
    data['machines'][0]['labels'] = {'note': 'a|b <script>&amp; *x* [l](u)'}
    data['workloads'][0]['owner'] = 'team_<a>|"b"'
    md = fleet_report.render_markdown(data, 'R & D <fleet>', [{'code': 'x', 'message': 'm|n\nnext'}], [], [])
    assert '# R &amp; D \\<fleet\\>' in md
    assert 'note=a\\|b \\<script\\>&amp;amp; \\*x\\* \\[l\\](u)' in md
    assert '| team\\_\\<a\\>\\|"b" |' in md
    assert '| `x` | error | m\\|n next |' in md
    # Every table row keeps its column count: no cell breaks out.
    for line in md.splitlines():
        if line.startswith('| ') and 'note=' in line:
            assert line.replace('\\|', '').count('|') == 6
    svg = fleet_report.render_svg(data, 'R & D <fleet>')
    root = ET.fromstring(svg)
    assert root.find(SVG + 'title').text == 'R & D <fleet>'
    assert '<script>' not in svg


def test_svg_groups_machines_by_role_and_workloads_by_wave():
    data = lab()
    root = ET.fromstring(fleet_report.render_svg(data, 'Fleet report'))
    roles = [g.get('id') for g in root.iter(SVG + 'g') if g.get('class') == 'role']
    assert roles == ['role-production', 'role-frozen', 'role-workstation']
    texts = {t.text: (int(t.get('x')), int(t.get('y'))) for t in root.iter(SVG + 'text')}
    # Waves in columns left to right; within a wave, by name top to bottom.
    assert texts['wave 1'][0] < texts['wave 2'][0] < texts['wave 3'][0] < texts['wave 4'][0]
    assert texts['blog'][0] == texts['kaze'][0] == texts['wave 1'][0]
    assert texts['blog'][1] < texts['kaze'][1] < texts['openclaw-gateway'][1]
    assert texts['openbao'][0] == texts['wave 4'][0]
    deps = sorted(g.get('id') for g in root.iter(SVG + 'g') if g.get('class') == 'depends-on')
    assert deps == ['dep-blog-mcp', 'dep-blog-openbao', 'dep-identity-openbao', 'dep-kaze-openbao',
                    'dep-mcp-identity', 'dep-mcp-openbao']
    # A tunnel to a cluster node is drawn to its cluster's box; boxes in the canvas.
    assert texts['castle'][0] == texts['castle-2'][0]
    width, height = int(root.get('width')), int(root.get('height'))
    for rect in root.iter(SVG + 'rect'):
        if rect.get('x'):
            assert int(rect.get('x')) + int(rect.get('width')) <= width
            assert int(rect.get('y')) + int(rect.get('height')) <= height


def test_gates_listed_with_every_reason():
    data = lab()
    gates = [{'target': 'machine/pve-old', 'passed': False,
              'reasons': [{'code': 'not-drained', 'message': 'workload blog still runs on pve-old'}]},
             {'target': 'workload/kaze', 'passed': True, 'reasons': []}]
    md = render(data, gates=gates)[0]
    section = md[md.index('## Gates'):md.index('## Violations')]
    assert section.index('- workload/kaze: **pass**') < section.index('- machine/pve-old: **fail**')
    assert '  - `not-drained` workload blog still runs on pve-old' in section


def test_tunnels_between_the_same_boxes_do_not_overlap():
    # fixed.fleet.yml: vault-forward gw-1 -> pve-2 and backup-sync pve-2 -> gw-1, one column.
    data = fleet.load_file(str(FIXTURES / 'fixed.fleet.yml'))
    root = ET.fromstring(fleet_report.render_svg(data, 'Fleet report'))
    paths = {g.get('id'): g.find(SVG + 'path').get('d') for g in root.iter(SVG + 'g') if g.get('class') == 'tunnel'}
    forward, back = paths['tunnel-vault-forward'].split(), paths['tunnel-backup-sync'].split()
    assert forward[1:3] == back[6:8] and forward[6:8] == back[1:3]
    assert forward[4:6] != back[4:6]
