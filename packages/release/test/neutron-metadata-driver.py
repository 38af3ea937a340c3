"""neutron's own metadata proxy driver, as the DHCP agent calls it (Debian's python3-neutron).

    neutron-metadata-driver.py spawn|destroy <namespace> <network-id> <state_path> <agent socket>

spawn: MetadataDriver.spawn_monitored_metadata_proxy writes
<state_path>/ns-metadata-proxy/<network-id>.conf and runs `haproxy -f` on it in the namespace through
neutron's ProcessManager, exactly as neutron-dhcp-agent does; prints the process manager's view (active,
pid, the process's command line). destroy: destroy_monitored_metadata_proxy (SIGTERM, wait, SIGKILL,
delete the config and the pid file); prints the view again.

Run as root: the privileged calls run in this process (privsep's client mode off) instead of through a
privsep daemon started by sudo/rootwrap, which is how neutron's own functional tests run them.
"""
import json
import sys

from oslo_config import cfg
from oslo_log import log as logging

from neutron.conf import common as common_conf
from neutron.conf.agent import common as agent_conf
from neutron.conf.agent.metadata import config as meta_conf
import neutron.privileged as privileged

for ctx in (privileged.default, privileged.dhcp_release_cmd, privileged.namespace_cmd,
            privileged.link_cmd):
    ctx.set_client_mode(False)

from neutron.agent.linux import external_process  # noqa: E402
from neutron.agent.metadata import driver  # noqa: E402

action, ns, net, state_path, socket_path = sys.argv[1:6]
conf = cfg.CONF
logging.register_options(conf)
common_conf.register_core_common_config_opts(conf)
agent_conf.register_external_process_opts(conf)
agent_conf.register_root_helper(conf)
agent_conf.register_process_monitor_opts(conf)
meta_conf.register_meta_conf_opts(meta_conf.SHARED_OPTS, conf)
conf([], project='neutron')
conf.set_override('state_path', state_path)
conf.set_override('external_pids', state_path + '/external/pids')
conf.set_override('metadata_proxy_socket', socket_path)
conf.set_override('root_helper', '', 'AGENT')
conf.set_override('check_child_processes_interval', 0, 'AGENT')
monitor = external_process.ProcessMonitor(config=conf, resource_type='dhcp')


def view():
    pm = driver.MetadataDriver._get_metadata_proxy_process_manager(net, conf, ns_name=ns)
    cmdline = None
    if pm.active:
        with open('/proc/%d/cmdline' % pm.pid) as f:
            cmdline = [a for a in f.read().split('\0') if a]
    return {'active': pm.active, 'pid': pm.pid, 'cmdline': cmdline}


if action == 'spawn':
    driver.MetadataDriver.spawn_monitored_metadata_proxy(
        monitor, ns, 80, conf, bind_address='169.254.169.254', network_id=net)
elif action == 'destroy':
    driver.MetadataDriver.destroy_monitored_metadata_proxy(monitor, net, conf, ns)
else:
    sys.exit('usage: neutron-metadata-driver.py spawn|destroy NS NET STATE_PATH SOCKET')
print(json.dumps(view()))
