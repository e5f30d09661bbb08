/**
 * watchDomainConsole against a scripted console process: the exact command it runs, the banner it skips,
 * the marker, and the timeout, abort and early-exit paths, each with the console released (^], then signals)
 * before the promise settles. Time is a manual clock: no test sleeps.
 */
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { ConsoleError, VirshError } from "../../../../src/common/errors.js";
import {
  CONSOLE_ESCAPE,
  watchDomainConsole,
  type ConsoleChild,
  type ConsoleExit,
  type ConsoleTimers,
} from "../../../../src/provisioner/libvirt/console.js";

const BANNER =
  "Authorization not available. Check if polkit service is running or see debug message for more information.\r\n" +
  "Connected to domain 'rfvmA'\r\nEscape character is ^] (Ctrl + ])\r\n";

/** ManualTimers is a clock that moves only when told to. */
class ManualTimers implements ConsoleTimers {
  t = 1000;
  private seq = 0;
  private readonly due = new Map<number, { at: number; fn: () => void }>();
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    const id = ++this.seq;
    this.due.set(id, { at: this.t + ms, fn });
    return id;
  };
  clearTimeout = (h: unknown) => {
    this.due.delete(h as number);
  };
  get pending(): number {
    return this.due.size;
  }
  /** advance moves the clock, firing what falls due in order, letting promises run between timers. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const next = [...this.due.entries()].sort((a, b) => a[1].at - b[1].at)[0];
      if (!next || next[1].at > end) break;
      this.t = next[1].at;
      this.due.delete(next[0]);
      next[1].fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

/** FakeConsole plays `script` + `virsh console`: it leaves on ^] unless told to be stubborn. */
class FakeConsole implements ConsoleChild {
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly stdin = new PassThrough();
  readonly typed: string[] = [];
  readonly signals: string[] = [];
  stdinEndedWhileRunning = false;
  private done!: (e: ConsoleExit) => void;
  running = true;
  readonly exited = new Promise<ConsoleExit>((r) => (this.done = r));
  constructor(
    readonly file: string,
    readonly args: readonly string[],
    readonly env: NodeJS.ProcessEnv,
    private readonly leaves: "on-escape" | "on-term" | "never" = "on-escape",
  ) {
    this.stdin.on("data", (d: Buffer) => {
      this.typed.push(d.toString("latin1"));
      if (d.toString("latin1").includes(CONSOLE_ESCAPE) && this.leaves === "on-escape") this.exit(0, null);
    });
    this.stdin.on("close", () => {
      if (this.running) this.stdinEndedWhileRunning = true;
    });
  }
  kill(signal: NodeJS.Signals): void {
    this.signals.push(signal);
    if (signal === "SIGKILL" || (signal === "SIGTERM" && this.leaves === "on-term")) this.exit(null, signal);
  }
  exit(code: number | null, signal: string | null): void {
    if (!this.running) return;
    this.running = false;
    this.done({ code, signal });
  }
  say(text: string): void {
    this.stdout.write(text);
  }
}

function setup(leaves: "on-escape" | "on-term" | "never" = "on-escape") {
  const timers = new ManualTimers();
  const spawned: FakeConsole[] = [];
  const spawn = (file: string, args: readonly string[], env: NodeJS.ProcessEnv) => {
    const c = new FakeConsole(file, args, env, leaves);
    spawned.push(c);
    return c;
  };
  return { timers, spawned, spawn, child: () => spawned[0] as FakeConsole };
}

describe("watchDomainConsole", () => {
  it("runs virsh console under script with a constant command; URI and domain travel in the environment", async () => {
    const { timers, spawn, child } = setup();
    const uri = "lxc+ssh://root@h1/system?keyfile=/k";
    const p = watchDomainConsole({
      uri,
      domain: "rfvm'; rm -rf / #",
      marker: /BOOTED/,
      timeoutMs: 5000,
      spawn,
      timers,
      virsh: "/usr/bin/virsh",
    });
    const c = child();
    expect(c.file).toBe("script");
    expect(c.args).toEqual([
      "-q",
      "-e",
      "-c",
      'exec "$RFBOOT_VIRSH" -c "$RFBOOT_CONSOLE_URI" console --domain "$RFBOOT_CONSOLE_DOMAIN"',
      "/dev/null",
    ]);
    expect(c.env).toMatchObject({
      SHELL: "/bin/sh",
      LC_ALL: "C",
      RFBOOT_VIRSH: "/usr/bin/virsh",
      RFBOOT_CONSOLE_URI: uri,
      RFBOOT_CONSOLE_DOMAIN: "rfvm'; rm -rf / #",
    });
    c.say(BANNER + "RFBOOT-GUEST-BOOTED name=x\r\n");
    await flush();
    await expect(p).resolves.toMatchObject({ line: "RFBOOT-GUEST-BOOTED name=x" });
  });

  it("resolves on the marker line, skipping virsh's banner, then releases the console with ^] only", async () => {
    const { timers, spawn, child } = setup();
    const p = watchDomainConsole({
      uri: "lxc:///system",
      domain: "rfvmA",
      // Would match the banner's "Connected to domain 'rfvmA'" line: the banner is not the guest's output.
      marker: /rfvmA/g,
      timeoutMs: 5000,
      spawn,
      timers,
    });
    const c = child();
    c.say(BANNER.slice(0, 40));
    await timers.advance(10);
    c.say(BANNER.slice(40) + "RFBOOT-NIC name=eth0 mac=02:a1:a1:a1:a1:a1\r\nRFBOOT-GUEST-BOO");
    await timers.advance(15);
    c.say("TED name=rfvmA uptime=0.06\r\nRFBOOT-HEARTBEAT n=1\r\n");
    await flush();
    await expect(p).resolves.toEqual({ line: "RFBOOT-GUEST-BOOTED name=rfvmA uptime=0.06", elapsedMs: 25 });
    expect(c.typed).toEqual([CONSOLE_ESCAPE]);
    expect(c.signals).toEqual([]);
    expect(c.stdinEndedWhileRunning).toBe(false);
    expect(c.running).toBe(false);
    expect(timers.pending).toBe(0);
  });

  it("times out with an error naming the domain, after releasing the console", async () => {
    const { timers, spawn, child } = setup();
    const p = watchDomainConsole({
      uri: "lxc:///system",
      domain: "rfvmB",
      marker: /RFBOOT-GUEST-BOOTED/,
      timeoutMs: 3000,
      spawn,
      timers,
    });
    const c = child();
    c.say(BANNER + "RFBOOT-HEARTBEAT n=1\r\n");
    const caught = p.catch((e: unknown) => e);
    await timers.advance(2999);
    expect(c.running).toBe(true);
    await timers.advance(1);
    const err = (await caught) as ConsoleError;
    expect(err).toBeInstanceOf(ConsoleError);
    expect(err.kind).toBe("timeout");
    expect(err.domain).toBe("rfvmB");
    expect(err.message).toBe(
      "no console line of domain 'rfvmB' on lxc:///system matched /RFBOOT-GUEST-BOOTED/ within 3000 ms",
    );
    expect(c.typed).toEqual([CONSOLE_ESCAPE]);
    expect(c.running).toBe(false);
  });

  it("a timeout before virsh attached says so, with virsh's last line", async () => {
    const { timers, spawn, child } = setup();
    const p = watchDomainConsole({
      uri: "lxc:///system",
      domain: "rfvmB",
      marker: /x/,
      timeoutMs: 100,
      spawn,
      timers,
    });
    child().say("Authorization not available.\r\n");
    const caught = p.catch((e: unknown) => e);
    await timers.advance(100);
    expect(((await caught) as Error).message).toMatch(
      /within 100 ms \(virsh console never attached: Authorization not available\.\)$/,
    );
  });

  it("abort rejects with an error naming the domain; an already aborted signal spawns nothing", async () => {
    const { timers, spawn, spawned, child } = setup();
    const ac = new AbortController();
    const p = watchDomainConsole({
      uri: "lxc:///system",
      domain: "rfvmC",
      marker: /x/,
      timeoutMs: 60_000,
      signal: ac.signal,
      spawn,
      timers,
    });
    const caught = p.catch((e: unknown) => e);
    ac.abort();
    const err = (await caught) as ConsoleError;
    expect(err.kind).toBe("aborted");
    expect(err.message).toBe("watching the console of domain 'rfvmC' on lxc:///system was aborted");
    expect(child().running).toBe(false);
    expect(timers.pending).toBe(0);

    const before = spawned.length;
    const again = watchDomainConsole({
      uri: "lxc:///system",
      domain: "rfvmC",
      marker: /x/,
      timeoutMs: 1,
      signal: ac.signal,
      spawn,
      timers,
    });
    await expect(again).rejects.toMatchObject({ kind: "aborted", domain: "rfvmC" });
    expect(spawned.length).toBe(before);
  });

  it("escalates to SIGTERM then SIGKILL when virsh does not leave on ^], and keeps stdin open until it is gone", async () => {
    for (const leaves of ["on-term", "never"] as const) {
      const { timers, spawn, child } = setup(leaves);
      const p = watchDomainConsole({
        uri: "lxc:///system",
        domain: "rfvmD",
        marker: /M/,
        timeoutMs: 5000,
        spawn,
        timers,
        releaseMs: 500,
      });
      const c = child();
      c.say(BANNER + "M\n");
      await flush();
      expect(c.typed).toEqual([CONSOLE_ESCAPE]);
      await timers.advance(499);
      expect(c.signals).toEqual([]);
      await timers.advance(1);
      expect(c.signals).toEqual(["SIGTERM"]);
      if (leaves === "never") {
        await timers.advance(500);
        expect(c.signals).toEqual(["SIGTERM", "SIGKILL"]);
      }
      await expect(p).resolves.toMatchObject({ line: "M" });
      expect(c.stdinEndedWhileRunning).toBe(false);
      expect(timers.pending).toBe(0);
    }
  });

  it("virsh ending first is an `exited` error whose cause is virsh's classified error", async () => {
    const { timers, spawn, child } = setup();
    const p = watchDomainConsole({
      uri: "lxc:///system",
      domain: "rfvmE",
      marker: /x/,
      timeoutMs: 5000,
      spawn,
      timers,
    });
    const c = child();
    c.say("error: failed to get domain 'rfvmE'\r\n");
    await flush();
    c.exit(1, null);
    const err = (await p.catch((e: unknown) => e)) as ConsoleError;
    expect(err.kind).toBe("exited");
    expect(err.message).toBe(
      "virsh console for domain 'rfvmE' on lxc:///system ended (exit 1) before a line matched /x/: error: failed to get domain 'rfvmE'",
    );
    expect(err.cause).toBeInstanceOf(VirshError);
    expect((err.cause as VirshError).kind).toBe("domain-missing");
    expect(c.typed).toEqual([]);
    expect(timers.pending).toBe(0);
  });

  it("onAttached is called once, when the banner ends and before any guest line; never when virsh fails first", async () => {
    const { timers, spawn, spawned } = setup();
    const calls: string[] = [];
    const p = watchDomainConsole({
      uri: "qemu+tcp://h2/system",
      domain: "rfvmQ",
      marker: /BOOTED/,
      timeoutMs: 5000,
      spawn,
      timers,
      onAttached: () => calls.push("attached"),
    });
    const c = spawned[0]!;
    c.say(BANNER.slice(0, 60));
    await flush();
    expect(calls).toEqual([]);
    c.say(BANNER.slice(60));
    await flush();
    expect(calls).toEqual(["attached"]);
    c.say(
      "[    0.000000] Linux version 6.1\r\nEscape character is ^] (not virsh's, the guest's)\r\nBOOTED\r\n",
    );
    await flush();
    await expect(p).resolves.toMatchObject({ line: "BOOTED" });
    expect(calls).toEqual(["attached"]);

    const failed: string[] = [];
    const q = watchDomainConsole({
      uri: "qemu+tcp://h2/system",
      domain: "rfvmR",
      marker: /BOOTED/,
      timeoutMs: 5000,
      spawn,
      timers,
      onAttached: () => failed.push("attached"),
    });
    const d = spawned[1]!;
    d.say("error: failed to get domain 'rfvmR'\r\n");
    await flush();
    d.exit(1, null);
    await expect(q).rejects.toBeInstanceOf(ConsoleError);
    expect(failed).toEqual([]);
  });

  it("a console process that cannot start is a `spawn` error naming script", async () => {
    const { timers } = setup();
    const p = watchDomainConsole({
      uri: "lxc:///system",
      domain: "rfvmF",
      marker: /x/,
      timeoutMs: 5000,
      timers,
      script: "/nonexistent/script",
    });
    const err = (await p.catch((e: unknown) => e)) as ConsoleError;
    expect(err.kind).toBe("spawn");
    expect(err.message).toMatch(
      /^cannot watch the console of domain 'rfvmF' on lxc:\/\/\/system: \/nonexistent\/script \(util-linux\) did not start: .*ENOENT/,
    );
  });

  it("a line without a newline longer than 64 KiB is tested and dropped, not kept", async () => {
    const { timers, spawn, child } = setup();
    const p = watchDomainConsole({
      uri: "lxc:///system",
      domain: "rfvmG",
      marker: /END/,
      timeoutMs: 5000,
      spawn,
      timers,
    });
    const c = child();
    c.say(BANNER + "x".repeat(70 * 1024));
    await flush();
    c.say("yyy END\n");
    await flush();
    await expect(p).resolves.toMatchObject({ line: "yyy END" });
  });
});

const PROMPT = "\x1b[?2004hvirsh # ";

/**
 * FakeShell plays `script` + an interactive virsh: its prompt once connected, `console --domain NAME` typed
 * into it (the banner, or virsh's errors and the prompt again for `missing`), the prompt after ^], and an exit
 * on `quit`.
 */
class FakeShell extends FakeConsole {
  missing = new Set<string>();
  constructor(file: string, args: readonly string[], env: NodeJS.ProcessEnv) {
    super(file, args, env, "never");
    this.stdin.on("data", (d: Buffer) => {
      const text = d.toString("latin1");
      const cmd = /^console --domain '([^']*)'\n$/.exec(text);
      if (cmd) {
        const name = cmd[1]!;
        this.say(`${text.trimEnd()}\r\n\x1b[?2004l\r`);
        if (this.missing.has(name))
          this.say(
            `error: failed to get domain '${name}'\r\nerror: Domain not found: no domain with matching name '${name}'\r\n${PROMPT}`,
          );
        else this.say(`Connected to domain '${name}'\r\nEscape character is ^] (Ctrl + ])\r\n`);
      } else if (text === CONSOLE_ESCAPE) this.say(PROMPT);
      else if (text === "quit\n") this.exit(0, null);
    });
  }
  /** connect: virsh is up and connected, waiting at its prompt. */
  connect(): void {
    this.say("Welcome to virsh, the virtualization interactive terminal.\r\n\r\n" + PROMPT);
  }
}

function shellSetup() {
  const timers = new ManualTimers();
  const spawned: FakeShell[] = [];
  const spawn = (file: string, args: readonly string[], env: NodeJS.ProcessEnv) => {
    const c = new FakeShell(file, args, env);
    spawned.push(c);
    return c;
  };
  let running: () => void = () => undefined;
  let failed: (e: Error) => void = () => undefined;
  const when = new Promise<void>((res, rej) => {
    running = res;
    failed = rej;
  });
  return { timers, spawned, spawn, when, running, failed, child: () => spawned[0] as FakeShell };
}

/** watchShell watches `domain`'s console for /UP/ through a shellSetup's fake shell and `when`. */
function watchShell(
  x: ReturnType<typeof shellSetup>,
  domain: string,
  extra: Partial<Parameters<typeof watchDomainConsole>[0]> = {},
) {
  const { spawn, timers, when } = x;
  return watchDomainConsole({
    uri: "lxc:///system",
    domain,
    marker: /UP/,
    timeoutMs: 5000,
    spawn,
    timers,
    when,
    ...extra,
  });
}

describe("watchDomainConsole with `when` (an interactive virsh started before the domain runs)", () => {
  it("starts virsh at once, types `console` only once `when` resolved, reports the match before releasing with ^] then quit", async () => {
    const x = shellSetup();
    const { timers, child, running } = x;
    const seen: string[] = [];
    let settled = false;
    const p = watchShell(x, "rfvmA", {
      marker: /RFBOOT-GUEST-BOOTED/,
      onMatch: (m) => seen.push(`match ${m.line} settled=${settled}`),
    });
    void p.then(() => (settled = true));
    const c = child();
    expect(c.args).toEqual(["-q", "-e", "-c", 'exec "$RFBOOT_VIRSH" -c "$RFBOOT_CONSOLE_URI"', "/dev/null"]);
    expect(c.env).toMatchObject({ RFBOOT_CONSOLE_URI: "lxc:///system" });
    expect(c.env.RFBOOT_CONSOLE_DOMAIN).toBeUndefined();
    c.connect();
    await timers.advance(20);
    expect(c.typed).toEqual([]);
    running();
    await flush();
    expect(c.typed).toEqual(["console --domain 'rfvmA'\n"]);
    c.say("RFBOOT-NIC name=eth0 mac=02:a1:a1:a1:a1:a1\r\nRFBOOT-GUEST-BOOTED name=rfvmA uptime=0.06\r\n");
    await flush();
    await expect(p).resolves.toEqual({ line: "RFBOOT-GUEST-BOOTED name=rfvmA uptime=0.06", elapsedMs: 20 });
    expect(seen).toEqual(["match RFBOOT-GUEST-BOOTED name=rfvmA uptime=0.06 settled=false"]);
    expect(c.typed).toEqual(["console --domain 'rfvmA'\n", CONSOLE_ESCAPE, "quit\n"]);
    expect(c.signals).toEqual([]);
    expect(c.running).toBe(false);
    expect(timers.pending).toBe(0);
  });

  it("`when` resolved before virsh is connected: `console` is typed at its first prompt", async () => {
    const x = shellSetup();
    const { child, running } = x;
    const p = watchShell(x, "rfvmA");
    running();
    await flush();
    const c = child();
    expect(c.typed).toEqual([]);
    c.connect();
    await flush();
    expect(c.typed).toEqual(["console --domain 'rfvmA'\n"]);
    c.say("UP\r\n");
    await expect(p).resolves.toMatchObject({ line: "UP" });
  });

  it("a console command that fails is an `exited` error with virsh's classified error; the shell quits, no ^]", async () => {
    const x = shellSetup();
    const { child, running } = x;
    const p = watchShell(x, "rfvmM");
    const caught = p.catch((e: unknown) => e);
    const c = child();
    c.missing.add("rfvmM");
    c.connect();
    running();
    await flush();
    const err = (await caught) as ConsoleError;
    expect(err.kind).toBe("exited");
    expect(err.message).toContain("virsh's console command failed");
    expect(err.message).toContain("Domain not found");
    expect((err.cause as VirshError).kind).toBe("domain-missing");
    expect(c.typed).toEqual(["console --domain 'rfvmM'\n", "quit\n"]);
    expect(c.running).toBe(false);
  });

  it("aborted (or `when` rejected: the start failed) before the domain ran: the shell quits, nothing is typed into a console", async () => {
    for (const how of ["abort", "reject"] as const) {
      const x = shellSetup();
      const { child, failed } = x;
      const ac = new AbortController();
      const p = watchShell(x, "rfvmA", { signal: ac.signal });
      const caught = p.catch((e: unknown) => e);
      const c = child();
      c.connect();
      await flush();
      if (how === "abort") ac.abort();
      else failed(new Error("start failed"));
      const err = (await caught) as ConsoleError;
      expect(err.kind).toBe("aborted");
      expect(c.typed).toEqual(["quit\n"]);
      expect(c.running).toBe(false);
    }
  });

  it("the console closing under it (the domain stopped) is an `exited` error", async () => {
    const x = shellSetup();
    const { child, running } = x;
    const p = watchShell(x, "rfvmA");
    const caught = p.catch((e: unknown) => e);
    const c = child();
    c.connect();
    running();
    await flush();
    c.say("booting\r\n" + PROMPT);
    const err = (await caught) as ConsoleError;
    expect(err.kind).toBe("exited");
    expect(err.message).toContain("the console closed");
    expect(c.typed).toEqual(["console --domain 'rfvmA'\n", "quit\n"]);
  });
});
