"""Pod Security admission as kube-apiserver's PodSecurity plugin applies it (k8s.io/pod-security-admission).

A namespace's level per mode comes from its `pod-security.kubernetes.io/<mode>[-version]` labels, else from the
plugin's configuration (PodSecurityConfiguration defaults). A Pod whose spec breaks the enforce level is refused
(403 Forbidden); one that breaks the warn level is admitted with a warning. Workload objects (Deployments,
DaemonSets, ...) are never refused: their pod template is checked against the warn level only.

The checks and their messages are those of the plugin's policy package at policy version `latest`.
"""

import copy
import re

from . import errors
from .errors import ApiError

LEVELS = ('privileged', 'baseline', 'restricted')
MODES = ('enforce', 'audit', 'warn')
LABEL_PREFIX = 'pod-security.kubernetes.io/'
VERSION = re.compile(r'^v1\.([0-9]|[1-9][0-9]*)$')

# What Talos's generated machine config puts in cluster.apiServer.admissionControl (the PodSecurity plugin).
TALOS_DEFAULT = {
    'apiVersion': 'pod-security.admission.config.k8s.io/v1alpha1', 'kind': 'PodSecurityConfiguration',
    'defaults': {'enforce': 'baseline', 'enforce-version': 'latest', 'audit': 'restricted',
                 'audit-version': 'latest', 'warn': 'restricted', 'warn-version': 'latest'},
    'exemptions': {'usernames': [], 'runtimeClasses': [], 'namespaces': ['kube-system']},
}
# kube-apiserver's PodSecurity plugin without a configuration: every mode privileged.
UNCONFIGURED = {'defaults': {}, 'exemptions': {}}

# Where each workload kind keeps its pod template.
TEMPLATE_PATHS = {
    'ReplicationController': ('spec', 'template'), 'ReplicaSet': ('spec', 'template'),
    'Deployment': ('spec', 'template'), 'StatefulSet': ('spec', 'template'), 'DaemonSet': ('spec', 'template'),
    'Job': ('spec', 'template'), 'CronJob': ('spec', 'jobTemplate', 'spec', 'template'), 'PodTemplate': ('template',),
}

BASELINE_CAPABILITIES = frozenset((
    'AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP',
    'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT'))
SAFE_SYSCTLS = frozenset((
    'kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range',
    'net.ipv4.ip_unprivileged_port_start', 'net.ipv4.ip_local_reserved_ports', 'net.ipv4.tcp_keepalive_time',
    'net.ipv4.tcp_fin_timeout', 'net.ipv4.tcp_keepalive_intvl', 'net.ipv4.tcp_keepalive_probes', 'net.ipv4.tcp_rmem',
    'net.ipv4.tcp_wmem'))
SELINUX_TYPES = frozenset(('', 'container_t', 'container_init_t', 'container_kvm_t'))
SECCOMP_TYPES = ('RuntimeDefault', 'Localhost')
# Volume types the restricted level allows.
RESTRICTED_VOLUMES = frozenset((
    'configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret',
    'image'))
APPARMOR_PREFIX = 'container.apparmor.security.beta.kubernetes.io/'


def _quote(items):
    return ', '.join('"{0}"'.format(item) for item in items)


def _plural(singular, plural, count):
    return singular if count == 1 else plural


def _containers(spec):
    for field in ('initContainers', 'containers', 'ephemeralContainers'):
        for container in spec.get(field) or []:
            if isinstance(container, dict):
                yield container


def _context(item):
    return item.get('securityContext') or {}


def _offenders(spec, values_of):
    """(names of the containers with forbidden values, the set of those values); values_of(container) lists a
    container's forbidden values."""
    names, values = [], set()
    for container in _containers(spec):
        found = values_of(container)
        if found:
            names.append(container.get('name'))
            values.update(found)
    return names, values


def _named(kind, names):
    return '{0} {1}'.format(_plural(kind, kind + 's', len(names)), _quote(names))


def _setters(pod_bad, containers):
    """'pod', 'container "a"' or both joined with 'and', as the checks name who set a forbidden value."""
    setters = ['pod'] if pod_bad else []
    if containers:
        setters.append(_named('container', containers))
    return ' and '.join(setters)


# Baseline checks, in the order the plugin registers them.

def _apparmor(meta, spec):
    bad = sorted('{0}="{1}"'.format(k, v) for k, v in (meta.get('annotations') or {}).items()
                 if k.startswith(APPARMOR_PREFIX) and v and v != 'runtime/default' and not v.startswith('localhost/'))
    if bad:
        return _plural('forbidden AppArmor profile', 'forbidden AppArmor profiles', len(bad)), ', '.join(bad)
    return None


def _host_namespaces(_meta, spec):
    used = ['{0}=true'.format(field) for field in ('hostNetwork', 'hostPID', 'hostIPC') if spec.get(field) is True]
    return ('host namespaces', ', '.join(used)) if used else None


def _host_ports(_meta, spec):
    containers, ports = _offenders(spec, lambda c: [
        str(p['hostPort']) for p in c.get('ports') or [] if isinstance(p, dict) and p.get('hostPort')])
    if not containers:
        return None
    return 'hostPort', '{0} {1} {2} {3}'.format(
        _named('container', containers), _plural('uses', 'use', len(containers)),
        _plural('hostPort', 'hostPorts', len(ports)), ', '.join(sorted(ports)))


def _probe_hosts(container):
    handlers = [container.get(probe) for probe in ('livenessProbe', 'readinessProbe', 'startupProbe')]
    lifecycle = container.get('lifecycle') or {}
    handlers += [lifecycle.get('postStart'), lifecycle.get('preStop')]
    return [(handler.get(action) or {}).get('host') for handler in handlers if isinstance(handler, dict)
            for action in ('httpGet', 'tcpSocket') if (handler.get(action) or {}).get('host')]


def _host_probes(_meta, spec):
    containers, hosts = _offenders(spec, _probe_hosts)
    if not containers:
        return None
    containers = sorted(set(containers))
    return 'probe or lifecycle host', '{0} {1} {2} {3}'.format(
        _named('container', containers), _plural('uses', 'use', len(containers)),
        _plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts)), _quote(sorted(hosts)))


def _privileged(_meta, spec):
    bad = [c.get('name') for c in _containers(spec) if _context(c).get('privileged') is True]
    if bad:
        return 'privileged', '{0} must not set securityContext.privileged=true'.format(_named('container', bad))
    return None


def _proc_mount(_meta, spec):
    bad, types = _offenders(spec, lambda c: [
        _context(c)['procMount']] if _context(c).get('procMount') not in (None, 'Default') else [])
    if bad:
        return 'procMount', '{0} must not set securityContext.procMount to {1}'.format(
            _named('container', bad), _quote(sorted(types)))
    return None


def _selinux(_meta, spec):
    types, flags = set(), set()

    def forbidden(options):
        bad = False
        if options.get('type', '') not in SELINUX_TYPES:
            types.add(options['type'])
            bad = True
        for field in ('user', 'role'):
            if options.get(field):
                flags.add(field)
                bad = True
        return bad

    pod_options = _context(spec).get('seLinuxOptions')
    pod_bad = isinstance(pod_options, dict) and forbidden(pod_options)
    bad = [c.get('name') for c in _containers(spec)
           if isinstance(_context(c).get('seLinuxOptions'), dict) and forbidden(_context(c)['seLinuxOptions'])]
    if not pod_bad and not bad:
        return None
    data = []
    if types:
        data.append('{0} {1}'.format(_plural('type', 'types', len(types)), _quote(sorted(types))))
        data += ['{0} may not be set'.format(field) for field in ('user', 'role') if field in flags]
    return 'seLinuxOptions', '{0} set forbidden securityContext.seLinuxOptions: {1}'.format(
        _setters(pod_bad, bad), '; '.join(data))


def _sysctls(_meta, spec):
    bad = [s.get('name') for s in _context(spec).get('sysctls') or [] if s.get('name') not in SAFE_SYSCTLS]
    return ('forbidden sysctls', ', '.join(bad)) if bad else None


def _host_process(_meta, spec):
    def host_process(item):
        return (_context(item).get('windowsOptions') or {}).get('hostProcess') is True

    bad = [c.get('name') for c in _containers(spec) if host_process(c)]
    if host_process(spec) or bad:
        return 'hostProcess', '{0} must not set securityContext.windowsOptions.hostProcess=true'.format(
            _setters(host_process(spec), bad))
    return None


# Baseline checks the restricted level replaces with stricter ones.

def _capabilities_baseline(_meta, spec):
    bad, added = _offenders(spec, lambda c: [
        cap for cap in (_context(c).get('capabilities') or {}).get('add') or [] if cap not in BASELINE_CAPABILITIES])
    if bad:
        return 'non-default capabilities', '{0} must not include {1} in securityContext.capabilities.add'.format(
            _named('container', bad), _quote(sorted(added)))
    return None


def _host_path_volumes(_meta, spec):
    bad = [v.get('name') for v in spec.get('volumes') or [] if isinstance(v, dict) and 'hostPath' in v]
    return ('hostPath volumes', _named('volume', bad)) if bad else None


def _seccomp_values(spec):
    """(pod's bad type or None, containers with a bad type, all bad types, containers without a profile)."""
    pod_type = (_context(spec).get('seccompProfile') or {}).get('type')
    pod_bad = pod_type if 'seccompProfile' in _context(spec) and pod_type not in SECCOMP_TYPES else None
    bad, values, unset = [], {pod_bad} if pod_bad is not None else set(), []
    for container in _containers(spec):
        if 'seccompProfile' in _context(container):
            kind = (_context(container)['seccompProfile'] or {}).get('type')
            if kind not in SECCOMP_TYPES:
                bad.append(container.get('name'))
                values.add(kind)
        else:
            unset.append(container.get('name'))
    return pod_bad, bad, values, unset


def _seccomp_baseline(_meta, spec):
    pod_bad, bad, values, _unset = _seccomp_values(spec)
    if pod_bad is not None or bad:
        return 'seccompProfile', '{0} must not set securityContext.seccompProfile.type to {1}'.format(
            _setters(pod_bad is not None, bad), _quote(sorted(str(v) for v in values)))
    return None


# Restricted checks.

def _allow_privilege_escalation(_meta, spec):
    bad = [c.get('name') for c in _containers(spec) if _context(c).get('allowPrivilegeEscalation') is not False]
    if bad:
        return 'allowPrivilegeEscalation != false', '{0} must set securityContext.allowPrivilegeEscalation=' \
                                                    'false'.format(_named('container', bad))
    return None


def _capabilities_restricted(_meta, spec):
    no_drop = [c.get('name') for c in _containers(spec)
               if 'ALL' not in ((_context(c).get('capabilities') or {}).get('drop') or [])]
    adding, added = _offenders(spec, lambda c: [
        cap for cap in (_context(c).get('capabilities') or {}).get('add') or [] if cap != 'NET_BIND_SERVICE'])
    details = []
    if no_drop:
        details.append('{0} must set securityContext.capabilities.drop=["ALL"]'.format(_named('container', no_drop)))
    if adding:
        details.append('{0} must not include {1} in securityContext.capabilities.add'.format(
            _named('container', adding), _quote(sorted(added))))
    return ('unrestricted capabilities', '; '.join(details)) if details else None


def _volume_type(volume):
    return next((key for key in volume if key != 'name'), 'unknown')


def _restricted_volumes(_meta, spec):
    bad, types = [], set()
    for volume in spec.get('volumes') or []:
        if isinstance(volume, dict) and _volume_type(volume) not in RESTRICTED_VOLUMES:
            bad.append(volume.get('name'))
            types.add(_volume_type(volume))
    if not bad:
        return None
    return 'restricted volume types', '{0} {1} {2} {3}'.format(
        _named('volume', bad), _plural('uses', 'use', len(bad)),
        _plural('restricted volume type', 'restricted volume types', len(types)), _quote(sorted(types)))


def _run_as_non_root(_meta, spec):
    pod_value = _context(spec).get('runAsNonRoot')
    explicit, implicit = [], []
    for container in _containers(spec):
        value = _context(container).get('runAsNonRoot')
        if value is False:
            explicit.append(container.get('name'))
        elif value is None and pod_value is not True:
            implicit.append(container.get('name'))
    if pod_value is False or explicit:
        return 'runAsNonRoot != true', '{0} must not set securityContext.runAsNonRoot=false'.format(
            _setters(pod_value is False, explicit))
    if implicit:
        return 'runAsNonRoot != true', 'pod or {0} must set securityContext.runAsNonRoot=true'.format(
            _named('container', implicit))
    return None


def _run_as_user(_meta, spec):
    pod_bad = _context(spec).get('runAsUser') == 0
    bad = [c.get('name') for c in _containers(spec) if _context(c).get('runAsUser') == 0]
    if pod_bad or bad:
        return 'runAsUser=0', '{0} must not set runAsUser=0'.format(_setters(pod_bad, bad))
    return None


def _seccomp_restricted(_meta, spec):
    pod_bad, bad, values, unset = _seccomp_values(spec)
    if pod_bad is not None or bad:
        return 'seccompProfile', '{0} must not set securityContext.seccompProfile.type to {1}'.format(
            _setters(pod_bad is not None, bad), _quote(sorted(str(v) for v in values)))
    pod_set = 'seccompProfile' in _context(spec)
    if unset and not pod_set:
        return 'seccompProfile', 'pod or {0} must set securityContext.seccompProfile.type to "RuntimeDefault" ' \
                                 'or "Localhost"'.format(_named('container', unset))
    return None


BASELINE = (_apparmor, _host_namespaces, _host_ports, _host_probes, _privileged, _proc_mount, _selinux, _sysctls,
            _host_process)
BASELINE_ONLY = (_capabilities_baseline, _host_path_volumes, _seccomp_baseline)
RESTRICTED = (_allow_privilege_escalation, _capabilities_restricted, _restricted_volumes, _run_as_non_root,
              _run_as_user, _seccomp_restricted)


def violations(level, meta, spec):
    """'reason (detail), ...' of every check of `level` the pod breaks, '' when it passes."""
    if level == 'privileged':
        return ''
    checks = BASELINE + (RESTRICTED if level == 'restricted' else BASELINE_ONLY)
    found = [result for result in (check(meta or {}, spec or {}) for check in checks) if result]
    return ', '.join('{0} ({1})'.format(reason, detail) if detail else reason for reason, detail in found)


def label_errors(namespace):
    """[(field, message, reason)] of a namespace's Pod Security labels that do not parse."""
    labels = namespace['metadata'].get('labels') or {}
    causes = []
    for mode in MODES:
        for key, valid, why in ((mode, lambda v: v in LEVELS, 'must be one of ' + ', '.join(LEVELS)),
                                (mode + '-version', lambda v: v == 'latest' or VERSION.match(v),
                                 'must be "latest" or "v1.x"')):
            value = labels.get(LABEL_PREFIX + key)
            if value is not None and not valid(value):
                causes.append(('metadata.labels[{0}{1}]'.format(LABEL_PREFIX, key),
                               'Invalid value: "{0}": {1}'.format(value, why), 'FieldValueInvalid'))
    return causes


class PodSecurity:
    """The plugin with one PodSecurityConfiguration (its defaults and exempt namespaces)."""

    def __init__(self, configuration=None):
        configuration = copy.deepcopy(TALOS_DEFAULT if configuration is None else configuration)
        self.defaults = configuration.get('defaults') or {}
        self.exempt_namespaces = set((configuration.get('exemptions') or {}).get('namespaces') or ())
        self.exempt_runtime_classes = set((configuration.get('exemptions') or {}).get('runtimeClasses') or ())

    def policy(self, labels):
        """{mode: (level, version)} from a namespace's labels over the configured defaults. A label that does not
        parse counts as the plugin counts it: an enforce level as restricted, an audit or warn level as privileged,
        a version as latest."""
        policy = {}
        for mode in MODES:
            level = labels.get(LABEL_PREFIX + mode, self.defaults.get(mode, 'privileged'))
            version = labels.get(LABEL_PREFIX + mode + '-version', self.defaults.get(mode + '-version', 'latest'))
            if level not in LEVELS:
                level = 'restricted' if mode == 'enforce' else 'privileged'
            policy[mode] = (level, version if version == 'latest' or VERSION.match(version) else 'latest')
        return policy

    def check_namespace(self, rtype, namespace, old):
        """Refuses (422) Pod Security labels that do not parse, on an update only when they fail otherwise than
        before."""
        causes = label_errors(namespace)
        if causes and (old is None or causes != label_errors(old)):
            raise errors.invalid(rtype, namespace['metadata']['name'], causes)

    def admit(self, kind, name, namespace_obj, obj, warnings):
        """Refuses a Pod that breaks the enforce level (ApiError 403); adds to `warnings` what breaks the warn
        level, for a Pod or any workload with a pod template."""
        if kind != 'Pod' and kind not in TEMPLATE_PATHS:
            return
        namespace = namespace_obj['metadata']['name']
        if namespace in self.exempt_namespaces:
            return
        template = obj
        for key in TEMPLATE_PATHS.get(kind, ()):
            template = template.get(key) if isinstance(template, dict) else None
        if not isinstance(template, dict):
            return
        meta, spec = template.get('metadata') or {}, template.get('spec') or {}
        if spec.get('runtimeClassName') and spec['runtimeClassName'] in self.exempt_runtime_classes:
            return
        policy = self.policy(namespace_obj['metadata'].get('labels') or {})
        if kind == 'Pod':
            found = violations(policy['enforce'][0], meta, spec)
            if found:
                raise ApiError(403, 'Forbidden', 'pods "{0}" is forbidden: violates PodSecurity "{1}:{2}": {3}'.format(
                    name, policy['enforce'][0], policy['enforce'][1], found), {'name': name, 'kind': 'pods'})
        found = violations(policy['warn'][0], meta, spec)
        if found and warnings is not None:
            warnings.append('would violate PodSecurity "{0}:{1}": {2}'.format(
                policy['warn'][0], policy['warn'][1], found))
