/**
 * The soak's verdicts, pure: how one peer's connection ended, seen from the peer, and whether a
 * server process leaked descriptors or memory across the run. The peers and the sampler observe;
 * these functions decide; the tests in test/Soak.test.ts pin each rule.
 */

/**
 * How a peer's connection ended, from the peer's side.
 * - `complete`: every byte sent came back, then the server's FIN.
 * - `complete+reset`: every byte came back, then a RST: nothing lost, and nothing claimed.
 * - `reset`: cut off by a RST: the peer knows its answer is not whole (detected).
 * - `refused`: the port was closed (the server was restarting).
 * - `abandoned`: the peer reset or left by its own plan first; what came until then was right.
 * - `rejected`: with `--proxy-protocol`, a malformed header refused with a RST, as documented.
 * - `accepted`: with `--proxy-protocol`, a malformed header served as if it were valid.
 * - `closed`: an HTTP exchange that ended without a whole answer (no status line, or a body
 *   shorter than its Content-Length): an HTTP client sees the error, unlike a TCP one.
 * - `short+FIN`: fewer bytes than sent, then a clean FIN: the undetected loss this test hunts.
 * - `corrupt`: a byte that differs from the one sent, more bytes than sent, or an HTTP answer
 *   that is wrong for its request.
 * - `hang`: no end within the peer's bound.
 * - `error`: an error that is neither a reset nor a refusal (ETIMEDOUT, EHOSTUNREACH, ...).
 */
export type Outcome =
  | "complete"
  | "complete+reset"
  | "reset"
  | "refused"
  | "abandoned"
  | "rejected"
  | "accepted"
  | "closed"
  | "short+FIN"
  | "corrupt"
  | "hang"
  | "error"

/** The outcomes that fail the run. `accepted` is reported, not failed: it loses nothing. */
export const failures: ReadonlySet<Outcome> = new Set<Outcome>(["short+FIN", "corrupt", "hang", "error"])

/** How the connection's end reached the peer. */
export type End =
  /** The end of input, which the kernel confirmed was a FIN (the socket still in its tables). */
  | "fin"
  /** ECONNRESET or EPIPE, or an end of input the kernel showed was a RST. */
  | "reset"
  | "refused"
  /** The peer's bound passed first. */
  | "timeout"
  /** The peer reset or destroyed its socket by plan before any end came. */
  | "abandoned"
  | { readonly error: string }

/** What an echo peer saw. */
export interface EchoSeen {
  /** The bytes whose echo the peer expects: all it meant to send, after any PROXY header. */
  readonly expected: number
  readonly received: number
  /** A received byte differed from the one sent at its offset, or more came than expected. */
  readonly mismatch: boolean
  readonly end: End
}

/**
 * The verdict on an echo peer, first rule that applies: a wrong byte is corruption whatever the
 * end; then the end decides, and with a FIN, whether the whole echo came. A FIN before the peer
 * sent everything is judged the same way: the peer is short of its answer and no RST told it so.
 */
export const echo = (seen: EchoSeen): Outcome => {
  if (seen.mismatch || seen.received > seen.expected) return "corrupt"
  const whole = seen.received === seen.expected
  const end = seen.end
  if (typeof end === "object") return "error"
  switch (end) {
    case "refused":
      return "refused"
    case "timeout":
      return "hang"
    case "abandoned":
      return "abandoned"
    case "reset":
      return whole ? "complete+reset" : "reset"
    case "fin":
      return whole ? "complete" : "short+FIN"
  }
}

/**
 * The verdict on a peer that sent a malformed PROXY header to a server that expects one: the
 * refusal is a RST; an echo means the header was taken; anything else is judged as an echo.
 */
export const malformedHeader = (seen: EchoSeen): Outcome => {
  const verdict = echo(seen)
  if (verdict === "reset" && seen.received === 0) return "rejected"
  if ((verdict === "complete" || verdict === "complete+reset") && seen.expected > 0) return "accepted"
  return verdict
}

/** An HTTP response as far as it came. */
export interface HttpSeen {
  /** The status codes that answer this request correctly (any, for a malformed one). */
  readonly statuses: ReadonlyArray<number> | "any"
  /** The response's status, once its status line came. */
  readonly status: number | undefined
  /** Whether the whole response came: headers, and a body as long as its framing says. */
  readonly whole: boolean
  /** A whole body that is not what the path serves (a /metrics without the server's series). */
  readonly wrongBody: boolean
  readonly end: End
}

/**
 * The verdict on a metrics scrape or a malformed request: a whole answer is checked against the
 * request; an answer cut short is `closed` (HTTP's framing tells the client); a RST, a refusal
 * and a hang as for echo.
 */
export const http = (seen: HttpSeen): Outcome => {
  const end = seen.end
  if (typeof end === "object") return "error"
  if (end === "timeout") return "hang"
  if (end === "refused") return "refused"
  if (end === "abandoned") return "abandoned"
  if (seen.whole && seen.status !== undefined) {
    const rightStatus = seen.statuses === "any" || seen.statuses.includes(seen.status)
    if (!rightStatus || seen.wrongBody) return "corrupt"
    return end === "fin" ? "complete" : "complete+reset"
  }
  return end === "reset" ? "reset" : "closed"
}

/** One server process at rest: no peer connected, every peer's socket closed. */
export interface AtRest {
  readonly pid: number
  readonly role: "primary" | "worker"
  readonly at: number
  readonly fds: number
  /** TCP connections (not listening sockets) the process still holds. */
  readonly connections: number
  readonly rssBytes: number
}

/** The margins a process at rest must keep. */
export interface Margins {
  /** Descriptors above the role's count at its first start, before any peer. */
  readonly fds: number
  /** RSS growth from a process's second time at rest to its last: this many bytes, ... */
  readonly rssBytes: number
  /** ... or this fraction of the second, whichever is larger. */
  readonly rssFraction: number
}

/** What one process leaked. */
export interface Leak {
  readonly pid: number
  readonly role: "primary" | "worker"
  readonly what: "connections" | "fds" | "rss"
  readonly detail: string
}

/**
 * The leaks among the times at rest: a process that holds a connection at rest (exact: every peer
 * has closed), or more descriptors than its role had at its first start plus the margin, or whose
 * RSS at rest grew from its second time at rest to its last by more than the margin (the first is
 * warm-up: V8 sizes its heap, code is compiled) over at least three times at rest. RSS that grew
 * under load and came back is no leak; only growth that stays at rest is.
 */
export const leaks = (
  atRest: ReadonlyArray<AtRest>,
  baseline: { readonly primary: number; readonly worker: number },
  margins: Margins
): Array<Leak> => {
  const out: Array<Leak> = []
  const byPid = new Map<number, Array<AtRest>>()
  for (const sample of atRest) {
    const list = byPid.get(sample.pid) ?? []
    list.push(sample)
    byPid.set(sample.pid, list)
  }
  for (const [pid, samples] of byPid) {
    const role = samples[0]!.role
    const held = samples.filter((s) => s.connections > 0)
    if (held.length > 0) {
      out.push({
        pid,
        role,
        what: "connections",
        detail: `${
          held[held.length - 1]!.connections
        } connection(s) held at rest (${held.length} of ${samples.length} times)`
      })
    }
    const limit = baseline[role] + margins.fds
    const over = samples.filter((s) => s.fds > limit)
    if (over.length > 0) {
      out.push({
        pid,
        role,
        what: "fds",
        detail: `${Math.max(...over.map((s) => s.fds))} descriptors at rest, over ${limit} (${
          baseline[role]
        } at the first start + ${margins.fds})`
      })
    }
    if (samples.length >= 3) {
      const second = samples[1]!.rssBytes
      const last = samples[samples.length - 1]!.rssBytes
      const allowed = Math.max(margins.rssBytes, second * margins.rssFraction)
      if (last - second > allowed) {
        out.push({
          pid,
          role,
          what: "rss",
          detail: `RSS at rest ${mib(second)} MiB -> ${mib(last)} MiB over ${
            samples.length - 1
          } times at rest (allowed +${mib(allowed)} MiB)`
        })
      }
    }
  }
  return out
}

const mib = (bytes: number): number => Math.round(bytes / 2 ** 20)
