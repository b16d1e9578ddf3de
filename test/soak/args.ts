/**
 * The soak's command line, parsed in one pure function: the options with their defaults, or one
 * line that says what is wrong.
 */
export const usage = "usage: npm run soak -- [--minutes N] [--seed S] [--peers K] [--chaos LIST] [--no-build]"

export const help = `${usage}

Runs the built binary, serve --workers 2 --metrics-port 0, for N minutes against mixed hostile
peers (echo with SHA-256 checks, stalls, slow reads, resets and half-closes at random moments,
PROXY protocol garbage, metrics scrapes and malformed HTTP), with worker kills and SIGTERMs (some
followed by a second one, the forced exit) at random moments, restarting the server after each
stop. Samples every server process's descriptors and RSS. Prints one JSON line on stdout; exits 0
when nothing was lost undetected, corrupted, hung or leaked, 1 otherwise, 2 on bad arguments or
a build or server that cannot run.

  --minutes N   how long to run, in minutes (a decimal is fine: 0.5). Default 5.
  --seed S      the seed of every random choice (0 to 2^53 - 1). Default: a random one, printed.
  --peers K     peers in flight at once (1 to 256). Default 16.
  --chaos LIST  the events of the phases with chaos, comma-separated: kill (SIGKILL to a
                worker), term (SIGTERM to the primary), twice (SIGTERM, then a second one: the
                forced exit); or none. Default kill,term,twice.
  --no-build    use the dist/ that is there instead of running npm run build first.
  --help        print this.
`

/** A chaos event. */
export type Chaos = "kill" | "term" | "twice"

export const chaosEvents: ReadonlyArray<Chaos> = ["kill", "term", "twice"]

export interface Options {
  readonly minutes: number
  readonly seed: number
  readonly peers: number
  readonly chaos: ReadonlyArray<Chaos>
  readonly build: boolean
}

export type Parsed =
  | { readonly _tag: "Run"; readonly options: Options }
  | { readonly _tag: "Help" }
  | { readonly _tag: "Invalid"; readonly message: string }

const valued = new Set(["minutes", "seed", "peers", "chaos"])
const switches = new Set(["no-build", "help"])

/**
 * The options by name: `--name value` or `--name=value` for a value (which may start with a dash:
 * `--seed -1` is a bad seed, not a missing one), `--name` for a switch; or what is wrong.
 */
const read = (args: ReadonlyArray<string>): Map<string, string | true> | string => {
  const out = new Map<string, string | true>()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (!arg.startsWith("--")) return `unexpected argument ${JSON.stringify(arg)}: the soak takes options only`
    const eq = arg.indexOf("=")
    const name = arg.slice(2, eq === -1 ? undefined : eq)
    if (out.has(name)) return `--${name} is given more than once: give it once`
    if (switches.has(name)) {
      if (eq !== -1) return `--${name} takes no value`
      out.set(name, true)
    } else if (valued.has(name)) {
      const value = eq === -1 ? args[++i] : arg.slice(eq + 1)
      if (value === undefined) return `--${name} needs a value`
      out.set(name, value)
    } else {
      return `unknown option --${name}`
    }
  }
  return out
}

/** `args` (without node and the script), and the seed to use when none is given. */
export const parse = (args: ReadonlyArray<string>, randomSeed: number): Parsed => {
  const invalid = (message: string): Parsed => ({ _tag: "Invalid", message })
  const values = read(args)
  if (typeof values === "string") return invalid(values)
  if (values.get("help") === true) return { _tag: "Help" }
  const text = (name: string) => values.get(name) as string | undefined
  const minutesText = text("minutes")
  const minutes = minutesText === undefined ? 5 : Number(minutesText)
  if (minutesText !== undefined && (!/^\d+(\.\d+)?$/.test(minutesText) || minutes <= 0 || minutes > 24 * 60)) {
    return invalid(
      `--minutes must be a number of minutes above 0 and at most 1440 (such as 5 or 0.5), not ${
        JSON.stringify(minutesText)
      }`
    )
  }
  const seedText = text("seed")
  const seed = seedText === undefined ? randomSeed : Number(seedText)
  if (seedText !== undefined && (!/^\d+$/.test(seedText) || !Number.isSafeInteger(seed))) {
    return invalid(`--seed must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}, not ${JSON.stringify(seedText)}`)
  }
  const peersText = text("peers")
  const peers = peersText === undefined ? 16 : Number(peersText)
  if (peersText !== undefined && (!/^\d+$/.test(peersText) || peers < 1 || peers > 256)) {
    return invalid(`--peers must be an integer from 1 to 256, not ${JSON.stringify(peersText)}`)
  }
  const chaosText = text("chaos")
  const chaos = chaosText === undefined ? chaosEvents : chaosText === "none" ? [] : chaosText.split(",")
  const unknown = chaos.filter((c) => !(chaosEvents as ReadonlyArray<string>).includes(c))
  if (chaosText === "" || unknown.length > 0 || new Set(chaos).size !== chaos.length) {
    return invalid(
      `--chaos must be none, or a comma-separated list of kill, term and twice, not ${JSON.stringify(chaosText)}`
    )
  }
  return {
    _tag: "Run",
    options: { minutes, seed, peers, chaos: chaos as ReadonlyArray<Chaos>, build: values.get("no-build") !== true }
  }
}
