/**
 * The command line's flags as data: each flag's name, its `ECHO_*` variable, its default and how
 * its value is checked, written once and used for everything a user sees: the check of the
 * command line before it runs (unknown, repeated or incomplete flags), the fallback to the
 * variable, the error that names the flag or the variable that was wrong, and `--help`.
 * Values are checked by the library's own rules (`internal/options.ts`).
 *
 * @internal
 */
import type { Duration } from "effect"
import { Config, Effect, Either, Option } from "effect"
import * as Options_ from "./options.js"
import * as Proxy from "./proxy.js"

/**
 * One flag. `placeholder` undefined: a switch, given or not.
 *
 * @internal
 */
export interface Flag<A> {
  readonly name: string
  readonly variable: string | undefined
  readonly placeholder: string | undefined
  readonly description: string
  /** As `--help` states it; undefined: none worth stating. */
  readonly default: string | undefined
  /** The value, or what a valid one looks like. */
  readonly parse: (text: string) => Either.Either<A, string>
  /**
   * Kept from @effect/cli, whose built-in flag of the same name (`--log-level`) would take it
   * and run the command without it: read from the checked command line instead.
   */
  readonly withheld?: boolean
}

/** A flag that takes a value. @internal */
export const value = <A>(
  name: string,
  placeholder: string,
  parse: (text: string) => Either.Either<A, string>,
  description: string,
  options: { readonly variable?: string; readonly default?: string; readonly withheld?: boolean } = {}
): Flag<A> => ({
  name,
  variable: options.variable,
  placeholder,
  description,
  default: options.default,
  parse,
  ...(options.withheld === true ? { withheld: true } : {})
})

/** A switch: on when given; its variable takes true/false, 1/0, yes/no or on/off. @internal */
export const switch_ = (name: string, description: string, variable?: string): Flag<boolean> => ({
  name,
  variable,
  placeholder: undefined,
  description,
  default: "off",
  parse: boolean
})

// --- Values, checked by the library's rules.

/** A decimal integer from `min` to `max`: no sign but `-`, no `0x`, no exponent, no fraction. @internal */
export const integer = (min: number, max: number) => (text: string): Either.Either<number, string> => {
  const expected = `an integer from ${min} to ${max}`
  if (!/^-?[0-9]+$/.test(text)) return Either.left(expected)
  return Either.mapLeft(Options_.integer("", Number(text), min, max), () => expected)
}

/** An IPv4 address or `localhost`. @internal */
export const ipv4 = (text: string): Either.Either<string, string> =>
  Either.mapLeft(Options_.ipv4("", text), (invalid) => invalid.expected)

/** One of `values`, in any case. @internal */
export const choice = <A extends string>(values: ReadonlyArray<A>) => (text: string): Either.Either<A, string> => {
  const found = values.find((v) => v === text.toLowerCase())
  return found === undefined ? Either.left(`one of ${values.join(", ")}`) : Either.right(found)
}

/** @internal */
export const boolean = (text: string): Either.Either<boolean, string> => {
  const lower = text.toLowerCase()
  if (["true", "1", "yes", "on"].includes(lower)) return Either.right(true)
  if (["false", "0", "no", "off"].includes(lower)) return Either.right(false)
  return Either.left("true or false (also 1/0, yes/no, on/off)")
}

/**
 * A comma-separated list of IPv4 networks (`10.0.0.0/8`) or addresses, as the PROXY protocol's
 * trusted sources: at least one, each checked by the library's own rule.
 *
 * @internal
 */
export const networks = (text: string): Either.Either<ReadonlyArray<string>, string> => {
  const expected = "a comma-separated list of IPv4 networks such as 10.0.0.0/8, or addresses"
  const parts = text.split(",").map((part) => part.trim())
  if (parts.some((part) => part === "")) return Either.left(expected)
  for (const part of parts) if (Either.isLeft(Proxy.cidr(part))) return Either.left(expected)
  return Either.right(parts)
}

/** Any text. @internal */
export const text = (text: string): Either.Either<string, string> => Either.right(text)

const units: Record<string, string> = {
  ms: "millis",
  s: "seconds",
  m: "minutes",
  h: "hours",
  d: "days"
}

/**
 * A duration as people type one (`500ms`, `5s`, `1.5m`, `2h`, `1d`) or in Effect's own words
 * (`5 seconds`), checked by `rule`: the library's, so that the command line accepts exactly what
 * the library does, with the same bounds (a negative duration is refused, not read as zero).
 *
 * @internal
 */
export const duration = (
  rule: (value: string) => Either.Either<Duration.Duration, Options_.Invalid>
) =>
(text: string): Either.Either<Duration.Duration, string> => {
  const short = /^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(text)
  const normalized = short === null ? text : `${short[1]} ${units[short[2]!]}`
  return Either.mapLeft(rule(normalized), (invalid) => invalid.expected)
}

// --- Commands.

/**
 * A command: its flags, keyed as its handler reads them, and what `--help` says about it.
 *
 * @internal
 */
export interface Command {
  readonly name: string
  readonly summary: string
  readonly usage: string
  /** Paragraphs after the usage line. */
  readonly description: ReadonlyArray<string>
  readonly flags: Readonly<Record<string, Flag<any>>>
  /** Sections after the flags: a title and its lines, kept as written. */
  readonly sections?: ReadonlyArray<{ readonly title: string; readonly lines: ReadonlyArray<string> }>
}

/**
 * What to do with a command line.
 *
 * @internal
 */
export type Checked =
  | { readonly _tag: "Help"; readonly command: Command | undefined }
  | { readonly _tag: "Version" }
  | { readonly _tag: "Usage"; readonly message: string; readonly command: Command | undefined }
  /** Only @effect/cli's own `--wizard` or `--completions`, before any command: its to answer. */
  | { readonly _tag: "BuiltIn"; readonly args: ReadonlyArray<string> }
  | {
    readonly _tag: "Run"
    readonly command: Command
    /** Every flag given, by name: its value, or `true` for a switch. */
    readonly given: ReadonlyMap<string, string | true>
    /** The arguments for @effect/cli, every value checked, none it could misread. */
    readonly args: ReadonlyArray<string>
  }

/** Built-in flags of @effect/cli that pass through (`--help` and `--version` are answered here). */
const builtIns: Record<string, "switch" | "value"> = { "--wizard": "switch", "--completions": "value" }

/**
 * Checks a command line (without the node and script paths) against `commands`: one command,
 * then only its own flags, each at most once, each with its value. `--help` anywhere wins.
 * `interactive`: whether stdin is a terminal, which @effect/cli's `--wizard` needs to ask.
 *
 * @internal
 */
export const check = (
  commands: ReadonlyArray<Command>,
  args: ReadonlyArray<string>,
  interactive: boolean
): Checked => {
  const named = commands.find((c) => args.includes(c.name))
  if (args.includes("--help") || args.includes("-h")) return { _tag: "Help", command: named }
  if (args.includes("--version")) return { _tag: "Version" }
  const usage = (message: string, command = named): Checked => ({ _tag: "Usage", message, command })
  if (args.includes("--wizard") && !interactive) {
    return usage("--wizard asks its questions on a terminal, and stdin is not one")
  }
  const names = commands.map((c) => c.name).join(", ")
  // Before the command: only @effect/cli's own flags.
  let i = 0
  while (i < args.length && args[i]!.startsWith("-")) {
    const arg = args[i]!
    const kind = builtIns[arg.split("=")[0]!]
    if (kind === undefined) {
      const known = commands.some((c) => Object.values(c.flags).some((f) => `--${f.name}` === arg.split("=")[0]))
      return usage(known ? `${arg} goes after the command, e.g. effect-tcp-echo serve ${arg}` : `unknown flag ${arg}`)
    }
    if (kind === "value" && !arg.includes("=")) i++
    i++
  }
  if (i >= args.length) return i > 0 ? { _tag: "BuiltIn", args } : usage(`a command is needed: ${names}`)
  const command = commands.find((c) => c.name === args[i])
  if (command === undefined) {
    return usage(`unknown command ${JSON.stringify(args[i])}: the commands are ${names}`, undefined)
  }
  const flags = new Map(Object.values(command.flags).map((flag) => [`--${flag.name}`, flag]))
  const given = new Map<string, string | true>()
  const out: Array<string> = [...args.slice(0, i), command.name]
  for (i++; i < args.length; i++) {
    const arg = args[i]!
    if (!arg.startsWith("--")) {
      return usage(`unexpected argument ${JSON.stringify(arg)}: ${command.name} takes flags only`, command)
    }
    const eq = arg.indexOf("=")
    const name = eq === -1 ? arg : arg.slice(0, eq)
    const builtIn = builtIns[name]
    if (builtIn !== undefined) {
      out.push(arg)
      if (builtIn === "value" && eq === -1 && i + 1 < args.length) out.push(args[++i]!)
      continue
    }
    const flag = flags.get(name)
    if (flag === undefined) return usage(`unknown flag ${name} for ${command.name}`, command)
    if (given.has(flag.name)) return usage(`${name} is given more than once: give it once`, command)
    if (flag.placeholder === undefined) {
      if (eq !== -1) return usage(`${name} takes no value (it is a switch)`, command)
      given.set(flag.name, true)
      out.push(name)
      continue
    }
    const text = eq !== -1 ? arg.slice(eq + 1) : args[++i]
    if (text === undefined) return usage(`${name} needs a value (${flag.placeholder})`, command)
    const parsed = flag.parse(text)
    if (Either.isLeft(parsed)) return usage(formatInvalid({ source: name, text, expected: parsed.left }), command)
    given.set(flag.name, text)
    if (flag.withheld === true) continue
    // @effect/cli would take a value starting with "-" for a flag, unless it is joined to its name.
    if (text.startsWith("-")) out.push(`${name}=${text}`)
    else out.push(name, text)
  }
  return { _tag: "Run", command, given, args: out }
}

/**
 * A flag's value was invalid: which flag or variable, what it held, and what a valid one looks
 * like.
 *
 * @internal
 */
export interface Invalid {
  /** `--port`, or `ECHO_PORT`. */
  readonly source: string
  readonly text: string
  readonly expected: string
}

/** Where a value came from, for messages: `--port`, `ECHO_PORT`, or undefined for the default. @internal */
export type Sources<T> = { readonly [K in keyof T]: string | undefined }

/** The values of a command's flags. @internal */
export type Values<T> = { readonly [K in keyof T]: T[K] extends Flag<infer A> ? Option.Option<A> : never }

/**
 * Each flag's value: the flag's when given, else its variable's (read through Effect's
 * `Config`), else `None`; checked, so that an invalid one is refused naming its flag or variable.
 *
 * @internal
 */
export const resolve = <T extends Readonly<Record<string, Flag<any>>>>(
  flags: T,
  given: (key: keyof T & string) => Option.Option<string>
): Effect.Effect<{ readonly values: Values<T>; readonly sources: Sources<T> }, Invalid> =>
  Effect.gen(function*() {
    const values: Record<string, Option.Option<unknown>> = {}
    const sources: Record<string, string | undefined> = {}
    for (const [key, flag] of Object.entries(flags)) {
      const fromFlag = given(key)
      const fromVariable = Option.isSome(fromFlag) || flag.variable === undefined
        ? Option.none()
        : yield* Effect.orDie(Config.option(Config.string(flag.variable)))
      const [source, text] = Option.isSome(fromFlag)
        ? [`--${flag.name}`, fromFlag.value]
        : Option.isSome(fromVariable)
        ? [flag.variable!, fromVariable.value]
        : [undefined, undefined]
      sources[key] = source
      if (source === undefined || text === undefined) {
        values[key] = Option.none()
        continue
      }
      const parsed = flag.parse(text)
      if (Either.isLeft(parsed)) return yield* Effect.fail<Invalid>({ source, text, expected: parsed.left })
      values[key] = Option.some(parsed.right)
    }
    // Built key by key from `flags` above, so each key holds its flag's value type.
    return { values: values as Values<T>, sources: sources as Sources<T> }
  })

/** The one line for an invalid value. @internal */
export const formatInvalid = (invalid: Invalid): string =>
  `invalid ${invalid.source} ${JSON.stringify(invalid.text)}: expected ${invalid.expected}`

// --- Help, at most 80 columns wide.

const width = 80

/** `text` wrapped to `width` columns, each line indented by `indent`. @internal */
export const wrap = (text: string, indent: string, first = indent): Array<string> => {
  const lines: Array<string> = []
  let line = first
  let empty = true
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (!empty && line.length + 1 + word.length > width) {
      lines.push(line)
      line = indent
      empty = true
    }
    line += (empty ? "" : " ") + word
    empty = false
  }
  lines.push(line)
  return lines
}

/** The help of the program (no command) or of one command. @internal */
export const help = (
  program: string,
  version: string,
  summary: string,
  commands: ReadonlyArray<Command>,
  command: Command | undefined
): string => {
  const out: Array<string> = []
  if (command === undefined) {
    out.push(`${program} ${version}: ${summary}`, "", `Usage: ${program} COMMAND [FLAGS]`, "", "Commands:")
    const column = Math.max(...commands.map((c) => c.name.length)) + 5
    for (const c of commands) out.push(...wrap(c.summary, " ".repeat(column), `  ${c.name}`.padEnd(column)))
    out.push(
      "",
      ...wrap(`'${program} COMMAND --help' lists a command's flags; '${program} --version' prints the version.`, "")
    )
    return out.join("\n") + "\n"
  }
  out.push(`Usage: ${program} ${command.usage}`, "")
  for (const paragraph of command.description) out.push(...wrap(paragraph, ""), "")
  out.push("Flags:")
  for (const flag of Object.values(command.flags)) {
    out.push(`  --${flag.name}${flag.placeholder === undefined ? "" : ` ${flag.placeholder}`}`)
    const notes = [
      flag.description,
      flag.default === undefined ? "" : `Default: ${flag.default}.`,
      flag.variable === undefined ? "" : `Variable: ${flag.variable}.`
    ].filter((s) => s !== "").join(" ")
    out.push(...wrap(notes, "      "))
  }
  out.push("  --help", "      Print this help.")
  for (const section of command.sections ?? []) out.push("", `${section.title}:`, ...section.lines)
  return out.join("\n") + "\n"
}
