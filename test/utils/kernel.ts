/**
 * What the kernel says about this process's sockets, read the way an operator would.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"

/**
 * The effective backlog of the listening socket on `port`: the Send-Q column of `ss -ltn`
 * (inet_diag's `sk_max_ack_backlog` for a listening socket).
 */
export const listenBacklog = (port: number): number | undefined => {
  const out = execFileSync("ss", ["-ltnH", `sport = :${port}`], { encoding: "utf8" })
  const line = out.split("\n").find((l) => l.startsWith("LISTEN"))
  const sendQ = line?.trim().split(/\s+/)[2]
  return sendQ === undefined ? undefined : Number(sendQ)
}

/** Connections on `port` (either end) in TIME-WAIT. */
export const timeWaitCount = (port: number): number =>
  execFileSync("ss", ["-tanH", "state", "time-wait", `( sport = :${port} or dport = :${port} )`], {
    encoding: "utf8"
  }).split("\n").filter((l) => l.trim() !== "").length

/** Descriptors this process holds that are sockets. */
export const openSockets = (): number =>
  fs.readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith("socket:")
    } catch {
      return false
    }
  }).length

/**
 * Descriptors this process holds for sockets whose local port is `port`: a server's listening
 * socket and the connections it accepted, and nothing else the process has open (other tests'
 * sockets, the test runner's own). Sockets in `/proc/net/tcp` joined to `/proc/self/fd` by inode.
 * With `peers` (the clients' local ports), only the listening socket and the connections from
 * those clients count: a port the kernel gave out again may be reached by a straggler of an
 * earlier test that aimed at it.
 */
export const serverSockets = (port: number, peers?: ReadonlySet<number>): number => {
  const held = new Set<string>()
  for (const fd of fs.readdirSync("/proc/self/fd")) {
    try {
      const link = fs.readlinkSync(`/proc/self/fd/${fd}`)
      const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1]
      if (inode !== undefined) held.add(inode)
    } catch {
      // Closed while we looked: not held.
    }
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0")
  return fs.readFileSync("/proc/net/tcp", "latin1").split("\n").slice(1).filter((line) => {
    const fields = line.trim().split(/\s+/)
    if (fields[1]?.endsWith(`:${hexPort}`) !== true || fields[9] === undefined || !held.has(fields[9])) return false
    if (peers === undefined || fields[3] === "0A") return true
    return peers.has(Number.parseInt(fields[2]?.split(":")[1] ?? "", 16))
  }).length
}
