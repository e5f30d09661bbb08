#!/usr/bin/python3
"""Unattended Mininet driver for rftest: builds a topology, starts it, and takes commands on a socket.

Mininet's CLI needs a terminal; rftest runs in the background (CI has no TTY), so this driver
keeps the network up and answers one command per connection on a Unix socket. Every event
and every reply is also appended, as one JSON object per line, to STATE_DIR/events.jsonl.

Server (run as root, in the background):
  run.py serve --topo rftest2 --state-dir DIR [--controller tcp:127.0.0.1:6653 ...]
               [--loop rstp|stp|none] [--protocols OpenFlow10,OpenFlow13]
               [--addressing l2|routed] [--fail-mode secure|standalone]
Client (prints the JSON reply; exit 0 when "ok" is true, 1 otherwise, 2 on bad usage):
  run.py ctl --state-dir DIR status | pingall [timeout_s] | ping h5 h8
          | link s5 s6 down|up | switch s5 stop|start | wait-converged [timeout_s] | quit
Cleanup of one topology's names without a running driver (after a crash or SIGKILL):
  run.py cleanup --topo rftest2

Uses Debian's python3 (Mininet lives in /usr/lib/python3/dist-packages).
"""

import argparse
import faulthandler
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from functools import partial

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

TOPOS = {
    "rftest2": ("rftest2", "RFTest2Topo", ("s5", "s6", "s7", "s8"), ("h5", "h6", "h7", "h8")),
    "rftest1": ("rftest1", "RFTest1Topo", ("s99",), ("h1", "h2")),
}


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".%03dZ" % (int(time.time() * 1000) % 1000)


def run_cmd(args, timeout=20):
    """Runs a command (argument list, no shell); returns (exit code, stdout, stderr)."""
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, "", str(e)


# ---------------------------------------------------------------- cleanup (no Mininet needed)


def host_shell_pids(hosts):
    """PIDs of Mininet host shells for these host names (their cmdline ends with mininet:<host>)."""
    want = set("mininet:" + h for h in hosts)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        args = [a.decode("utf-8", "replace") for a in argv if a]
        if args and args[-1] in want:
            pids.append(int(d))
    return pids


def cleanup_names(switches, hosts):
    """Removes what a topology with these names leaves behind: bridges, veths, host shells."""
    removed = []
    for pid in host_shell_pids(hosts):
        try:
            os.kill(pid, signal.SIGKILL)
            removed.append("pid:%d" % pid)
        except ProcessLookupError:
            pass
    for sw in switches:
        rc, _, _ = run_cmd(["ovs-vsctl", "--timeout=10", "br-exists", sw])
        if rc == 0:
            run_cmd(["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", sw])
            removed.append("bridge:" + sw)
    # Leftover links: the netdev bridge's tap (named like the switch) and the veth ends.
    rc, out, _ = run_cmd(["ip", "-o", "link", "show"])
    names = re.findall(r"^\d+:\s+([^:@\s]+)", out, re.M) if rc == 0 else []
    prefixes = tuple(n + "-eth" for n in list(switches) + list(hosts))
    for name in names:
        if name in switches or name.startswith(prefixes):
            if run_cmd(["ip", "link", "del", name])[0] == 0:
                removed.append("link:" + name)
    return removed


# ---------------------------------------------------------------- server


class Driver:
    """Holds one running Mininet network and answers commands about it."""

    def __init__(self, args):
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import RemoteController

        from rfmn import RfOVSSwitch

        setLogLevel(args.log_level)
        self.args = args
        self.state_dir = args.state_dir
        os.makedirs(self.state_dir, exist_ok=True)
        self.events_path = os.path.join(self.state_dir, "events.jsonl")
        self.sock_path = os.path.join(self.state_dir, "ctl.sock")
        mod_name, cls_name, self.switch_names, self.host_names = TOPOS[args.topo]
        topo_cls = getattr(__import__(mod_name), cls_name)
        self.t0 = time.time()
        self.net = None
        self.stopping = False

        targets = [parse_target(t) for t in args.controller]
        switch = partial(
            RfOVSSwitch,
            datapath="user",
            loop=args.loop,
            protocols=args.protocols,
            failMode=args.fail_mode,
            reconnectms=args.max_backoff_ms,
        )
        # Stale names from an earlier crash would make add-br/veth creation fail halfway.
        cleanup_names(self.switch_names, self.host_names)
        self.net = Mininet(
            topo=topo_cls(addressing=args.addressing),
            switch=switch,
            controller=None,
            autoSetMacs=False,
            waitConnected=False,
            build=False,
        )
        for i, (proto, ip, port) in enumerate(targets):
            self.net.addController("c%d" % i, controller=RemoteController, ip=ip, port=port, protocol=proto)
        self.net.build()

    def emit(self, obj):
        obj = dict(obj)
        obj.setdefault("ts", now_iso())
        obj.setdefault("t", round(time.time() - self.t0, 3))
        line = json.dumps(obj, sort_keys=True)
        with open(self.events_path, "a") as f:
            f.write(line + "\n")
        return obj

    # -- state

    def switch(self, name):
        if name not in self.switch_names:
            raise UsageErr("unknown switch %r (have %s)" % (name, " ".join(self.switch_names)))
        return self.net.get(name)

    def host(self, name):
        if name not in self.host_names:
            raise UsageErr("unknown host %r (have %s)" % (name, " ".join(self.host_names)))
        return self.net.get(name)

    def port_loop_states(self):
        """{port name: (role, state)} for our switches' ports, live from ovs-appctl (r)stp/show.

        Not from the Port table's status columns: ovs-vswitchd refreshes those only every few
        seconds, which would hide the real convergence time.
        """
        res = {}
        for sw in self.switch_names:
            if self.args.loop == "none":
                for intf in self.net.get(sw).intfNames():
                    if intf.startswith(sw + "-eth"):
                        res[intf] = ("", "forwarding")
                continue
            rc, out, _ = run_cmd(["ovs-appctl", "%s/show" % self.args.loop, sw])
            if rc != 0:
                continue  # bridge stopped (switch NAME stop) or not yet there
            for line in out.splitlines():
                cols = line.split()
                if len(cols) >= 3 and cols[0].startswith(sw + "-eth"):
                    res[cols[0]] = (cols[1], cols[2])
        return res

    def converged(self):
        """True when no port of ours is in a transient (R)STP state."""
        states = self.port_loop_states()
        if not states:
            return False, states
        for role, state in states.values():
            st = state.lower()
            if st == "forwarding":
                continue
            if self.args.loop == "rstp" and role.lower() in ("alternate", "backup", "disabled"):
                continue
            if self.args.loop == "stp" and st in ("blocking", "disabled"):
                continue
            return False, states
        return True, states

    def wait_converged(self, timeout):
        t = time.time()
        while True:
            ok, states = self.converged()
            if ok:
                return True, round(time.time() - t, 3), states
            if time.time() - t > timeout:
                return False, round(time.time() - t, 3), states
            time.sleep(0.1)

    def status(self):
        sw = []
        for name in self.switch_names:
            s = self.net.get(name)
            connected = False
            for uuid in s.controllerUUIDs(update=True):
                rc, out, _ = run_cmd(["ovs-vsctl", "--timeout=10", "get", "Controller", uuid, "is_connected"])
                connected = connected or (rc == 0 and "true" in out)
            exists = run_cmd(["ovs-vsctl", "--timeout=10", "br-exists", name])[0] == 0
            sw.append({"name": name, "dpid": s.dpid, "bridge": exists, "connected": connected})
        ok, states = self.converged()
        return {
            "switches": sw,
            "hosts": [{"name": h, "ip": self.net.get(h).IP()} for h in self.host_names],
            "converged": ok,
            "ports": {k: {"role": v[0], "state": v[1]} for k, v in sorted(states.items())},
        }

    # -- commands

    def ping_pair(self, src, dst, timeout):
        out = src.cmd("ping -c1 -W%d %s" % (max(1, int(timeout)), dst.IP()))
        m = re.search(r"(\d+) received", out)
        return bool(m and int(m.group(1)) > 0)

    def pingall(self, timeout=1):
        hosts = [self.net.get(h) for h in self.host_names]
        results = []
        t = time.time()
        for src in hosts:
            for dst in hosts:
                if src is dst:
                    continue
                results.append({"src": src.name, "dst": dst.name, "ok": self.ping_pair(src, dst, timeout)})
        sent = len(results)
        received = sum(1 for r in results if r["ok"])
        return {
            "ok": received == sent,
            "sent": sent,
            "received": received,
            "loss_pct": round(100.0 * (sent - received) / sent, 1) if sent else 0.0,
            "failed": [r["src"] + "->" + r["dst"] for r in results if not r["ok"]],
            "seconds": round(time.time() - t, 3),
        }

    def handle(self, words):
        if not words:
            raise UsageErr("empty command")
        cmd, rest = words[0], words[1:]
        if cmd == "status":
            return dict(ok=True, **self.status())
        if cmd == "pingall":
            return self.pingall(float(rest[0]) if rest else 1)
        if cmd == "ping":
            if len(rest) != 2:
                raise UsageErr("usage: ping SRC DST")
            ok = self.ping_pair(self.host(rest[0]), self.host(rest[1]), 1)
            return {"ok": ok}
        if cmd == "link":
            if len(rest) != 3 or rest[2] not in ("up", "down"):
                raise UsageErr("usage: link NODE1 NODE2 up|down")
            for n in rest[:2]:
                if n not in self.switch_names and n not in self.host_names:
                    raise UsageErr("unknown node %r" % n)
            self.net.configLinkStatus(rest[0], rest[1], rest[2])
            return {"ok": True}
        if cmd == "switch":
            if len(rest) != 2 or rest[1] not in ("stop", "start"):
                raise UsageErr("usage: switch NAME stop|start")
            sw = self.switch(rest[0])
            if rest[1] == "stop":
                # Like Mininet's CLI `switch s5 stop`: the bridge goes away (its OpenFlow
                # session closes), the veths stay so that start brings back the same ports.
                sw.stop(deleteIntfs=False)
            else:
                sw.start(self.net.controllers)
            return {"ok": True}
        if cmd == "wait-converged":
            ok, secs, states = self.wait_converged(float(rest[0]) if rest else 30)
            return {"ok": ok, "seconds": secs, "ports": {k: {"role": v[0], "state": v[1]} for k, v in states.items()}}
        if cmd == "quit":
            self.stopping = True
            return {"ok": True}
        raise UsageErr("unknown command %r" % cmd)

    # -- life cycle

    def start(self):
        self.emit({"event": "starting", "topo": self.args.topo, "controllers": self.args.controller, "loop": self.args.loop})
        self.net.start()
        self.emit({"event": "started", "switches": [{"name": s, "dpid": self.net.get(s).dpid} for s in self.switch_names]})

    def wait_ready(self):
        """Waits for controller connections and loop convergence; emits what it saw (never fails)."""
        t = time.time()
        pending = set(self.switch_names)
        while pending and time.time() - t < self.args.connect_timeout:
            for name in sorted(pending):
                if self.net.get(name).connected():
                    pending.discard(name)
                    self.emit({"event": "switch-connected", "switch": name})
            if pending:
                time.sleep(0.2)
        if pending:
            self.emit({"event": "connect-timeout", "pending": sorted(pending)})
        ok, secs, _ = self.wait_converged(self.args.converge_timeout)
        self.emit({"event": "converged" if ok else "converge-timeout", "seconds": secs, "since_start": round(time.time() - self.t0, 3)})
        self.emit({"event": "ready", "connected": not pending, "converged": ok})

    def serve(self):
        try:
            os.unlink(self.sock_path)
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(self.sock_path)
        os.chmod(self.sock_path, 0o600)
        srv.listen(8)
        srv.settimeout(0.5)
        try:
            while not self.stopping:
                try:
                    conn, _ = srv.accept()
                except socket.timeout:
                    continue
                except InterruptedError:
                    continue
                with conn:
                    conn.settimeout(10)
                    line = read_line(conn)
                    try:
                        words = line.split()
                        reply = self.handle(words)
                    except UsageErr as e:
                        reply = {"ok": False, "usage": True, "error": str(e)}
                    except Exception as e:  # a failed command must not kill the network
                        reply = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
                    reply = self.emit(dict(reply, cmd=line.strip()))
                    try:
                        conn.sendall((json.dumps(reply, sort_keys=True) + "\n").encode())
                    except OSError:
                        pass
        finally:
            srv.close()
            try:
                os.unlink(self.sock_path)
            except FileNotFoundError:
                pass

    def teardown(self):
        if self.net is not None:
            try:
                self.net.stop()
            except Exception as e:
                self.emit({"event": "stop-error", "error": str(e)})
        removed = cleanup_names(self.switch_names, self.host_names)
        self.emit({"event": "stopped", "leftovers_removed": removed})


class UsageErr(Exception):
    pass


def ovs_map(v):
    """OVSDB JSON map ["map", [[k, v], ...]] -> dict."""
    if isinstance(v, list) and len(v) == 2 and v[0] == "map":
        return {k: val for k, val in v[1]}
    return {}


def parse_target(target):
    """tcp:IP:PORT (or IP:PORT) -> (protocol, ip, port)."""
    parts = target.split(":")
    if len(parts) == 2:
        parts = ["tcp"] + parts
    if len(parts) != 3 or parts[0] not in ("tcp", "ssl") or not parts[2].isdigit():
        raise SystemExit("run.py: bad controller target %r (want tcp:IP:PORT)" % target)
    return parts[0], parts[1], int(parts[2])


def read_line(conn):
    buf = b""
    while b"\n" not in buf and len(buf) < 4096:
        try:
            chunk = conn.recv(1024)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    return buf.decode("utf-8", "replace").split("\n")[0]


def cmd_serve(args):
    if os.geteuid() != 0:
        print("run.py: Mininet needs root", file=sys.stderr)
        return 2
    drv = Driver(args)
    with open(os.path.join(args.state_dir, "driver.pid"), "w") as f:
        f.write("%d\n" % os.getpid())

    def on_signal(signum, _frame):
        drv.stopping = True
        drv.emit({"event": "signal", "signal": signum})

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    # Mininet has hung here without any output (once in many CI runs): if start-up takes over 45 s, every
    # thread's stack goes to stderr (mininet.log), so the log says where it stopped.
    faulthandler.dump_traceback_later(45, exit=False)
    try:
        drv.start()
        drv.wait_ready()
        faulthandler.cancel_dump_traceback_later()
        if not drv.stopping:
            drv.serve()
    finally:
        drv.teardown()
        try:
            os.unlink(os.path.join(args.state_dir, "driver.pid"))
        except FileNotFoundError:
            pass
    return 0


def cmd_ctl(args):
    path = os.path.join(args.state_dir, "ctl.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(args.timeout)
    try:
        s.connect(path)
        s.sendall((" ".join(args.words) + "\n").encode())
        line = b""
        while not line.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            line += chunk
    except OSError as e:
        print(json.dumps({"ok": False, "error": "cannot reach the Mininet driver at %s: %s" % (path, e)}))
        return 1
    finally:
        s.close()
    text = line.decode().strip()
    print(text)
    try:
        reply = json.loads(text)
    except ValueError:
        return 1
    if reply.get("usage"):
        return 2
    return 0 if reply.get("ok") else 1


def cmd_cleanup(args):
    _, _, switches, hosts = TOPOS[args.topo]
    print(json.dumps({"ok": True, "removed": cleanup_names(switches, hosts)}))
    return 0


def main(argv):
    p = argparse.ArgumentParser(prog="run.py", description="Unattended Mininet driver for rftest")
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("serve", help="build and start a topology, then answer commands")
    s.add_argument("--topo", choices=sorted(TOPOS), required=True)
    s.add_argument("--state-dir", required=True)
    s.add_argument("--controller", action="append", default=None, help="tcp:IP:PORT (repeatable)")
    s.add_argument("--loop", choices=("rstp", "stp", "none"), default=None)
    s.add_argument("--protocols", default="OpenFlow10,OpenFlow13")
    s.add_argument("--addressing", choices=("l2", "routed"), default="l2")
    s.add_argument("--fail-mode", choices=("secure", "standalone"), default="secure")
    s.add_argument("--max-backoff-ms", type=int, default=1000)
    s.add_argument("--connect-timeout", type=float, default=60)
    s.add_argument("--converge-timeout", type=float, default=60)
    s.add_argument("--log-level", default="warning")
    c = sub.add_parser("ctl", help="send one command to a running driver")
    c.add_argument("--state-dir", required=True)
    c.add_argument("--timeout", type=float, default=120)
    c.add_argument("words", nargs="+")
    k = sub.add_parser("cleanup", help="remove a topology's leftovers (bridges, veths, host shells)")
    k.add_argument("--topo", choices=sorted(TOPOS), required=True)
    args = p.parse_args(argv)
    if args.action == "serve":
        if not args.controller:
            args.controller = ["tcp:127.0.0.1:6653"]
        if args.loop is None:
            # rftest2's mesh has loops; rftest1's single switch has none.
            args.loop = "rstp" if args.topo == "rftest2" else "none"
        return cmd_serve(args)
    if args.action == "ctl":
        return cmd_ctl(args)
    return cmd_cleanup(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
