/*
 * The shape of a Neutron network or router id, as every program here accepts it: in the headers the
 * proxy stamps and the agent reads, on the command lines, in the daemon's control protocol, in neutron's
 * haproxy files. Neutron's ids are UUIDs; short names are accepted so that test clouds can use them. An id
 * becomes part of namespace names (`qdhcp-<id>`), file names (`<id>.pid.ns-metadata-proxy`) and log lines,
 * so nothing that separates or escapes anything is allowed: letters, digits, `.`, `_` and `-`, starting
 * with a letter or digit (no `..`-led path, no option-like `-x`), 128 characters at most.
 */

export const NEUTRON_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Whether `id` is a well-formed network or router id. */
export function isNeutronId(id: string): boolean {
  return NEUTRON_ID_PATTERN.test(id);
}
