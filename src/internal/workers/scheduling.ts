/**
 * Who accepts the connections when the workers share the primary's listening socket: each worker
 * itself. With `node:cluster`'s round robin the primary accepts every connection and keeps it
 * until a worker acknowledges it over IPC; a connection on its way to a worker that dies is
 * never acknowledged, so the primary holds it forever, served by no one and closed by no one
 * (no idle timeout runs in the primary). With `SCHED_NONE` the primary holds only the listening
 * socket: a connection is in a worker, which the kernel resets or closes when it dies, or in the
 * listening socket's queue, for another worker to accept.
 *
 * `cluster.schedulingPolicy` is one setting for the whole process, read when the first worker is
 * forked (`cluster.setupPrimary` or `cluster.fork`) and fixed from then on.
 */
import cluster from "node:cluster"
import * as Checked from "../checked.js"
import type * as Options_ from "../options.js"

/** What round robin costs a peer, said once for both refusals. */
const why = "with round robin the primary holds each connection until a worker takes it, and one on its way " +
  "to a worker that dies is never served nor closed"

/**
 * Makes the workers forked from now on accept connections themselves (`SCHED_NONE`), before this
 * process forks its first worker; refuses where round robin was asked for in the environment, or
 * is already fixed by an earlier fork. A policy of `none` set by the user is kept as it is.
 *
 * @internal
 */
export const acceptInWorkers = (): Checked.Checked<void, Options_.Invalid> => {
  if (cluster.schedulingPolicy === cluster.SCHED_NONE) return Checked.valid(undefined)
  const variable = process.env.NODE_CLUSTER_SCHED_POLICY
  if (variable === "rr") {
    return Checked.invalid({ option: "NODE_CLUSTER_SCHED_POLICY", value: variable, expected: `none, or unset: ${why}` })
  }
  // `cluster.settings` is filled by the first `setupPrimary` (which `fork` calls): the policy is fixed.
  if (Object.keys(cluster.settings).length > 0) {
    return Checked.invalid({
      option: "cluster.schedulingPolicy",
      value: "SCHED_RR",
      expected: `SCHED_NONE, set before this process forks its first worker: ${why}`
    })
  }
  cluster.schedulingPolicy = cluster.SCHED_NONE
  return Checked.valid(undefined)
}
