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
