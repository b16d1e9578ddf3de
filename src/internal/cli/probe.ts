/**
 * `probe`: the kernel limits that govern a TCP server, as a table at most 100 columns wide or as
 * one JSON object.
 */
import { Effect, Option } from "effect"
import * as KernelLimits from "../../KernelLimits.js"
import * as Flags from "../flags.js"
import { type CliFailure, failed } from "./failure.js"
import * as Output from "./output.js"

const flags = {
  json: Flags.switch_("json", "Print one JSON object instead of a table."),
  backlog: Flags.value(
    "backlog",
    "N",
    Flags.integer(1, 2 ** 31 - 1),
    "Compute the accept queue the kernel would give this backlog.",
    { variable: "ECHO_BACKLOG", default: String(KernelLimits.defaultBacklog) }
  )
}

/** @internal */
export const command: Flags.Command<typeof flags> = {
  name: "probe",
  summary: "Print the kernel limits that govern a TCP server.",
  usage: "probe [FLAGS]",
  description: ["Print the kernel limits that govern a TCP server, how to change each, and what the backlog would be."],
  flags
}

/** How a limit reads in the table: `unlimited`, `unavailable`, or each field of a pair. @internal */
export const formatLimit = (value: unknown): string =>
  typeof value === "number"
    ? (value === Number.POSITIVE_INFINITY ? "unlimited" : String(value))
    : typeof value === "object" && value !== null
    ? Object.entries(value).map(([k, v]) => `${k}=${formatLimit(v)}`).join(" ")
    : "unavailable"

/** The table's width: a row holds a limit, its value and its setting; what it governs goes below. */
const columns = 100

/**
 * The table: one row per limit (name, value, how to set it), what it governs on the line below,
 * then the SYN queue; no line wider than {@link columns}.
 *
 * @internal
 */
export const table = (
  rows: ReadonlyArray<readonly [key: string, value: string, setting: string, governs: string]>,
  synQueue: string
): string => {
  const widths = [0, 1].map((i) => Math.max(...rows.map((row) => row[i]!.length)))
  return [
    ...rows.flatMap(([key, value, setting, governs]) => [
      `${key.padEnd(widths[0]!)}  ${value.padEnd(widths[1]!)}  ${setting}`,
      ...Flags.wrap(governs, "    ", "    ", columns)
    ]),
    "",
    ...Flags.wrap(synQueue, "", "", columns)
  ].join("\n")
}

/** @internal */
export const run = (
  { values }: Flags.Resolved<typeof flags>
): Effect.Effect<void, CliFailure, KernelLimits.KernelLimits> =>
  Effect.gen(function*() {
    const limits = yield* KernelLimits.read.pipe(Effect.mapError((error) => failed(error.message)))
    const effective = KernelLimits.effectiveBacklog(Option.getOrUndefined(values.backlog), limits)
    const synQueue = KernelLimits.synQueue(effective, limits)
    const synAck = limits.tcpSynackRetries === undefined
      ? undefined
      : KernelLimits.handshakeTimeoutSeconds(limits.tcpSynackRetries)
    if (Option.getOrElse(values.json, () => false)) {
      return yield* Output.writeLine(JSON.stringify({
        ...limits,
        ...(synAck === undefined ? {} : { synAckTimeoutSeconds: synAck }),
        backlog: effective,
        synQueue
      }, (_, v) => (v === Number.POSITIVE_INFINITY ? "unlimited" : v)))
    }
    const rows = KernelLimits.entries.map((entry) =>
      [entry.key, formatLimit(limits[entry.key]), entry.setting, entry.governs] as const
    )
    const derived = [
      ...(synAck === undefined
        ? []
        : [["synAckTimeout", `${synAck}s`, "derived", "worst-case wait for a client's final ACK"] as const]),
      ["backlog", KernelLimits.formatBacklog(effective), "--backlog", "accept queue listen() would get"] as const
    ]
    yield* Output.writeLine(table([...rows, ...derived], synQueue))
  })
