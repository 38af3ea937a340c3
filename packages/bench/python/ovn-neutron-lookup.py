#!/usr/bin/python3
# neutron's own OVN metadata lookup, timed: neutron's OvsdbSbOvnIdl (python3-neutron) connected to the
# Southbound the benchmark built, then get_network_port_bindings_by_ip (what neutron-ovn-metadata-agent calls
# for every request: a scan of every Port_Binding row) for each sample, `repeat` times. The IDL registers
# the tables neutron's metadata agent registers, unconditionally, as it does.
# argv: REMOTE SAMPLES_JSON REPEAT      prints one JSON line
import json
import sys
import time

from ovs.db import idl as ovs_idl
from ovsdbapp.backend.ovs_idl import connection, idlutils

from neutron.plugins.ml2.drivers.ovn.mech_driver.ovsdb import impl_idl_ovn

remote, samples_file, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
samples = json.load(open(samples_file))

t0 = time.perf_counter()
helper = idlutils.get_schema_helper(remote, 'OVN_Southbound')
for table in ('Encap', 'Port_Binding', 'Datapath_Binding', 'SB_Global', 'Chassis'):
    helper.register_table(table)
idl = ovs_idl.Idl(remote, helper)
sb = impl_idl_ovn.OvsdbSbOvnIdl(connection.Connection(idl, timeout=600))
rows = len(idl.tables['Port_Binding'].rows)
load_s = time.perf_counter() - t0

times_ms = []
wrong = 0
for _ in range(repeat):
    for network, ip, expected in samples:
        t = time.perf_counter()
        ports = sb.get_network_port_bindings_by_ip(network, ip)
        times_ms.append((time.perf_counter() - t) * 1000)
        if len(ports) != 1 or ports[0].external_ids.get('neutron:device_id') != expected:
            wrong += 1
print(json.dumps({'loadS': load_s, 'rows': rows, 'timesMs': times_ms, 'wrong': wrong}))
