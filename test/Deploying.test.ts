/**
 * docs/deploying.md as it is written: its `serve` command line and its HAProxy configuration run
 * against a real HAProxy on loopback (ports replaced by free ones), and its Kubernetes manifest
 * checked against the flags it carries. A change to the doc is a change to what is tested.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { Duration } from "effect"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { parseAllDocuments } from "yaml"
import * as Server from "../src/Server.js"
import { type Running, serve } from "./utils/cli.js"

const doc = fs.readFileSync(path.resolve(import.meta.dirname, "../docs/deploying.md"), "utf8")

/** The fenced block between `<!-- deploying:NAME:start -->` and its end marker. */
const block = (name: string): string => {
  const found = new RegExp(
    `<!-- deploying:${name}:start -->\\n\`\`\`\\w*\\n([\\s\\S]*?)\`\`\`\\n<!-- deploying:${name}:end -->`
  ).exec(doc)
  if (found === null) throw new Error(`docs/deploying.md has no ${name} block`)
  return found[1]!
}

/** The `serve` command line of the doc, as arguments after `serve`. */
const serveArgs = (): Array<string> => {
  const words = block("serve").replace(/\\\n/g, " ").trim().split(/\s+/)
  expect(words.slice(0, 2)).toEqual(["effect-tcp-echo", "serve"])
  return words.slice(2)
}

/** `--name VALUE` or `--name=VALUE` in `args`. */
const flag = (args: ReadonlyArray<string>, name: string): string | undefined => {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return args[i + 1]
    if (args[i]!.startsWith(`--${name}=`)) return args[i]!.slice(name.length + 3)
  }
  return undefined
}

const seconds = (text: string | undefined): number => {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text ?? "")
  if (match === null) throw new Error(`not a duration the doc should use: ${text}`)
  return Number(match[1]) * ({ ms: 0.001, s: 1, m: 60 } as Record<string, number>)[match[2]!]!
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = net.createServer()
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resolve(port))
    })
  })

const haproxy = spawnSync("haproxy", ["-v"], { encoding: "utf8" }).status === 0
const required = process.env.ECHO_TEST_REQUIRE_HAPROXY === "1"

const children: Array<ChildProcess> = []
const servers: Array<Running> = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL")
  for (const server of servers.splice(0)) server.child.kill("SIGKILL")
})

/** Waits (bounded) for a line of `lines` to match. */
const waitFor = async (lines: () => ReadonlyArray<string>, pattern: RegExp, what: string) => {
  for (let i = 0; i < 1000; i++) {
    const found = lines().find((line) => pattern.test(line))
    if (found !== undefined) return found
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`${what}: no line matches ${pattern}:\n${lines().join("\n")}`)
}

/** Sends `payload` through `port`, half-closes, reads to the end; the socket's own port too. */
const exchange = (port: number, payload: Buffer) =>
  new Promise<{ echoed: Buffer; localPort: number }>((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true })
    const chunks: Array<Buffer> = []
    let localPort = 0
    socket.once("connect", () => {
      localPort = socket.localPort!
      socket.end(payload)
    })
    socket.on("data", (d: Buffer) => chunks.push(d))
    socket.once("error", reject)
    socket.once("end", () => {
      socket.end()
      resolve({ echoed: Buffer.concat(chunks), localPort })
    })
  })

describe("docs/deploying.md", () => {
  const title = haproxy
    ? "its serve flags behind its HAProxy configuration: the echo is exact, the client named, and SIGTERM takes the server out"
    : "its HAProxy configuration: NOT RUN, haproxy is not installed (apt-get install haproxy; .ci/run installs it)"
  it.skipIf(!haproxy && !required)(title, async () => {
    expect(haproxy, "haproxy is required here (ECHO_TEST_REQUIRE_HAPROXY=1) but not installed").toBe(true)
    const args = serveArgs()
    const echoPort = flag(args, "port")!
    const metricsPort = flag(args, "metrics-port")!
    // The doc's flags, its ports made free ones, and the debug level that logs each receive's peer.
    const given = args.map((arg, i) => (args[i - 1] === "--port" || args[i - 1] === "--metrics-port") ? "0" : arg)
    const server = await serve([...given, "--log-level", "debug"])
    servers.push(server)
    const metrics = /http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(await server.waitFor(/metrics on http/))![1]!
    const front = await freePort()
    const config = block("haproxy")
    const frontBind = /bind 127\.0\.0\.1:(\d+)/.exec(config)![1]!
    expect(config).toContain(`server s1 127.0.0.1:${echoPort} send-proxy-v2 check port ${metricsPort}`)
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "effect-tcp-echo-deploying-"))
    const file = path.join(dir, "haproxy.cfg")
    fs.writeFileSync(
      file,
      config
        .replace(`bind 127.0.0.1:${frontBind}`, `bind 127.0.0.1:${front}`)
        .replace(`127.0.0.1:${echoPort} `, `127.0.0.1:${server.address.port} `)
        .replace(`check port ${metricsPort}`, `check port ${metrics}`)
    )
    const proxy = spawn("haproxy", ["-f", file, "-db"], { stdio: ["ignore", "ignore", "pipe"] })
    children.push(proxy)
    const proxyLines: Array<string> = []
    proxy.stderr!.on("data", (d: Buffer) => proxyLines.push(...d.toString().split("\n")))
    proxy.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }))

    const payload = Buffer.from(new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff))
    // Until HAProxy listens (bounded): then the exchange through it.
    let through: { echoed: Buffer; localPort: number } | undefined
    for (let i = 0; i < 500 && through === undefined; i++) {
      through = await exchange(front, payload).catch(() => undefined)
      if (through === undefined) await new Promise((r) => setTimeout(r, 10))
    }
    expect(through, proxyLines.join("\n")).toBeDefined()
    expect(through!.echoed.equals(payload)).toBe(true)
    // The server saw the client HAProxy saw, by its own port: not HAProxy's connection.
    await server.waitFor(new RegExp(`receive data from 127\\.0\\.0\\.1:${through!.localPort}\\b`))

    server.child.kill("SIGTERM")
    // HAProxy's check of /readyz fails while the process still answers it: Layer7, 503.
    await waitFor(() => proxyLines, /Server echo\/s1 is DOWN, reason: Layer7 wrong status, code: 503/, "HAProxy")
    // And the port still serves a direct connection: the drain delay is not over.
    const direct = await exchange(server.address.port, Buffer.from("PROXY TCP4 127.0.0.9 127.0.0.1 5000 7000\r\nlate"))
    expect(direct.echoed.toString()).toBe("late")
  })

  it("its Kubernetes manifest agrees with its flags: grace period, probes, ports", () => {
    const documents = parseAllDocuments(block("kubernetes")).map((d) => d.toJS() as any)
    const deployment = documents.find((d) => d.kind === "Deployment")
    const service = documents.find((d) => d.kind === "Service")
    const pod = deployment.spec.template.spec
    const container = pod.containers[0]
    const args: Array<string> = container.args
    expect(args[0]).toBe("serve")
    // The whole shutdown, and more: drain delay + shutdown timeout + cleanup + the workers' margin.
    const needed = seconds(flag(args, "drain-delay")) + seconds(flag(args, "shutdown-timeout")) +
      Duration.toSeconds(Server.defaults.cleanupTimeout) + 2 /* the primary's margin (Cli's workerMargin) */
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(needed)
    // Probes on the metrics port, bound where the kubelet reaches it.
    const ports = Object.fromEntries(container.ports.map((p: any) => [p.name, p.containerPort]))
    expect(String(ports.metrics)).toBe(flag(args, "metrics-port"))
    expect(String(ports.echo)).toBe(flag(args, "port"))
    expect(flag(args, "metrics-host")).toBe("0.0.0.0")
    expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "metrics" })
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "metrics" })
    // Readiness notices the drain well within it.
    const notice = container.readinessProbe.periodSeconds * container.readinessProbe.failureThreshold
    expect(notice).toBeLessThan(seconds(flag(args, "drain-delay")))
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels)
    expect(service.spec.ports[0].targetPort).toBe("echo")
    // Every flag the manifest gives is one serve takes (the binary's own check).
    const checked = spawnSync(process.execPath, [
      path.resolve(import.meta.dirname, "../dist/src/bin.js"),
      ...args,
      "--help"
    ], {
      encoding: "utf8"
    })
    expect(checked.status).toBe(0)
    for (const arg of args.slice(1)) expect(checked.stdout).toContain(arg.split("=")[0])
  })
})
