#!/usr/bin/python3
"""neutron-server's RPC side for the tests, made of neutron's own code (Debian python3-neutron).

Runs oslo.messaging RPC servers the way neutron-server does (eventlet, neutron_lib.rpc, the
RequestContextSerializer) on topic q-plugin with neutron's real MetadataRpcCallback, and on topic
q-reports-plugin with neutron's real AgentExtRpcCallback. Only the core plugin under them is a stub:
get_ports filters a list of ports the way neutron's DB query does, and create_or_update_agent records
the report. It can also act as neutron's own metadata agent (MetadataPluginAPI, MetadataProxyHandler,
PluginReportStateAPI), so that a test compares what ours sends with what neutron's sends.

Protocol: JSON lines. stdout carries events: {"event": "ready"}, {"event": "get_ports", "filters",
"context", "t"}, {"event": "report_state", "agent_state", "time", "t"}, {"event": "result", "id", ...}.
stdin carries commands: {"cmd": "ports", "ports": [...]}, {"cmd": "delay", "ms": N}, {"cmd": "fail", "message"}, {"cmd": "ignore_filters", "on"}, {"cmd": "quiet",
"on": bool}, {"cmd": "stats", "id"}, {"cmd": "per_address"}, {"cmd": "reset_stats"}, {"cmd": "neutron_get_ports", "id", "filters"}, {"cmd":
"neutron_lookup", "id", "headers"}, {"cmd": "neutron_report", "id", "state", "use_call"}, {"cmd": "quit"}.

The transport URL comes from the environment (NMP_TRANSPORT_URL), never from argv: it holds a password.
"""

from neutron.common import eventlet_utils

eventlet_utils.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import eventlet  # noqa: E402
from eventlet import tpool  # noqa: E402
from oslo_config import cfg  # noqa: E402
import oslo_messaging  # noqa: E402

from neutron_lib import context as n_context  # noqa: E402
from neutron_lib.plugins import constants as plugin_constants  # noqa: E402
from neutron_lib.plugins import directory  # noqa: E402
from neutron_lib import rpc as n_rpc  # noqa: E402

from neutron.common import cache_utils  # noqa: E402
from neutron.conf.agent import common as agent_conf  # noqa: E402
from neutron.conf.agent.metadata import config as meta_conf  # noqa: E402
from neutron.conf import common as common_conf  # noqa: E402
from neutron.conf import service as service_conf  # noqa: E402

_out_lock = threading.Lock()


def emit(event, **fields):
    fields['event'] = event
    line = json.dumps(fields, default=str, sort_keys=False)
    with _out_lock:
        sys.stdout.write(line + '\n')
        sys.stdout.flush()


class State(object):
    ports = []
    # Indexes, as a database has them: ip -> ports, mac -> ports, device_id -> ports.
    by_ip = {}
    by_mac = {}
    by_device = {}
    delay_s = 0.0
    quiet = False
    get_ports_calls = 0
    reports = 0
    fail = None
    ignore_filters = False
    per_ip = {}


def _matches(port, filters):
    """neutron's list filters: a list means 'any of'; fixed_ips matches on any of its fixed IPs."""
    for key, wanted in (filters or {}).items():
        if key == 'fixed_ips':
            ips = [f.get('ip_address') for f in port.get('fixed_ips', [])]
            subnets = [f.get('subnet_id') for f in port.get('fixed_ips', [])]
            if 'ip_address' in wanted and not set(ips) & set(wanted['ip_address']):
                return False
            if 'subnet_id' in wanted and not set(subnets) & set(wanted['subnet_id']):
                return False
            continue
        if key == 'mac_address':
            # neutron: func.lower(Port.mac_address).in_(sanitized macs)
            if str(port.get(key) or '').lower() not in [str(m).lower() for m in wanted]:
                return False
            continue
        if port.get(key) not in list(wanted):
            return False
    return True


def set_ports(ports):
    State.ports = ports
    State.by_ip, State.by_mac, State.by_device = {}, {}, {}
    for p in ports:
        for f in p.get('fixed_ips', []):
            State.by_ip.setdefault(f.get('ip_address'), []).append(p)
        State.by_mac.setdefault(str(p.get('mac_address') or '').lower(), []).append(p)
        State.by_device.setdefault(p.get('device_id'), []).append(p)


def _candidates(filters):
    """The ports an index narrows the query to (all of them when no indexed filter is given)."""
    filters = filters or {}
    picked = None
    ips = (filters.get('fixed_ips') or {}).get('ip_address')
    if ips is not None:
        picked = [p for ip in ips for p in State.by_ip.get(ip, [])]
    elif filters.get('mac_address') is not None:
        picked = [p for m in filters['mac_address'] for p in State.by_mac.get(str(m).lower(), [])]
    elif filters.get('device_id') is not None:
        picked = [p for d in filters['device_id'] for p in State.by_device.get(d, [])]
    if picked is None:
        return State.ports
    seen, out = set(), []
    for p in picked:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


class StubCorePlugin(object):
    """The core plugin under neutron's real RPC callbacks: a list of ports instead of a database."""

    def get_ports(self, context, filters=None, fields=None, sorts=None, limit=None, marker=None,
                  page_reverse=False):
        State.get_ports_calls += 1
        for ip in ((filters or {}).get('fixed_ips') or {}).get('ip_address') or []:
            State.per_ip[ip] = State.per_ip.get(ip, 0) + 1
        if not State.quiet:
            emit('get_ports', filters=filters, context=context.to_dict(), t=time.time())
        if State.delay_s:
            eventlet.sleep(State.delay_s)
        if State.fail:
            raise RuntimeError(State.fail)
        if State.ignore_filters:  # a broken server, for the agent's own re-check
            return [dict(p) for p in State.ports]
        return [dict(p) for p in _candidates(filters) if _matches(p, filters)]

    def create_or_update_agent(self, context, agent_state, agent_timestamp=None):
        State.reports += 1
        emit('report_state', agent_state=agent_state, time=str(agent_timestamp), t=time.time(),
             context=context.to_dict())
        return 'new' if State.reports == 1 else 'alive', agent_state


def configure(args):
    common_conf.register_core_common_config_opts()
    service_conf.register_service_opts(service_conf.RPC_EXTRA_OPTS)
    meta_conf.register_meta_conf_opts(meta_conf.SHARED_OPTS)
    meta_conf.register_meta_conf_opts(meta_conf.METADATA_PROXY_HANDLER_OPTS)
    cache_utils.register_oslo_configs(cfg.CONF)
    agent_conf.register_agent_state_opts_helper(cfg.CONF)
    oslo_messaging.set_transport_defaults(control_exchange=args.exchange)
    lines = [
        '[DEFAULT]',
        'transport_url = %s' % os.environ['NMP_TRANSPORT_URL'],
        'rpc_response_timeout = %d' % args.rpc_timeout,
        'host = %s' % args.host,
        '[database]',
        'connection = sqlite://',
        '[oslo_messaging_rabbit]',
        'amqp_durable_queues = %s' % args.durable,
        'heartbeat_timeout_threshold = 10',
        '[AGENT]',
        'report_interval = %d' % max(1, args.rpc_timeout),
    ]
    fd, path = tempfile.mkstemp(suffix='.conf')
    with os.fdopen(fd, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    try:
        cfg.CONF(['--config-file', path], project='neutron')
    finally:
        os.unlink(path)
    n_rpc.init(cfg.CONF)


def start_servers(args):
    from neutron.api.rpc.handlers import metadata_rpc
    from neutron.db import agents_db

    directory.add_plugin(plugin_constants.CORE, StubCorePlugin())
    servers = []
    if 'plugin' in args.topics:
        target = oslo_messaging.Target(topic='q-plugin', server=args.host)
        servers.append(n_rpc.get_server(target, [metadata_rpc.MetadataRpcCallback()]))
    if 'reports' in args.topics:
        # Reports stamped before the server started are skipped by neutron: start the clock now.
        agents_db.AgentExtRpcCallback.START_TIME = agents_db.timeutils.utcnow()
        target = oslo_messaging.Target(topic='q-reports-plugin', server=args.host)
        servers.append(n_rpc.get_server(target, [agents_db.AgentExtRpcCallback()]))
    for s in servers:
        s.start()
    return servers


class NeutronAgentSide(object):
    """neutron's own metadata agent client code, for comparisons."""

    def __init__(self):
        from neutron.agent.metadata import agent as metadata_agent
        from neutron.agent import rpc as agent_rpc
        cfg.CONF.set_override('enabled', False, group='cache')
        self.api = metadata_agent.MetadataPluginAPI('q-plugin')
        self.handler = metadata_agent.MetadataProxyHandler(cfg.CONF)
        self.reports = agent_rpc.PluginReportStateAPI('q-reports-plugin')

    def get_ports(self, filters):
        return self.api.get_ports(n_context.get_admin_context_without_session(), filters)

    def lookup(self, headers):
        import webob
        req = webob.Request.blank('/', headers=headers)
        return self.handler._get_instance_and_tenant_id(req)

    def report(self, state, use_call):
        return self.reports.report_state(n_context.get_admin_context_without_session(), state,
                                         use_call=use_call)


def handle(cmd, neutron_side):
    name = cmd.get('cmd')
    if name == 'ports':
        set_ports(cmd['ports'])
        return {'count': len(State.ports)}
    if name == 'delay':
        State.delay_s = float(cmd['ms']) / 1000.0
        return {}
    if name == 'fail':
        State.fail = cmd.get('message') or None
        return {}
    if name == 'ignore_filters':
        State.ignore_filters = bool(cmd['on'])
        return {}
    if name == 'quiet':
        State.quiet = bool(cmd['on'])
        return {}
    if name == 'stats':
        return {'get_ports_calls': State.get_ports_calls, 'reports': State.reports,
                'max_per_address': max(State.per_ip.values() or [0])}
    if name == 'per_address':
        return {'per_address': State.per_ip}
    if name == 'reset_stats':
        State.get_ports_calls = 0
        State.per_ip = {}
        return {}
    if name == 'neutron_get_ports':
        return {'result': neutron_side().get_ports(cmd['filters'])}
    if name == 'neutron_lookup':
        instance, tenant = neutron_side().lookup(cmd['headers'])
        return {'result': [instance, tenant]}
    if name == 'neutron_report':
        return {'result': neutron_side().report(cmd['state'], bool(cmd.get('use_call')))}
    raise ValueError('unknown command %r' % name)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--host', default='neutron-server-test')
    parser.add_argument('--topics', default='plugin,reports')
    parser.add_argument('--exchange', default='neutron')
    parser.add_argument('--durable', default='false')
    parser.add_argument('--rpc-timeout', type=int, default=5)
    args = parser.parse_args()
    args.topics = args.topics.split(',')
    configure(args)
    servers = start_servers(args)
    side = []

    def neutron_side():
        if not side:
            side.append(NeutronAgentSide())
        return side[0]

    emit('ready', pid=os.getpid())

    def run(cmd):
        try:
            out = handle(cmd, neutron_side)
            emit('result', id=cmd.get('id'), **out)
        except Exception as exc:  # the test sees the failure instead of a hang
            emit('result', id=cmd.get('id'), error='%s: %s' % (type(exc).__name__, exc))

    while True:
        # A real thread reads stdin, so that the green threads of the RPC servers keep running.
        line = tpool.execute(sys.stdin.readline)
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        if cmd.get('cmd') == 'quit':
            break
        eventlet.spawn_n(run, cmd)
    for s in servers:
        s.stop()
    emit('stopped')
    os._exit(0)


if __name__ == '__main__':
    main()
