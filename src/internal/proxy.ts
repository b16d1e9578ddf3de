/**
 * The PROXY protocol (v1 and v2), as an L4 load balancer (HAProxy's `send-proxy`/`send-proxy-v2`,
 * Envoy, a cloud NLB) sends it ahead of a connection's bytes: who the real client is. Accepted only
 * from trusted sources, within a time limit; framed here (how long the header is), parsed by
 * `proxy-protocol-js` (a parser from the registry: no dependencies, both versions, typed).
 */
import { buffersArray, matchRead } from "#line/types"
import type { Duration } from "effect"
import { Effect, Option } from "effect"
import * as net from "node:net"
import type * as Parser from "proxy-protocol-js"
import type * as Connection from "../Connection.js"
import * as Checked from "./checked.js"
import type * as Driven from "./connection.js"

/**
 * The parser, loaded by the first server that takes the PROXY protocol ({@link load}): a server
 * without it, and the core's import, never load it.
 */
let parser: typeof Parser | undefined

/**
 * Loads the parser, once per process: a server with `proxyProtocol` set runs it before it listens.
 *
 * @internal
 */
export const load: Effect.Effect<void> = Effect.suspend(() =>
  parser !== undefined ? Effect.void : Effect.map(
    Effect.promise(() => import("proxy-protocol-js")),
    (module) => {
      parser = module
    }
  )
)

/**
 * The policy, checked: who may send a header, and how long it may take.
 *
 * @internal
 */
export interface Policy {
  readonly trusted: ReadonlyArray<Cidr>
  readonly timeout: Duration.Duration
}

/** @internal */
export interface Cidr {
  readonly base: number
  readonly mask: number
  readonly text: string
}

/** An IPv4 network (`10.0.0.0/8`) or address (`10.1.2.3`), or why not. @internal */
export const cidr = (text: string): Checked.Checked<Cidr, string> => {
  const [address, bits, ...rest] = text.split("/")
  const prefix = bits === undefined ? 32 : Number(bits)
  if (
    address === undefined || rest.length > 0 || !net.isIPv4(address) || !/^\d{1,2}$/.test(bits ?? "32") || prefix > 32
  ) {
    return Checked.invalid(`${JSON.stringify(text)} is not an IPv4 network such as 10.0.0.0/8 or an address`)
  }
  const mask = prefix === 0 ? 0 : (0xFFFFFFFF << (32 - prefix)) >>> 0
  return Checked.valid({ base: (toNumber(address) & mask) >>> 0, mask, text })
}

const toNumber = (address: string): number =>
  address.split(".").reduce((n, octet) => ((n << 8) | Number(octet)) >>> 0, 0)

/** Whether `address` (as Node reports a peer: `127.0.0.1`, or `::ffff:127.0.0.1`) is trusted. @internal */
export const isTrusted = (policy: Policy, address: string | undefined): boolean => {
  if (address === undefined) return false
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address
  if (!net.isIPv4(v4)) return false
  const n = toNumber(v4)
  return policy.trusted.some((range) => ((n & range.mask) >>> 0) === range.base)
}

/**
 * Why a connection was refused before it was served, counted under
 * `echo_connections_dropped_total{reason}`.
 *
 * @internal
 */
export type Refusal = "proxy_untrusted" | "proxy_malformed" | "proxy_timeout"

const v2Signature = Buffer.from([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A])
const v1Prefix = Buffer.from("PROXY ")
/** A v1 header is at most 107 bytes, CRLF included (the protocol's own limit). */
const v1Max = 107
/** A v2 header's length field is 16 bits: at most 16 + 65535 bytes. */

/**
 * How long the header at the start of `bytes` is: its length once whole, `undefined` while more
 * is needed, or `"invalid"` when these bytes cannot start one.
 *
 * @internal
 */
export const frame = (bytes: Buffer): number | undefined | "invalid" => {
  const probe = Math.min(bytes.length, v2Signature.length)
  if (bytes.subarray(0, probe).equals(v2Signature.subarray(0, probe))) {
    if (bytes.length < 16) return undefined
    if ((bytes[12]! & 0xF0) !== 0x20) return "invalid"
    const length = 16 + bytes.readUInt16BE(14)
    return bytes.length >= length ? length : undefined
  }
  const prefix = Math.min(bytes.length, v1Prefix.length)
  if (!bytes.subarray(0, prefix).equals(v1Prefix.subarray(0, prefix))) return "invalid"
  const end = bytes.indexOf("\r\n")
  if (end >= 0) return end + 2 <= v1Max ? end + 2 : "invalid"
  return bytes.length >= v1Max ? "invalid" : undefined
}

/**
 * The real client a whole header names, as `HOST:PORT`; `undefined` when it names none (a v2
 * `LOCAL` command, the proxy's own health check, or v1 `UNKNOWN`): the socket's peer stands.
 * `"invalid"` when the parser refuses it.
 *
 * @internal
 */
export const client = (header: Buffer): string | undefined | "invalid" => {
  if (parser === undefined) throw new Error("proxy.load must run before a header is parsed")
  const { Command, IPv4ProxyAddress, IPv6ProxyAddress, V1ProxyProtocol, V2ProxyProtocol } = parser
  try {
    if (header[0] === v2Signature[0]) {
      const parsed = V2ProxyProtocol.parse(header)
      if (parsed.command === Command.LOCAL) return undefined
      const address = parsed.proxyAddress
      if (address instanceof IPv4ProxyAddress) return `${address.sourceAddress.address.join(".")}:${address.sourcePort}`
      if (address instanceof IPv6ProxyAddress) {
        return `[${ipv6(address.sourceAddress.address)}]:${address.sourcePort}`
      }
      return undefined
    }
    const text = header.toString("latin1")
    // v1's UNKNOWN (the proxy could not tell, or its own connection): the socket's peer stands.
    if (text.startsWith("PROXY UNKNOWN")) return undefined
    const parsed = V1ProxyProtocol.parse(text)
    // The parser takes any dotted text for an address and any number for a port: a header with
    // either end that is not one is malformed, the destination as much as the source.
    const six = parsed.inetProtocol === "TCP6"
    if (!endpoint(six, parsed.source) || !endpoint(six, parsed.destination)) return "invalid"
    const { ipAddress, port } = parsed.source
    return `${six ? `[${ipAddress}]` : ipAddress}:${port}`
  } catch {
    return "invalid"
  }
}

/**
 * Whether a v1 header's address and port are an address of its family and a TCP port. The
 * parser reads a port as decimal digits only: what is left to check is its range.
 */
const endpoint = (six: boolean, end: { readonly ipAddress: string; readonly port: number }): boolean =>
  (six ? net.isIPv6(end.ipAddress) : net.isIPv4(end.ipAddress)) && end.port <= 65535

const ipv6 = (octets: ReadonlyArray<number>): string => {
  const groups: Array<string> = []
  for (let i = 0; i + 1 < octets.length; i += 2) groups.push(((octets[i]! << 8) | octets[i + 1]!).toString(16))
  return groups.join(":")
}

/**
 * Reads the header from the start of `connection`, within the policy's time, and gives back what
 * came after it. Succeeds with the client it names (or `undefined`: the socket's peer stands),
 * or fails with why the connection is refused, or with the connection's own error when it ended
 * under the read (the peer reset it: a health check's way to close, not a bad header).
 *
 * @internal
 */
export const read = (
  connection: Driven.Driven,
  policy: Policy
): Effect.Effect<string | undefined, Refusal | Connection.ConnectionError> => {
  let buffered = Buffer.alloc(0)
  const more: Effect.Effect<string | undefined, Refusal | Connection.ConnectionError> = matchRead(connection.read, {
    // The end of input before a whole header: no header.
    onEnd: () => Effect.fail("proxy_malformed" as const),
    onFailure: (error) => Effect.fail(error),
    onBuffers: (chunk) => {
      for (const part of buffersArray(chunk)) {
        buffered = buffered.length === 0
          ? Buffer.from(part)
          : Buffer.concat([buffered, part])
      }
      const length = frame(buffered)
      if (length === undefined) return more
      if (length === "invalid") return Effect.fail("proxy_malformed" as const)
      const named = client(buffered.subarray(0, length))
      if (named === "invalid") return Effect.fail("proxy_malformed" as const)
      if (buffered.length > length) connection.unread(buffered.subarray(length))
      return Effect.succeed(named)
    }
  })
  return Effect.flatMap(
    Effect.timeoutOption(more, policy.timeout),
    Option.match({ onNone: () => Effect.fail("proxy_timeout" as const), onSome: Effect.succeed })
  )
}
