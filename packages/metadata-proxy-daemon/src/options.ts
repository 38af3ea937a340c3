/*
 * The daemon's configuration schema. What a listener does with a request (timeouts, size limits, rate
 * limits, the agent socket, logging) is the per-namespace proxy's own schema, reused option by option,
 * so one ini file configures both modes. What is new is where the daemon keeps its state, its control
 * socket, how it enters namespaces and how often it looks for vanished ones.
 */
import { opt, stateOptions } from '@nmp/common';
import { proxyOptions } from '@nmp/ns-metadata-proxy';

const {
  bind: _bind,
  networkId: _networkId,
  routerId: _routerId,
  ovnNetworkId: _ovnNetworkId,
  haproxyConfig: _haproxyConfig,
  pidFile: _pidFile,
  // The proxy's own (a literal default: it has no state_path); the daemon's is below state_path.
  socketPath: _socketPath,
  ...servingOptions
} = proxyOptions;

export const daemonOptions = {
  ...stateOptions,
  ...servingOptions,
  user: opt.string({
    name: 'metadata_proxy_user',
    default: '',
    help: "User (name or uid) of the serving process; empty = the daemon's own. The supervisor stays root to enter namespaces",
  }),
  group: opt.string({
    name: 'metadata_proxy_group',
    default: '',
    help: "Group (name or gid) of the serving process; empty = the user's primary group, or the daemon's",
  }),
  daemonStateDir: opt.string({
    name: 'daemon_state_dir',
    default: '$state_path/nmp-metadata-proxy-daemon',
    help: 'Directory of the attachments file (restored at start); mode 0700',
  }),
  controlSocket: opt.string({
    name: 'daemon_control_socket',
    default: '$state_path/nmp-metadata-proxy-daemon/control.sock',
    help: 'UNIX socket (mode 0600, root only) on which the hooks attach and detach namespaces',
  }),
  netnsExec: opt.enum({
    name: 'netns_exec',
    default: 'nsenter',
    choices: ['nsenter', 'ip', 'python'] as const,
    help: "How listeners are created in a namespace: a Node helper per namespace entered with 'nsenter --net=' (network namespace only) or 'ip netns exec' (also a mount namespace and /sys); or 'python': one python3 helper per batch of namespaces (setns), far faster for many namespaces",
  }),
  pythonCommand: opt.string({
    name: 'python_command',
    default: '/usr/bin/python3',
    help: 'The python3 the batch helper runs with (netns_exec = python); a full path: no PATH lookup by a root service',
  }),
  attachConcurrency: opt.int({
    name: 'attach_concurrency',
    default: 8,
    min: 1,
    max: 256,
    help: 'Listener helpers running at once (restore after a restart, bursts of attach requests)',
  }),
  helperTimeout: opt.float({
    name: 'listener_helper_timeout',
    default: 15,
    min: 0.5,
    help: 'Seconds a listener helper may take to hand over its sockets',
  }),
  namespaceCheckInterval: opt.float({
    name: 'namespace_check_interval',
    default: 10,
    min: 0.1,
    help: 'Seconds between checks that every attached namespace still exists (and /run/netns is watched too)',
  }),
};
