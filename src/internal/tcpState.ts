/**
 * Whether the end of input a libuv socket reported was the peer's FIN or a reset, asked of the
 * kernel. libuv takes `POLLHUP` after a read that did not fill its buffer for end of file, without
 * reading again (`uv__stream_io`, libuv's `src/unix/stream.c`), so a RST that arrives right behind
 * the last bytes is reported as a clean end, and a Node peer cannot tell a cut-off answer from a
 * complete one. The kernel can: after a FIN the socket is still in its tables (CLOSE_WAIT, or
 * TIME_WAIT when this side had half-closed), after a RST it is gone (TCP_CLOSE unhashes it).
 */
import * as fs from "node:fs"
import * as os from "node:os"

/** The two ends of a connection, read while it was open (a reset socket no longer knows its peer). */
export interface Ends {
  readonly localAddress: string
  readonly localPort: number
  readonly remoteAddress: string
  readonly remotePort: number
}

/** The ends of `socket`, or `undefined` when it is not (or no longer) an IPv4 connection. @internal */
export const ends = (socket: {
  readonly localAddress?: string | undefined
  readonly localPort?: number | undefined
  readonly remoteAddress?: string | undefined
  readonly remotePort?: number | undefined
}): Ends | undefined => {
  const { localAddress, localPort, remoteAddress, remotePort } = socket
  return localAddress === undefined || localPort === undefined || remoteAddress === undefined ||
      remotePort === undefined || !/^\d+\.\d+\.\d+\.\d+$/.test(localAddress) ||
      !/^\d+\.\d+\.\d+\.\d+$/.test(remoteAddress)
    ? undefined
    : { localAddress, localPort, remoteAddress, remotePort }
}

// /proc/net/tcp prints an IPv4 address as the 32-bit value in host byte order, `%08X`.
const hexAddress = (address: string, port: number): string => {
  const octets = address.split(".").map(Number)
  if (os.endianness() === "LE") octets.reverse()
  return octets.map((o) => o.toString(16).padStart(2, "0")).join("").toUpperCase() + ":" +
    port.toString(16).padStart(4, "0").toUpperCase()
}

/**
 * After the end of input: `true` if the connection was reset (the kernel no longer has it),
 * `false` if it ended with a FIN, `undefined` when the kernel's tables cannot be read (not
 * Linux). Reads `/proc/net/tcp`: a few milliseconds with thousands of sockets; for clients and
 * tests, not for a server's every connection.
 *
 * @internal
 */
export const wasReset = (connection: Ends): boolean | undefined => {
  let table: string
  try {
    table = fs.readFileSync("/proc/net/tcp", "latin1")
  } catch {
    return undefined
  }
  // A line reads `  N: LOCAL REMOTE ST ...`, one space between fields: one search, no parse.
  return !table.includes(
    ` ${hexAddress(connection.localAddress, connection.localPort)} ${
      hexAddress(connection.remoteAddress, connection.remotePort)
    } `
  )
}
