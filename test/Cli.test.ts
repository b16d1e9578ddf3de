import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as net from "node:net"
import { Client } from "../src/index.js"
import { run, runAsync, type Running, serve } from "./utils/cli.js"

const started: Array<Running> = []
const start = async (args: ReadonlyArray<string> = [], env: Record<string, string> = {}) => {
  const running = await serve(args, env)
  started.push(running)
  return running
}
afterEach(() => {
  for (const running of started.splice(0)) running.child.kill("SIGKILL")
})

const roundTrip = (port: number, payload: Buffer) =>
  Effect.runPromise(Client.roundTrip({ port }, [payload]))

describe("serve", () => {
  it("prints HOST:PORT first, then the requested and effective backlog, and echoes", async () => {
    const server = await start(["--backlog", "100000"])
    expect(server.address.host).toBe("127.0.0.1")
    expect(server.lines[0]).toContain(`127.0.0.1:${server.address.port}`)
    const backlog = await server.waitFor(/backlog requested 100000, effective \d+/)
    expect(backlog).toMatch(/effective \d+/)
    const echoed = await roundTrip(server.address.port, Buffer.from("hello"))
    expect(Buffer.from(echoed).toString()).toBe("hello")
  })

  it("SIGINT shuts down gracefully with exit code 0", async () => {
    const server = await start()
    server.child.kill("SIGINT")
    expect(await server.exited).toBe(0)
  })

  it("a second SIGINT ends the process at once, whatever shutdown is waiting for", async () => {
    const server = await start(["--shutdown-timeout", "1m"])
    // A connected, silent peer keeps the graceful shutdown waiting for its whole minute.
    const peer = net.connect(server.address.port, "127.0.0.1")
    peer.on("error", () => {})
    await new Promise((r) => peer.once("connect", r))
    server.child.kill("SIGINT")
    await server.waitFor(/shutting down: waiting up to/)
    server.child.kill("SIGINT")
    await server.exited
    expect(server.child.signalCode).toBe("SIGINT")
    peer.destroy()
  })

  it("a port in use exits non-zero naming the address and the flag", async () => {
    const taken = net.createServer()
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r))
    const port = (taken.address() as net.AddressInfo).port
    const result = run(["serve", "--port", String(port)])
    taken.close()
    expect(result.status).not.toBe(0)
    expect(result.stderr).toContain(`127.0.0.1:${port} is already in use`)
    expect(result.stderr).toContain("--port")
    expect(result.stderr).not.toContain("    at ")
  })

  it("an out-of-range port exits non-zero naming the option", () => {
    const result = run(["serve", "--port", "70000"])
    expect(result.status).not.toBe(0)
    expect(result.stderr).toContain("invalid port: 70000")
  })

  it("a host that is not IPv4 exits non-zero naming the option", () => {
    const result = run(["serve", "--host", "::1"])
    expect(result.status).not.toBe(0)
    expect(result.stderr).toContain("invalid host")
  })

  it("an unknown flag is a usage error", () => {
    const result = run(["serve", "--bogus"])
    expect(result.status).not.toBe(0)
    expect(result.stdout + result.stderr).toContain("--bogus")
  })
})

/** A port that was free a moment ago: bound on port 0, then released. */
const freePort = async () => {
  const probe = net.createServer()
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r))
  const port = (probe.address() as net.AddressInfo).port
  await new Promise((r) => probe.close(r))
  return port
}

describe("serve configuration and output", () => {
  it("ECHO_PORT is honoured, and a flag wins over its variable", async () => {
    const port = await freePort()
    const fromEnv = await start([], { ECHO_PORT: String(port) })
    expect(fromEnv.address.port).toBe(port)
    const fromFlag = await start(["--port", "0"], { ECHO_PORT: String(port) })
    expect(fromFlag.address.port).not.toBe(port)
  })

  it("an invalid ECHO_SHUTDOWN_TIMEOUT names the variable", () => {
    const result = run(["serve"], { ECHO_SHUTDOWN_TIMEOUT: "soon" })
    expect(result.status).not.toBe(0)
    expect(result.stdout + result.stderr).toContain("ECHO_SHUTDOWN_TIMEOUT")
  })

  it("--log-format json writes one JSON object per line, the first with the address", async () => {
    const server = await start(["--log-format", "json", "--log-level", "debug"])
    await roundTrip(server.address.port, Buffer.from("json"))
    server.child.kill("SIGINT")
    expect(await server.exited).toBe(0)
    const records = server.lines.map((line) => JSON.parse(line) as { message: string; annotations: Record<string, unknown> })
    expect(records[0]!.annotations.address).toBe(`127.0.0.1:${server.address.port}`)
    // The recipe's per-receive debug line, with the peer annotation.
    const receive = records.find((r) => String(r.message).startsWith("receive data from"))
    expect(receive?.annotations.peer).toMatch(/^127\.0\.0\.1:\d+$/)
  })

  it("--log-format logfmt writes one logfmt record per line", async () => {
    const server = await start(["--log-format", "logfmt"])
    server.child.kill("SIGINT")
    await server.exited
    for (const line of server.lines) expect(line).toMatch(/^timestamp=\S+ level=\w+ /)
    expect(server.lines[0]).toContain(`address=127.0.0.1:${server.address.port}`)
  })

  it("--metrics-port serves Prometheus text whose counters move with traffic", async () => {
    const server = await start(["--metrics-port", "0"])
    const line = await server.waitFor(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/)
    const url = /http:\/\/\S+\/metrics/.exec(line)![0]
    const scrape = async (name: string) => {
      const text = await (await fetch(url)).text()
      const sample = text.split("\n").find((l) => l.startsWith(`${name} `))
      return Number(sample?.split(" ").pop())
    }
    const before = await scrape("echo_sent_bytes_total")
    await roundTrip(server.address.port, Buffer.alloc(1000, 1))
    expect(await scrape("echo_sent_bytes_total")).toBe(before + 1000)
    expect(await scrape("echo_connections_accepted_total")).toBeGreaterThanOrEqual(1)
  })
})

describe("client", () => {
  it("round-trips binary stdin and exits 0 when the echo matches", async () => {
    const server = await start()
    const payload = Buffer.alloc(300_000)
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + (i >> 8)) & 0xff
    const result = run(["client", "--port", String(server.address.port)], {}, payload)
    expect(result.status).toBe(0)
    expect(result.raw.equals(payload)).toBe(true)
  })

  it("--message sends that text", async () => {
    const server = await start()
    const result = run(["client", "--port", String(server.address.port), "--message", "hello"])
    expect(result.status).toBe(0)
    expect(result.stdout).toBe("hello")
  })

  it("exits non-zero when the echo differs from what was sent", async () => {
    const liar = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on("data", (data: Buffer) => socket.write(Buffer.from(data.toString().toUpperCase())))
      socket.on("end", () => socket.end())
    })
    await new Promise<void>((r) => liar.listen(0, "127.0.0.1", r))
    const port = (liar.address() as net.AddressInfo).port
    const result = await runAsync(["client", "--port", String(port), "--message", "hello"])
    liar.close()
    expect(result.status).not.toBe(0)
    expect(result.stderr).toContain("differs")
  })

  it("exits non-zero when nothing listens", async () => {
    const port = await freePort()
    const result = run(["client", "--port", String(port), "--message", "x"])
    expect(result.status).not.toBe(0)
    expect(result.stderr).toContain("refused")
  })

  it("exits at --timeout even while stdin stays open", async () => {
    const server = await start()
    // runAsync leaves the child's stdin open and silent: the read of stdin never ends.
    const result = await runAsync(["client", "--port", String(server.address.port), "--timeout", "300ms"])
    expect(result.status).not.toBe(0)
    expect(result.stderr).toContain("no complete echo within")
  })

  it("exits non-zero at --timeout when the server never answers", async () => {
    const silent = net.createServer({ allowHalfOpen: true }, () => {})
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r))
    const port = (silent.address() as net.AddressInfo).port
    const result = run(["client", "--port", String(port), "--message", "x", "--timeout", "300ms"])
    silent.close()
    expect(result.status).not.toBe(0)
    expect(result.stderr).toContain("no complete echo within")
  })
})

describe("probe", () => {
  it("--json prints one object keyed by limit", () => {
    const result = run(["probe", "--json", "--backlog", "100000"])
    expect(result.status).toBe(0)
    const limits = JSON.parse(result.stdout)
    expect(typeof limits.somaxconn).toBe("number")
    expect(limits.backlog.requested).toBe(100000)
    expect(limits.backlog.effective).toBe(Math.min(100000, limits.somaxconn))
  })

  it("prints a table naming each limit and how to set it", () => {
    const result = run(["probe"])
    expect(result.status).toBe(0)
    expect(result.stdout).toMatch(/somaxconn\s+\d+\s+sysctl net\.core\.somaxconn/)
  })
})
