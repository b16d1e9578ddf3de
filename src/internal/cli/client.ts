/**
 * `client`: sends stdin (or `--message`) to an echo server, half-closes, and prints the echo,
 * checked against what was sent as it arrives.
 */
import { disconnect } from "#line/cli"
import { timeoutFail } from "#line/runtime"
import { runForEachBuffers } from "#line/stream"
import { Duration, Effect, Option, Stream } from "effect"
import * as Client from "../../Client.js"
import * as Flags from "../flags.js"
import * as Options_ from "../options.js"
import { type CliFailure, failed, usage } from "./failure.js"
import * as Output from "./output.js"

const defaultTimeout = Duration.seconds(10)

const flags = {
  host: Flags.value("host", "HOST", Flags.ipv4, "Server address: IPv4, or localhost.", {
    variable: "ECHO_HOST",
    default: "127.0.0.1"
  }),
  port: Flags.value("port", "PORT", Flags.integer(1, 65535), "Server port (required).", { variable: "ECHO_PORT" }),
  timeout: Flags.value(
    "timeout",
    "DURATION",
    Flags.duration((value) => Options_.duration("", value, "positive")),
    "Give up when the whole exchange takes longer.",
    { variable: "ECHO_TIMEOUT", default: Duration.format(defaultTimeout) }
  ),
  message: Flags.value("message", "TEXT", Flags.text, "Send this text instead of stdin.")
}

/** @internal */
export const command: Flags.Command<typeof flags> = {
  name: "client",
  summary: "Send stdin to an echo server; exit 0 only if the echo matches.",
  usage: "client --port PORT [FLAGS]",
  description: [
    "Send stdin (or --message) to an echo server, half-close, and print the echo on stdout. Exit 0 only if the echo is exactly what was sent, 1 otherwise."
  ],
  flags
}

/**
 * Checks an echo against what was sent, as it arrives: only the bytes in flight are held.
 *
 * @internal
 */
export const echoChecker = () => {
  const sent: Array<Uint8Array> = []
  let offset = 0
  let verified = 0
  let sentTotal = 0
  return {
    sent: (chunk: Uint8Array) => {
      if (chunk.length === 0) return
      sent.push(chunk)
      sentTotal += chunk.length
    },
    /** The first differing byte's position, or undefined when `chunk` matches so far. */
    received: (chunk: Uint8Array): string | undefined => {
      for (let i = 0; i < chunk.length;) {
        const head = sent[0]
        if (head === undefined) return `the echo has more bytes than were sent (${sentTotal})`
        const n = Math.min(head.length - offset, chunk.length - i)
        if (Buffer.compare(head.subarray(offset, offset + n), chunk.subarray(i, i + n)) !== 0) {
          return `the echo differs from what was sent within bytes ${verified}-${verified + n}`
        }
        i += n
        offset += n
        verified += n
        if (offset === head.length) {
          sent.shift()
          offset = 0
        }
      }
      return undefined
    },
    complete: () => verified === sentTotal ? undefined : `the echo ended after ${verified} of ${sentTotal} bytes`
  }
}

/** What is sent: `--message`, or stdin as it comes. */
const input = (message: Option.Option<string>): Stream.Stream<Uint8Array, CliFailure> =>
  Option.match(message, {
    onNone: () =>
      Stream.fromAsyncIterable(
        process.stdin as AsyncIterable<Uint8Array>,
        (cause) => failed(`stdin: ${String(cause)}`)
      ),
    onSome: (text): Stream.Stream<Uint8Array, CliFailure> => Stream.make(Buffer.from(text))
  })

/** One exchange: send everything and half-close, while the echo is checked and printed. */
const exchange = (values: Flags.Values<typeof flags>, port: number) =>
  Effect.gen(function*() {
    const checker = echoChecker()
    const connection = yield* Client.connect({
      ...(Option.isSome(values.host) ? { host: values.host.value } : {}),
      port
    })
    const send = runForEachBuffers(
      input(values.message).pipe(Stream.tap((chunk) => Effect.sync(() => checker.sent(chunk)))),
      connection.writeAll
    ).pipe(Effect.andThen(connection.end))
    const receive = Stream.runForEach(connection.stream, (chunk) => {
      const mismatch = checker.received(chunk)
      return mismatch === undefined ? Output.write(chunk) : Effect.fail(failed(mismatch))
    })
    yield* Effect.all([send, receive], { concurrency: 2, discard: true })
    const incomplete = checker.complete()
    if (incomplete !== undefined) return yield* failed(incomplete)
  }).pipe(Effect.scoped)

/** @internal */
export const run = ({ values }: Flags.Resolved<typeof flags>): Effect.Effect<void, CliFailure> =>
  Effect.gen(function*() {
    if (Option.isNone(values.port)) return yield* usage("client needs --port PORT (or ECHO_PORT)", "client")
    const timeout = Option.getOrElse(values.timeout, () => defaultTimeout)
    return yield* exchange(values, values.port.value).pipe(
      // A pending read of stdin cannot be interrupted: let it finish in the background, so the
      // timeout ends the command at its deadline instead of when stdin closes.
      disconnect,
      timeoutFail({
        duration: timeout,
        onTimeout: () => failed(`no complete echo within ${Duration.format(timeout)}`)
      }),
      Effect.catchTags({
        ConnectError: (error) => Effect.fail(failed(error.message)),
        ConnectionError: (error) => Effect.fail(failed(error.message))
      })
    )
  })
