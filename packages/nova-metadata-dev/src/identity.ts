/*
 * Which instance a request is about, decided as Nova's metadata handler does (reference.md §7.1).
 * With service_metadata_proxy on: the Neutron agent's headers, checked in Nova's order (X-Instance-ID,
 * X-Instance-ID-Signature, X-Tenant-ID present -> signature -> instance exists -> tenant matches), or,
 * when X-Metadata-Provider is present, the provider flow (X-Forwarded-For looked up among fixed IPs).
 * With it off: the socket peer address among the instances' fixed IPs; identity headers are ignored.
 */
import type { IncomingHttpHeaders } from 'node:http';
import {
  canonicalIp,
  forwardedForFromPeer,
  HEADER_FORWARDED_FOR,
  HEADER_INSTANCE_ID,
  HEADER_PROVIDER,
  HEADER_PROVIDER_SIGNATURE,
  HEADER_SIGNATURE,
  HEADER_TENANT_ID,
  type Logger,
  verifyInstanceSignature,
} from '@nmp/common';
import type { CompiledInstance } from './documents.js';

export const MSG_NO_INSTANCE_ID = 'X-Instance-ID header is missing from request.';
export const MSG_NO_SIGNATURE = 'X-Instance-ID-Signature header is missing from request.';
export const MSG_NO_TENANT_ID = 'X-Tenant-ID header is missing from request.';
export const MSG_NO_FORWARDED_FOR = 'X-Forwarded-For is missing from request.';
export const MSG_BAD_SIGNATURE = 'Invalid proxy request signature.';
export const MSG_UNKNOWN_ERROR = 'An unknown error has occurred. Please try your request again.';

/** Several instances claim one fixed IP: Nova's lookup by address then fails. */
export const AMBIGUOUS = Symbol('ambiguous');

export interface InstanceTable {
  readonly byUuid: ReadonlyMap<string, CompiledInstance>;
  readonly byIp: ReadonlyMap<string, CompiledInstance | typeof AMBIGUOUS>;
}

export function buildTable(instances: readonly CompiledInstance[]): InstanceTable {
  const byUuid = new Map<string, CompiledInstance>();
  const byIp = new Map<string, CompiledInstance | typeof AMBIGUOUS>();
  for (const inst of instances) {
    byUuid.set(inst.uuid, inst);
    for (const ip of new Set(inst.fixedIps)) byIp.set(ip, byIp.has(ip) ? AMBIGUOUS : inst);
  }
  return { byUuid, byIp };
}

export interface Identified {
  readonly instance: CompiledInstance;
  /** Nova's "address" of the request (EC2 local-ipv4 fallback): X-Forwarded-For or the peer; may be absent. */
  readonly address: string | undefined;
}

export interface Refused {
  readonly status: number;
  /** Nova's explanation; undefined = webob's default for the status. */
  readonly explanation: string | undefined;
}

export interface IdentifyContext {
  readonly table: InstanceTable;
  readonly secret: string;
  readonly serviceMetadataProxy: boolean;
  readonly log: Logger;
}

const NOT_FOUND: Refused = Object.freeze({ status: 404, explanation: undefined });

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

export function identify(
  ctx: IdentifyContext,
  headers: IncomingHttpHeaders,
  peer: string | undefined,
): Identified | Refused {
  if (!ctx.serviceMetadataProxy) return byPeerAddress(ctx, headers, peer);
  if (header(headers, HEADER_PROVIDER)) return byProvider(ctx, headers);
  return byInstanceId(ctx, headers);
}

function byInstanceId(ctx: IdentifyContext, headers: IncomingHttpHeaders): Identified | Refused {
  const instanceId = header(headers, HEADER_INSTANCE_ID);
  const tenantId = header(headers, HEADER_TENANT_ID);
  const signature = header(headers, HEADER_SIGNATURE);
  const address = header(headers, HEADER_FORWARDED_FOR);
  if (instanceId === undefined) return { status: 400, explanation: MSG_NO_INSTANCE_ID };
  if (signature === undefined) return { status: 400, explanation: MSG_NO_SIGNATURE };
  if (tenantId === undefined) return { status: 400, explanation: MSG_NO_TENANT_ID };
  if (signature === '' || !verifyInstanceSignature(ctx.secret, instanceId, signature)) {
    // Nova used to log the expected signature too, which lets a log reader forge requests; we log
    // neither it nor the whole received one (valid for whichever secret the sender holds).
    if (instanceId !== '')
      ctx.log.warn(
        { signaturePrefix: signature.slice(0, 8), instanceId, forwardedFor: address },
        'X-Instance-ID-Signature does not match the expected value',
      );
    return { status: 403, explanation: MSG_BAD_SIGNATURE };
  }
  const instance = ctx.table.byUuid.get(instanceId);
  if (instance === undefined) {
    ctx.log.error({ instanceId }, 'Failed to get metadata for instance id');
    return NOT_FOUND;
  }
  if (instance.projectId !== tenantId) {
    ctx.log.warn({ tenantId, instanceId }, 'Tenant_id does not match tenant_id of instance');
    return NOT_FOUND;
  }
  return { instance, address };
}

function byProvider(ctx: IdentifyContext, headers: IncomingHttpHeaders): Identified | Refused {
  const forwardedFor = header(headers, HEADER_FORWARDED_FOR);
  if (forwardedFor === undefined) return { status: 400, explanation: MSG_NO_FORWARDED_FOR };
  const provider = header(headers, HEADER_PROVIDER)!;
  const address = forwardedFor.split(',')[0]!;
  if (ctx.secret !== '') {
    const signature = header(headers, HEADER_PROVIDER_SIGNATURE);
    if (!signature || !verifyInstanceSignature(ctx.secret, provider, signature)) {
      ctx.log.warn(
        { signaturePrefix: signature?.slice(0, 8), provider, forwardedFor: address },
        'X-Metadata-Provider-Signature does not match the expected value',
      );
      return { status: 403, explanation: MSG_BAD_SIGNATURE };
    }
  }
  // Nova asks Neutron for the port with that IP on the provider's networks; any failure is a 400.
  const ip = canonicalIp(address.trim());
  const found = ip === undefined ? undefined : ctx.table.byIp.get(ip);
  if (found === undefined || found === AMBIGUOUS) {
    ctx.log.error({ provider, requester: address }, 'Failed to get instance id for metadata request');
    return { status: 400, explanation: MSG_UNKNOWN_ERROR };
  }
  return { instance: found, address };
}

function byPeerAddress(
  ctx: IdentifyContext,
  headers: IncomingHttpHeaders,
  peer: string | undefined,
): Identified | Refused {
  if (header(headers, HEADER_INSTANCE_ID)) {
    ctx.log.warn(
      "X-Instance-ID present in request headers. The 'service_metadata_proxy' option must be enabled to process this header.",
    );
  }
  const address = forwardedForFromPeer(peer);
  const ip = address === undefined ? undefined : canonicalIp(address);
  const found = ip === undefined ? undefined : ctx.table.byIp.get(ip);
  if (found === AMBIGUOUS) {
    ctx.log.error({ address }, 'Failed to get metadata for IP: several instances have this fixed IP');
    return { status: 500, explanation: MSG_UNKNOWN_ERROR };
  }
  if (found === undefined) {
    ctx.log.error({ address }, 'Failed to get metadata for IP: no metadata');
    return NOT_FOUND;
  }
  return { instance: found, address };
}
