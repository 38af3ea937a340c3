// The instances of the boot storms (boot-storm.mjs, ovn.mjs): the same addressing and the same Nova
// documents in both, so that their figures compare. Instance k asks from its own loopback address.
export const STORM_PROJECT = 'c0ffee00aabbccddeeff001122334455';

const hex = (n, w) => n.toString(16).padStart(w, '0');

/** Instance k: its address (127.20.0.1 ...), uuid, port and MAC. */
export function stormInstance(k) {
  return {
    ip: `127.20.${Math.floor(k / 250)}.${(k % 250) + 1}`,
    uuid: `5707a000-0000-4000-8000-${hex(k, 12)}`,
    portId: `5707b000-0000-4000-8000-${hex(k, 12)}`,
    mac: `fa:16:3e:20:${hex(k >> 8, 2)}:${hex(k & 255, 2)}`,
    name: `storm-${k}`,
  };
}

/** nova-metadata-dev's record of a storm instance on `networkId` (link MTU as the network's). */
export function stormNovaInstance(i, networkId, mtu) {
  return {
    uuid: i.uuid,
    project_id: STORM_PROJECT,
    name: i.name,
    hostname: i.name,
    user_data: `#cloud-config\nhostname: ${i.name}\n`,
    vendor_data: { nmp: { environment: 'boot-storm' } },
    vendor_data2: { target: { instance: i.name } },
    network_data: {
      links: [{ id: 'tap0', vif_id: i.portId, type: 'ovs', mtu, ethernet_mac_address: i.mac }],
      networks: [{ id: 'network0', type: 'ipv4_dhcp', link: 'tap0', network_id: networkId }],
      services: [],
    },
    fixed_ips: [i.ip],
  };
}
