# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet report: a Markdown page and an SVG diagram (mesh topology and waves) of a validated fleet, with
the results of fleet_check, fleet_drain_plan and fleet_gate. Pure functions of their inputs (no clock, no
randomness), so the same fleet renders to the same bytes. PRIVATE to the collection."""

from ansible_collections.ephemeral.castle.plugins.module_utils.fleet_schema import ROLES

# Colours of the diagram.
CRITICAL = '#b03a2e'
WARNING = '#e67e22'
PLAIN = '#7f8c8d'
ROLE_FILL = {'production': '#eaf4ea', 'frozen': '#e8f0fb', 'workstation': '#fdf2e0', 'experimental': '#f3eafa'}

_MD_SPECIAL = '\\`*_{}[]<>#+!|~'


def md(value):
    """Text for a Markdown table cell or line: special characters escaped, one line."""
    if value is None or value == '':
        return ''
    text = ' '.join(str(value).split())
    text = text.replace('&', '&amp;')
    return ''.join('\\' + c if c in _MD_SPECIAL else c for c in text)


def xml(value):
    text = str(value)
    for raw, entity in (('&', '&amp;'), ('<', '&lt;'), ('>', '&gt;'), ('"', '&quot;'), ("'", '&#39;')):
        text = text.replace(raw, entity)
    # Characters XML 1.0 does not allow at all.
    return ''.join(c for c in text if c in '\t\n\r' or ord(c) >= 0x20)


def _yes(flag):
    return 'yes' if flag else ''


def _row(cells):
    return '| ' + ' | '.join(cells) + ' |'


def _table(header, rows):
    lines = [_row(header), _row(['---'] * len(header))]
    lines.extend(_row(r) for r in rows)
    return lines


def _roles(fleet):
    return {m['name']: m['role'] for m in fleet['machines']}


def place_box(fleet):
    """{place name: box name}: machines and clusters are boxes; a cluster node is drawn as its cluster."""
    boxes = {m['name']: m['name'] for m in fleet['machines']}
    for cluster in fleet['clusters']:
        boxes[cluster['name']] = cluster['name']
        for node in cluster['nodes']:
            boxes[node['name']] = cluster['name']
    return boxes


def touches_workstation(fleet, tunnel):
    roles = _roles(fleet)
    return any(roles.get(tunnel[end]) == 'workstation' for end in ('from', 'to'))


def wave_order(fleet):
    """[(wave, [workload names])] in ascending wave order, names sorted within a wave."""
    waves = {}
    for w in fleet['workloads']:
        waves.setdefault(w['wave'], []).append(w['name'])
    return [(number, sorted(waves[number])) for number in sorted(waves)]


def render_markdown(fleet, title, violations=None, drain_plans=None, gates=None, svg_name='fleet.svg'):
    """The report as Markdown. `violations` None means the fleet was not checked."""
    lines = ['# ' + md(title), '', '![The fleet: mesh topology and waves]({0})'.format(svg_name), '']
    if violations is None:
        lines.append('Fleet rules: not checked.')
    elif violations:
        lines.append('Fleet rules: **{0} violation(s)**, listed under [Violations](#violations).'.format(
            len(violations)))
    else:
        lines.append('Fleet rules: all pass.')
    lines.append('')

    lines += ['## Machines', '']
    for role in ROLES:
        rows = [m for m in sorted(fleet['machines'], key=lambda m: m['name']) if m['role'] == role]
        if not rows:
            continue
        lines += ['### ' + role, '']
        lines += _table(['name', 'address', 'state', 'successor', 'labels'], [
            [md(m['name']), md(m.get('address')), md(m['state']), md(m.get('successor')),
             md(', '.join('{0}={1}'.format(k, m['labels'][k]) for k in sorted(m['labels'])))] for m in rows])
        lines.append('')
    if fleet['clusters']:
        lines += ['### Clusters', '']
        lines += _table(['cluster', 'role', 'control planes', 'workers', 'OpenClaw node'], [
            [md(c['name']), md(c['role']),
             md(', '.join(n['name'] for n in c['nodes'] if n['role'] == 'controlplane')),
             md(', '.join(n['name'] for n in c['nodes'] if n['role'] == 'worker')), md(c.get('openclaw'))]
            for c in sorted(fleet['clusters'], key=lambda c: c['name'])])
        lines.append('')

    lines += ['## Dependency register', '']
    if fleet['workloads']:
        ordered = sorted(fleet['workloads'], key=lambda w: (w['wave'], w['name']))
        lines += _table(['workload', 'current → target', 'owner', 'wave', 'depends on', 'stateful', 'critical'], [
            [md(w['name']), '{0} → {1}'.format(md(w.get('current_host')) or '–', md(w.get('target_host')) or '–'),
             md(w.get('owner')), str(w['wave']), md(', '.join(w['depends_on'])), _yes(w['stateful']),
             _yes(w['critical'])] for w in ordered])
    else:
        lines.append('No workloads.')
    lines.append('')

    lines += ['## Tunnels', '']
    if fleet['tunnels']:
        rows = []
        for t in sorted(fleet['tunnels'], key=lambda t: t['name']):
            flag = ''
            if touches_workstation(fleet, t):
                flag = '**critical on a workstation**' if t['critical'] else 'touches a workstation'
            rows.append([md(t['name']), '{0} → {1}'.format(md(t['from']), md(t['to'])), md(t['direction']),
                         md(t.get('actor')), _yes(t['critical']), flag])
        lines += _table(['tunnel', 'from → to', 'direction', 'actor', 'critical', 'workstation'], rows)
    else:
        lines.append('No tunnels.')
    lines.append('')

    lines += ['## Drain waves', '']
    if not drain_plans:
        lines += ['No machine is being drained.', '']
    for plan in sorted(drain_plans or [], key=lambda p: p['machine']):
        lines += ['### ' + md(plan['machine']), '']
        if not plan['waves']:
            lines.append('Nothing left to move.')
        for wave in plan['waves']:
            moves = ', '.join('{0} → {1}'.format(md(name), md(wave['targets'].get(name)) or '–')
                              for name in wave['workloads'])
            state = 'blocked' if wave['blocked_by'] else 'ready'
            lines.append('- wave {0} ({1}): {2}'.format(wave['wave'], state, moves))
            for block in wave['blocked_by']:
                lines.append('  - {0}: {1}'.format(md(block['workload']), md(block['reason'])))
        if plan.get('staying'):
            lines.append('- staying (keep it from being drained): ' + md(', '.join(plan['staying'])))
        lines.append('')

    lines += ['## Gates', '']
    if not gates:
        lines += ['No gate was run.', '']
    else:
        for gate in sorted(gates, key=lambda g: (not g['target'].startswith('workload/'), g['target'])):
            lines.append('- {0}: **{1}**'.format(md(gate['target']), 'pass' if gate['passed'] else 'fail'))
            for reason in gate['reasons']:
                lines.append('  - `{0}` {1}'.format(reason['code'].replace('`', ''), md(reason['message'])))
        lines.append('')

    lines += ['## Violations', '']
    if violations is None:
        lines.append('The fleet was not checked.')
    elif not violations:
        lines.append('None: the fleet keeps every rule.')
    else:
        lines += _table(['code', 'severity', 'message'], [
            ['`{0}`'.format(v['code'].replace('`', '')), v.get('severity', 'error'), md(v['message'])]
            for v in violations])
    lines.append('')
    return '\n'.join(lines)


# The diagram. Every coordinate is an integer computed from sorted inputs.
BOX_W, BOX_H, GAP_X, GAP_Y, PAD, HEAD = 180, 44, 110, 26, 20, 34


def _text(x, y, value, size=13, anchor='middle', weight='normal', fill='#222'):
    return ('<text x="{0}" y="{1}" font-size="{2}" text-anchor="{3}" font-weight="{4}" fill="{5}">{6}</text>'
            .format(x, y, size, anchor, weight, fill, xml(value)))


def _box(x, y, label, sub, fill, stroke='#555', width=1):
    return ['<rect x="{0}" y="{1}" width="{2}" height="{3}" rx="6" fill="{4}" stroke="{5}" stroke-width="{6}"/>'
            .format(x, y, BOX_W, BOX_H, fill, stroke, width),
            _text(x + BOX_W // 2, y + 18, label, weight='bold'),
            _text(x + BOX_W // 2, y + 35, sub, size=11, fill='#555')]


def _arrow(a, b, colour, width, marker, dashed=False, label=None, bend=0):
    """A curved arrow between two boxes (top-left corners), from edge to edge, with an optional label."""
    ax, ay = a[0] + BOX_W // 2, a[1] + BOX_H // 2
    bx, by = b[0] + BOX_W // 2, b[1] + BOX_H // 2
    if a[0] == b[0]:
        # Same column: leave from the right edge and bulge out to the right.
        sx, sy, ex, ey = a[0] + BOX_W, ay, b[0] + BOX_W, by
        cx, cy = sx + 50 + bend, (sy + ey) // 2
    else:
        sx = a[0] + BOX_W if bx > ax else a[0]
        ex = b[0] if bx > ax else b[0] + BOX_W
        sy, ey = ay, by
        # Longer spans arc higher, over the boxes of the columns between.
        cx, cy = (sx + ex) // 2, (sy + ey) // 2 - 24 - abs(ex - sx) // 6 - bend
    dash = ' stroke-dasharray="6 4"' if dashed else ''
    out = ['<path d="M {0} {1} Q {2} {3} {4} {5}" fill="none" stroke="{6}" stroke-width="{7}"{8} '
           'marker-end="url(#{9})"/>'.format(sx, sy, cx, cy, ex, ey, colour, width, dash, marker)]
    if label:
        # The curve's midpoint.
        mx, my = (sx + 2 * cx + ex) // 4, (sy + 2 * cy + ey) // 4
        out.append(_text(mx, my - 4, label, size=11, fill=colour))
    return out


def _column_layout(columns, top):
    """{name: (x, y)} for columns of names laid left to right, and the height used."""
    where, height = {}, 0
    for i, (_title, names) in enumerate(columns):
        x = PAD + i * (BOX_W + GAP_X)
        for j, name in enumerate(names):
            where[name] = (x, top + HEAD + j * (BOX_H + GAP_Y))
        height = max(height, HEAD + len(names) * (BOX_H + GAP_Y))
    return where, height


def render_svg(fleet, title):
    """The diagram: machines and clusters grouped by role with the tunnels between them, then the workloads in
    columns by wave with arrows for depends_on."""
    boxes = place_box(fleet)
    members = {role: [] for role in ROLES}
    subtitle = {}
    for m in fleet['machines']:
        members[m['role']].append(m['name'])
        subtitle[m['name']] = m['state'] + (' → ' + m['successor'] if m.get('successor') else '')
    for c in fleet['clusters']:
        members[c['role']].append(c['name'])
        subtitle[c['name']] = 'cluster, {0} node(s)'.format(len(c['nodes']))
    mesh_cols = [(role, sorted(members[role])) for role in ROLES if members[role]]
    mesh_top = PAD + 30
    mesh_at, mesh_h = _column_layout(mesh_cols, mesh_top)
    waves = wave_order(fleet)
    wave_top = mesh_top + mesh_h + 60
    wave_at, wave_h = _column_layout([('wave {0}'.format(n), names) for n, names in waves], wave_top)
    columns = max(len(mesh_cols), len(waves), 1)
    width = PAD * 2 + columns * BOX_W + (columns - 1) * GAP_X + 60
    height = wave_top + 30 + max(wave_h, HEAD) + PAD
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<svg xmlns="http://www.w3.org/2000/svg" width="{0}" height="{1}" viewBox="0 0 {0} {1}" '
           'font-family="sans-serif">'.format(width, height),
           '<title>{0}</title>'.format(xml(title)), '<defs>']
    for name, colour in (('plain', PLAIN), ('critical', CRITICAL), ('warning', WARNING), ('dep', '#34495e')):
        out.append('<marker id="arrow-{0}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
                   'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{1}"/></marker>'
                   .format(name, colour))
    out += ['</defs>', '<rect width="100%" height="100%" fill="#ffffff"/>',
            _text(PAD, PAD + 8, title, size=18, anchor='start', weight='bold'),
            '<g id="mesh">', _text(PAD, mesh_top, 'Mesh topology', size=15, anchor='start', weight='bold')]
    for i, (role, names) in enumerate(mesh_cols):
        x = PAD + i * (BOX_W + GAP_X)
        out.append('<g class="role" id="role-{0}">'.format(role))
        out.append('<rect x="{0}" y="{1}" width="{2}" height="{3}" rx="8" fill="{4}" stroke="#bbb"/>'.format(
            x - 8, mesh_top + 8, BOX_W + 16, HEAD - 8 + len(names) * (BOX_H + GAP_Y), ROLE_FILL[role]))
        out.append(_text(x + BOX_W // 2, mesh_top + 26, role, size=12, weight='bold', fill='#444'))
        for name in names:
            out += _box(mesh_at[name][0], mesh_at[name][1], name, subtitle[name], '#ffffff')
        out.append('</g>')
    pairs = {}
    for t in sorted(fleet['tunnels'], key=lambda t: t['name']):
        a, b = boxes[t['from']], boxes[t['to']]
        if a == b:
            continue
        # Tunnels between the same two boxes (either way) arc apart.
        pair = tuple(sorted((a, b)))
        bend = pairs.get(pair, 0)
        pairs[pair] = bend + 22
        if t['critical'] and touches_workstation(fleet, t):
            colour, width, marker = WARNING, 3, 'arrow-warning'
        elif t['critical']:
            colour, width, marker = CRITICAL, 3, 'arrow-critical'
        else:
            colour, width, marker = PLAIN, 1, 'arrow-plain'
        out.append('<g class="tunnel" id="tunnel-{0}">'.format(xml(t['name'])))
        out += _arrow(mesh_at[a], mesh_at[b], colour, width, marker, dashed=t['direction'] == 'reverse',
                      label=t['name'], bend=bend)
        out.append('</g>')
    out += ['</g>', '<g id="waves">',
            _text(PAD, wave_top, 'Waves (a dependency moves after its dependents)', size=15, anchor='start',
                  weight='bold')]
    byname = {w['name']: w for w in fleet['workloads']}
    for i, (number, names) in enumerate(waves):
        x = PAD + i * (BOX_W + GAP_X)
        out.append(_text(x + BOX_W // 2, wave_top + 26, 'wave {0}'.format(number), size=12, weight='bold',
                         fill='#444'))
        for name in names:
            w = byname[name]
            flags = [f for f in ('stateful', 'critical') if w[f]]
            sub = '{0} → {1}'.format(w.get('current_host') or '–', w.get('target_host') or '–')
            if flags:
                sub += ' (' + ', '.join(flags) + ')'
            out += _box(wave_at[name][0], wave_at[name][1], name, sub, '#fafafa',
                        stroke=CRITICAL if w['critical'] else '#555', width=2 if w['critical'] else 1)
    for w in sorted(fleet['workloads'], key=lambda w: w['name']):
        for dep in sorted(w['depends_on']):
            out.append('<g class="depends-on" id="dep-{0}-{1}">'.format(xml(w['name']), xml(dep)))
            out += _arrow(wave_at[w['name']], wave_at[dep], '#34495e', 1, 'arrow-dep')
            out.append('</g>')
    out += ['</g>', '</svg>', '']
    return '\n'.join(out)
