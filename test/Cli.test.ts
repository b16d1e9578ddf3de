import { afterEach, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn, spawnSync } from "node:child_process"
import * as net from "node:net"
import { Client } from "../src/index.js"
import { bin, run, runAsync, type Running, serve, untilNotReady } from "./utils/cli.js"
import { expectUsage, usageError } from "./utils/usage.js"

const started: Array<Running> = []
const start = async (
  args: ReadonlyArray<string> = [],
  env: Record<string, string> = {},
  options: { readonly close?: boolean; readonly wrapper?: ReadonlyArray<string> } = {}
) => {
  const running = await serve(args, env, options.wrapper ?? [], options)
  started.push(running)
  return running
}
afterEach(() => {
  for (const running of started.splice(0)) running.child.kill("SIGKILL")
})

const roundTrip = (port: number, payload: Buffer) => Effect.runPromise(Client.roundTrip({ port }, [payload]))

/** A port that was free a moment ago: bound on port 0, then released. */
const freePort = async () => {
  const probe = net.createServer()
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r))
  const port = (probe.address() as net.AddressInfo).port
  await new Promise((r) => probe.close(r))
  return port
}

/** A port held by another listener until `release`. */
const takenPort = async () => {
  const taken = net.createServer()
  await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r))
  return { port: (taken.address() as net.AddressInfo).port, release: () => taken.close() }
}

/** Connects, gets one byte echoed, resets; resolves with the peer's own address (`127.0.0.1:PORT`). */
const peerReset = (port: number) =>
  new Promise<string>((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      const name = `127.0.0.1:${socket.localPort}`
      socket.write("x")
      socket.once("data", () => {
        socket.resetAndDestroy()
        resolve(name)
      })
    })
    socket.on("error", () => {})
  })

describe("serve: what it writes", () => {
  it("stdout gets one line, listening on HOST:PORT; the logs go to stderr; SIGINT ends it with 0", async () => {
    const server = await start(["--backlog", "100000"])
    expect(server.address.host).toBe("127.0.0.1")
    await server.waitFor(/backlog requested 100000, effective \d+/)
    // What bounds the SYN queue, naming tcp_syncookies.
    expect(await server.waitFor(/SYN queue/)).toMatch(/net\.ipv4\.tcp_syncookies=\d/)
    const echoed = await roundTrip(server.address.port, Buffer.from("hello"))
    expect(Buffer.from(echoed).toString()).toBe("hello")
    // The server names the peer that reset, with the built-in echo too (no fiber, no handler).
    const peer = await peerReset(server.address.port)
    expect(await server.waitFor(/reset the connection/)).toContain(`${peer} reset the connection`)
    server.child.kill("SIGINT")
    expect(await server.exited).toBe(0)
    expect(server.stderr.at(-1)).toMatch(/stopped: the port is closed, and no connection is left open$/)
    expect(server.stdout).toEqual([`listening on 127.0.0.1:${server.address.port}`])
    expect(server.stderr.some((line) => line.includes(`listening on 127.0.0.1:${server.address.port}`))).toBe(true)
  })

  it("a closed stdout and stderr (serve 2>&1 | head -1) never stop the server", async () => {
    const server = await start(["--log-level", "debug"], {}, { close: true })
    // Every exchange writes log records now; each would fail with EPIPE.
    for (let i = 0; i < 5; i++) {
      await peerReset(server.address.port)
      const echoed = await roundTrip(server.address.port, Buffer.from(`still here ${i}`))
      expect(Buffer.from(echoed).toString()).toBe(`still here ${i}`)
    }
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
  })

  it("--log-format json writes one JSON object per line on stderr, the first with the address", async () => {
    const server = await start(["--log-format", "json", "--log-level", "debug"])
    await roundTrip(server.address.port, Buffer.from("json"))
    server.child.kill("SIGINT")
    expect(await server.exited).toBe(0)
    const records = server.stderr.map((line) =>
      JSON.parse(line) as { message: string; annotations: Record<string, unknown> }
    )
    expect(records[0]!.annotations.address).toBe(`127.0.0.1:${server.address.port}`)
    // The recipe's per-receive debug line, with the peer annotation.
    const receive = records.find((r) => String(r.message).startsWith("receive data from"))
    expect(receive?.annotations.peer).toMatch(/^127\.0\.0\.1:\d+$/)
  })

  it("--log-format logfmt writes one logfmt record per line on stderr", async () => {
    const server = await start(["--log-format", "logfmt"])
    server.child.kill("SIGINT")
    await server.exited
    for (const line of server.stderr) expect(line).toMatch(/^timestamp=\S+ level=\w+ /)
    expect(server.stderr[0]).toContain(`address=127.0.0.1:${server.address.port}`)
  })

  it("ECHO_LOG_LEVEL takes a known level in any case", async () => {
    const server = await start([], { ECHO_LOG_LEVEL: "WARNING" })
    server.child.kill("SIGINT")
    expect(await server.exited).toBe(0)
    expect(server.stderr.some((line) => line.includes("backlog requested"))).toBe(false)
  })

  it("--log-level wins over ECHO_LOG_LEVEL", async () => {
    const server = await start(["--log-level", "debug"], { ECHO_LOG_LEVEL: "error" })
    await roundTrip(server.address.port, Buffer.from("debug"))
    server.child.kill("SIGINT")
    expect(await server.exited).toBe(0)
    expect(server.stderr.some((line) => /DEBUG .*receive data from/.test(line))).toBe(true)
  })
})

describe("serve: signals", () => {
  it("SIGHUP shuts down gracefully with exit status 0", async () => {
    const server = await start()
    server.child.kill("SIGHUP")
    expect(await server.exited).toBe(0)
    expect(server.stderr.some((line) => line.includes("SIGHUP: shutting down gracefully"))).toBe(true)
    // SIGHUP ends serve by itself (the runtime interrupts on SIGINT and SIGTERM only): said last too.
    expect(server.stderr.at(-1)).toMatch(/stopped: the port is closed, and no connection is left open$/)
  })

  it("a second signal during the shutdown stops it at once, logged, with 128 + the signal's number", async () => {
    const server = await start(["--shutdown-timeout", "1m"])
    // A connected, silent peer keeps the graceful shutdown waiting for its whole minute.
    const peer = net.connect(server.address.port, "127.0.0.1")
    peer.on("error", () => {})
    await new Promise((r) => peer.once("connect", r))
    server.child.kill("SIGINT")
    await server.waitFor(/shutting down: waiting up to 1m/)
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(143)
    expect(
      server.stderr.some((line) =>
        /SIGTERM during the shutdown SIGINT began: stopping at once with exit status 143/.test(line)
      )
    )
      .toBe(true)
    peer.destroy()
  })

  it("SIGUSR1 is logged and ignored: Node's inspector stays closed, the server serves on", async () => {
    const server = await start()
    server.child.kill("SIGUSR1")
    const line = await server.waitFor(/SIGUSR1 ignored|Debugger listening/)
    expect(line).toContain("SIGUSR1 ignored")
    const echoed = await roundTrip(server.address.port, Buffer.from("after SIGUSR1"))
    expect(Buffer.from(echoed).toString()).toBe("after SIGUSR1")
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
    expect(server.stderr.some((l) => l.includes("Debugger listening"))).toBe(false)
  })

  it("--inspect-on-sigusr1 is stated at start as the exposure it is", async () => {
    const server = await start(["--inspect-on-sigusr1"])
    expect(await server.waitFor(/SIGUSR1 opens Node's inspector/)).toContain("127.0.0.1:9229")
  })
})

describe("serve: addresses and ports", () => {
  it("a port in use exits 1 naming the address and where it came from", async () => {
    const taken = await takenPort()
    const result = run(["serve", "--port", String(taken.port)])
    taken.release()
    expect(result.status).toBe(1)
    expect(result.stderr).toBe(`effect-tcp-echo: 127.0.0.1:${taken.port} is already in use (address from --port)\n`)
    expect(result.stdout).toBe("")
  })

  it("a metrics port in use fails before the server is announced, naming the reason", async () => {
    const taken = await takenPort()
    const result = run(["serve", "--metrics-port", String(taken.port)])
    taken.release()
    expect(result.status).toBe(1)
    expect(result.stderr).toBe(
      `effect-tcp-echo: cannot serve metrics: 127.0.0.1:${taken.port} is already in use (port from --metrics-port)\n`
    )
    expect(result.stdout).toBe("")
  })

  it("--metrics-port 0: stdout's second line says where the kernel put the metrics", async () => {
    const server = await start(["--metrics-port", "0"])
    const logged = await server.waitFor(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/)
    const port = Number(/:(\d+)\/metrics/.exec(logged)![1])
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200)
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
    // The first line as it always was, for whoever reads only that one.
    expect(server.stdout).toEqual([`listening on 127.0.0.1:${server.address.port}`, `metrics on 127.0.0.1:${port}`])
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

  // In a network namespace of its own, whose only interface is loopback: 0.0.0.0 reaches nothing else.
  const isolated = spawnSync("unshare", ["-rn", "sh", "-c", "ip link set lo up"]).status === 0
  it.skipIf(!isolated)(
    isolated
      ? "--host 0.0.0.0 binds with a warning naming the exposure (in a loopback-only network namespace)"
      : "--host 0.0.0.0 warning: NOT RUN, no network namespace of its own here (unshare -rn, ip)",
    async () => {
      const server = await start(["--host", "0.0.0.0"], {}, {
        wrapper: ["unshare", "-rn", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""]
      })
      expect(server.address.host).toBe("0.0.0.0")
      expect(await server.waitFor(/WARN.*every interface of this machine/)).toContain("--host 127.0.0.1")
    }
  )

  it("ECHO_PORT is honoured, and a flag wins over its variable", async () => {
    const port = await freePort()
    const fromEnv = await start([], { ECHO_PORT: String(port) })
    expect(fromEnv.address.port).toBe(port)
    const fromFlag = await start(["--port", "0"], { ECHO_PORT: String(port) })
    expect(fromFlag.address.port).not.toBe(port)
  })
})

describe("serve: keep-alive", () => {
  const hasSs = spawnSync("ss", ["-V"]).status === 0
  it.skipIf(!hasSs)(
    hasSs
      ? "--keep-alive-delay sets the idle time before the first probe (ss shows the timer)"
      : "--keep-alive-delay: NOT RUN, ss (iproute2) is not installed",
    async () => {
      const server = await start(["--keep-alive-delay", "60s"])
      const peer = net.connect(server.address.port, "127.0.0.1")
      peer.on("error", () => {})
      await new Promise((r) => peer.once("connect", r))
      // Accepted once the server's side is established; its keepalive timer is armed at accept.
      await roundTrip(server.address.port, Buffer.from("x"))
      const out = spawnSync("ss", ["-tnoH", "state", "established", `( sport = :${server.address.port} )`], {
        encoding: "utf8"
      })
      const timer = /timer:\(keepalive,(\d+)sec/.exec(out.stdout)
      expect(timer, out.stdout).not.toBeNull()
      expect(Number(timer![1])).toBeLessThanOrEqual(60)
      peer.destroy()
    }
  )

  it("a switch its variable turned on is turned off by its --no- flag", async () => {
    const on = await start([], { ECHO_KEEP_ALIVE: "true" })
    await on.waitFor(/keep-alive on: first probe after/)
    const off = await start(["--no-keep-alive"], { ECHO_KEEP_ALIVE: "true" })
    // The report's last line is the open-files limit: the keep-alive line would come before it.
    await off.waitFor(/open files limit/)
    expect(off.stderr.some((line) => line.includes("keep-alive on"))).toBe(false)
  })

  it("the keep-alive delay is stated at start", async () => {
    const server = await start(["--keep-alive"])
    expect(await server.waitFor(/keep-alive on: first probe after/)).toMatch(
      /first probe after (\d+s idle|the kernel)[^,]*, then every 1s; a peer that answers none of 10 probes is closed/
    )
  })
})

describe("serve: errors name the flag or variable", () => {
  it("a usage error is one line naming the flag, a hint, exit status 2, and nothing on stdout", () => {
    expectUsage(
      run(["serve", "--port", "abc"]),
      "effect-tcp-echo: invalid --port \"abc\": expected an integer from 0 to 65535"
    )
    expectUsage(run(["serve"], { ECHO_LOG_LEVEL: "loud" }), "invalid ECHO_LOG_LEVEL \"loud\"", "info")
  })
})

describe("serve: behind a load balancer", () => {
  it("--metrics-host binds the metrics port there; without --metrics-port it is refused", async () => {
    expectUsage(
      await usageError(["serve", "--metrics-host", "127.0.0.2"]),
      "--metrics-host takes effect only with --metrics-port"
    )
    expectUsage(
      await usageError(["serve", "--metrics-port", "0", "--metrics-host", "::"]),
      "invalid --metrics-host \"::\"",
      "IPv4"
    )
    const server = await start(["--metrics-port", "0", "--metrics-host", "127.0.0.2"])
    const base = /http:\/\/127\.0\.0\.2:\d+/.exec(await server.waitFor(/metrics on http/))![0]
    expect((await fetch(`${base}/readyz`)).status).toBe(200)
    // Loopback still: no warning about other hosts.
    expect(server.stderr.some((line) => line.includes("reachable from other hosts"))).toBe(false)
  })

  it("--proxy-protocol: a header names the client in the logs; none, or an untrusted source, is refused and counted", async () => {
    const server = await start([
      "--proxy-protocol",
      "--proxy-header-timeout",
      "2s",
      "--metrics-port",
      "0",
      "--log-level",
      "debug"
    ])
    await server.waitFor(/PROXY protocol on: a header \(v1 or v2\) from 127\.0\.0\.0\/8 within 2s/)
    const url = /http:\/\/\S+\/metrics/.exec(await server.waitFor(/metrics on http/))![0]
    const port = server.address.port
    const exchange = (bytes: Buffer) =>
      new Promise<Buffer>((resolve) => {
        const socket = net.connect(port, "127.0.0.1", () => socket.end(bytes))
        const chunks: Array<Buffer> = []
        socket.on("data", (d: Buffer) => chunks.push(d))
        socket.on("error", () => {})
        socket.once("close", () => resolve(Buffer.concat(chunks)))
      })
    const echoed = await exchange(Buffer.from("PROXY TCP4 127.9.8.7 127.0.0.1 40000 7\r\nthrough a proxy"))
    expect(echoed.toString()).toBe("through a proxy")
    await server.waitFor(/receive data from 127\.9\.8\.7:40000/)
    expect((await exchange(Buffer.from("no header at all\r\n"))).length).toBe(0)
    const text = await (await fetch(url)).text()
    expect(text).toMatch(/^echo_connections_dropped_total\{reason="proxy_malformed"\} 1$/m)
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)

    const strict = await start(["--proxy-protocol", "--trusted-proxies", "10.0.0.0/8,192.0.2.7", "--metrics-port", "0"])
    const strictUrl = /http:\/\/\S+\/metrics/.exec(await strict.waitFor(/metrics on http/))![0]
    await new Promise<void>((resolve) => {
      const socket = net.connect(
        strict.address.port,
        "127.0.0.1",
        () => socket.write("PROXY TCP4 127.9.8.7 127.0.0.1 40000 7\r\n")
      )
      socket.on("error", () => {})
      socket.once("close", () => resolve())
    })
    await strict.waitFor(/refused connection from 127\.0\.0\.1:\d+: not a trusted proxy/)
    expect(await (await fetch(strictUrl)).text()).toMatch(
      /^echo_connections_dropped_total\{reason="proxy_untrusted"\} 1$/m
    )
  })

  it("SIGTERM with --drain-delay: /readyz fails at once, the port still accepts during the delay, then it closes", async () => {
    const server = await start(["--metrics-port", "0", "--drain-delay", "3s"])
    const base = /http:\/\/\S+(?=\/metrics)/.exec(await server.waitFor(/metrics on http/))![0]
    expect((await fetch(`${base}/healthz`)).status).toBe(200)
    expect((await fetch(`${base}/readyz`)).status).toBe(200)
    server.child.kill("SIGTERM")
    expect(await untilNotReady(base)).toBe(503)
    // Alive, not ready, and still serving: endpoints are being removed, the port is open.
    expect((await fetch(`${base}/healthz`)).status).toBe(200)
    const echoed = await roundTrip(server.address.port, Buffer.from("during the drain delay"))
    expect(Buffer.from(echoed).toString()).toBe("during the drain delay")
    expect(server.stderr.some((line) => line.includes("accepting for 3s more (drain delay)"))).toBe(true)
    expect(await server.exited).toBe(0)
    const refused = await new Promise<string>((resolve) => {
      const socket = net.connect(server.address.port, "127.0.0.1", () => resolve("connected"))
      socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
    })
    expect(refused).toBe("ECONNREFUSED")
  })
})

describe("--help", () => {
  it("serve --help: each flag once, with its variable and its default, at most 80 columns", () => {
    const result = run(["serve", "--help"])
    expect(result.status).toBe(0)
    const lines = result.stdout.split("\n")
    expect(lines[0]).toBe("Usage: effect-tcp-echo serve [FLAGS]")
    for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(80)
    const flags = lines.filter((l) => /^ {2}--/.test(l)).map((l) => l.trim().split(" ")[0])
    expect(new Set(flags).size).toBe(flags.length)
    expect(flags).toContain("--log-level")
    // Each flag's paragraph, up to the next flag.
    const text = result.stdout.slice(result.stdout.indexOf("Flags:"), result.stdout.indexOf("Exit status:"))
    const paragraphs = text.split(/\n(?= {2}--)/).slice(1).filter((p) => !p.startsWith("  --help"))
    for (const paragraph of paragraphs) {
      const flat = paragraph.replace(/\s+/g, " ")
      expect(flat, paragraph).toMatch(/Variable: ECHO_[A-Z0-9_]+\./)
      expect(flat, paragraph).toMatch(/Default: /)
    }
    expect(result.stdout).not.toContain("This setting is optional")
    expect(result.stdout).toContain("143 SIGTERM")
  })

  it("the program's help lists each command on a line of its own", () => {
    const result = run(["--help"])
    expect(result.status).toBe(0)
    for (const line of result.stdout.split("\n")) expect(line.length, line).toBeLessThanOrEqual(80)
    for (const command of ["serve", "probe", "client"]) {
      expect(result.stdout).toMatch(new RegExp(`^  ${command} +\\S`, "m"))
    }
  })
})

describe("client", () => {
  it("round-trips binary stdin (or --message) and exits 0 when the echo matches", async () => {
    const server = await start()
    const payload = Buffer.alloc(300_000)
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + (i >> 8)) & 0xff
    const result = run(["client", "--port", String(server.address.port)], {}, payload)
    expect(result.status).toBe(0)
    expect(result.raw.equals(payload)).toBe(true)
    // --message sends that text instead.
    const message = run(["client", "--port", String(server.address.port), "--message", "hello"])
    expect(message.status).toBe(0)
    expect(message.stdout).toBe("hello")
  })

  it("a port out of range, or none, is a usage error naming the flag", async () => {
    expectUsage(run(["client", "--port", "99999", "--message", "x"]), "invalid --port \"99999\"", "1 to 65535")
    for (const port of ["-1", "0"]) {
      expectUsage(
        await usageError(["client", "--port", port, "--message", "x"]),
        `invalid --port ${JSON.stringify(port)}`
      )
    }
    expectUsage(await usageError(["client", "--message", "x"]), "client needs --port")
  })

  it("a stdout closed early (client | head -c 10) ends it with one line, not a stack", async () => {
    const server = await start()
    const result = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [bin, "client", "--port", String(server.address.port)], {
        env: { ...process.env, NO_COLOR: "1" }
      })
      let stderr = ""
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
      child.stdout.once("data", () => child.stdout.destroy())
      child.stdin.on("error", () => {})
      child.stdin.end(Buffer.alloc(4 * 2 ** 20, 7))
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
      child.once("close", (status) => {
        clearTimeout(timer)
        resolve({ status, stderr })
      })
    })
    expect(result.status).toBe(1)
    expect(result.stderr).toMatch(/^effect-tcp-echo: stdout was closed before everything was written \(EPIPE\)\n$/)
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
    expect(result.status).toBe(1)
    expect(result.stderr).toContain("differs")
  })

  it("a server that resets is named by its address", async () => {
    const rude = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.once("data", () => socket.resetAndDestroy())
      socket.on("error", () => {})
    })
    await new Promise<void>((r) => rude.listen(0, "127.0.0.1", r))
    const port = (rude.address() as net.AddressInfo).port
    const result = await runAsync(["client", "--port", String(port), "--message", "hello"])
    rude.close()
    expect(result.status).toBe(1)
    expect(result.stderr).toBe(`effect-tcp-echo: 127.0.0.1:${port} reset the connection\n`)
  })

  it("exits non-zero when nothing listens", async () => {
    const port = await freePort()
    const result = run(["client", "--port", String(port), "--message", "x"])
    expect(result.status).toBe(1)
    expect(result.stderr).toBe(`effect-tcp-echo: 127.0.0.1:${port} refused the connection (nothing listens there)\n`)
  })

  it("exits at --timeout even while stdin stays open", async () => {
    const server = await start()
    // runAsync leaves the child's stdin open and silent: the read of stdin never ends.
    const result = await runAsync(["client", "--port", String(server.address.port), "--timeout", "300ms"])
    expect(result.status).toBe(1)
    expect(result.stderr).toContain("no complete echo within 300ms")
  })

  it("exits non-zero at --timeout when the server never answers", async () => {
    const silent = net.createServer({ allowHalfOpen: true }, () => {})
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r))
    const port = (silent.address() as net.AddressInfo).port
    const result = run(["client", "--port", String(port), "--message", "x", "--timeout", "300ms"])
    silent.close()
    expect(result.status).toBe(1)
    expect(result.stderr).toContain("no complete echo within")
  })
})

describe("probe", () => {
  it("--json prints one object keyed by limit, with tcp_syncookies and what bounds the SYN queue", () => {
    const result = run(["probe", "--json", "--backlog", "100000"])
    expect(result.status).toBe(0)
    const limits = JSON.parse(result.stdout)
    expect(typeof limits.somaxconn).toBe("number")
    expect(typeof limits.tcpSyncookies).toBe("number")
    expect(limits.backlog.requested).toBe(100000)
    expect(limits.backlog.effective).toBe(Math.min(100000, limits.somaxconn))
    expect(limits.synQueue).toContain(`about ${limits.backlog.effective} half-open`)
  })

  it("prints a table naming each limit and how to set it, then the SYN queue", () => {
    const result = run(["probe"])
    expect(result.status).toBe(0)
    expect(result.stdout).toMatch(/somaxconn\s+\d+\s+sysctl net\.core\.somaxconn/)
    expect(result.stdout).toMatch(/tcpSyncookies\s+\d\s+sysctl net\.ipv4\.tcp_syncookies/)
    expect(result.stdout).toMatch(/\nSYN queue: /)
    // What each limit governs on a line of its own: no line wider than 100 columns.
    expect(result.stdout).toMatch(/somaxconn.*\n {4}upper bound of every listen\(\) backlog/)
    for (const line of result.stdout.split("\n")) expect(line.length, line).toBeLessThanOrEqual(100)
  })
})

describe("serve --metrics-port and shutdown", () => {
  it("SIGTERM exits while an idle connection is open on the metrics port", async () => {
    const server = await start(["--metrics-port", "0", "--shutdown-timeout", "1s"])
    const line = await server.waitFor(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/)
    const port = Number(/:(\d+)\/metrics/.exec(line)![1])
    // A scraper's idle keep-alive connection, or any silent one: it used to hold the process.
    const idle = net.connect(port, "127.0.0.1")
    idle.on("error", () => {})
    await new Promise((r) => idle.once("connect", r))
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
    idle.destroy()
  })

  it("a metrics port in use fails before the server is announced, naming the reason", async () => {
    const taken = net.createServer()
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r))
    const port = (taken.address() as net.AddressInfo).port
    const result = run(["serve", "--metrics-port", String(port)])
    taken.close()
    expect(result.status).not.toBe(0)
    expect(result.stdout).not.toContain("listening on")
    expect(result.stderr).toContain(`127.0.0.1:${port} is already in use`)
    expect(result.stderr).toContain("--metrics-port")
  })
})
