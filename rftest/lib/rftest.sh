#!/usr/bin/env bash
# rftest.sh: RouteFlow's rftest demos redone with rfboot. Shared by rftest/rftest1 and rftest/rftest2.
# The entry point sets RFTEST_NAME, RFTEST_TOPO, RFTEST_DPIDS (decimal), RFTEST_VMS, RFTEST_CONFIG and calls
# `rftest_main "$@"`. Everything runs as root; every step is idempotent; each process it starts is recorded
# in the state dir (pid files) and ended by that pid only.

RFTEST_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=lab.sh
source "$RFTEST_REPO/rftest/lib/lab.sh"
# shellcheck source=rfnet.sh
source "$RFTEST_REPO/rftest/lib/rfnet.sh"

RFTEST_PY=/usr/bin/python3 # Debian's python3: Mininet lives in its dist-packages
RFTEST_DRIVER="$RFTEST_REPO/rftest/topo/run.py"

rftest_usage() {
  cat <<EOF
usage: rftest/$RFTEST_NAME [options]          bring the demo up, print the mapping, wait (Ctrl-C tears down)
       rftest/$RFTEST_NAME --down             tear everything down (domains rfvm*, dp0, rfbr0, switches, processes)
       rftest/$RFTEST_NAME --mn CMD [ARGS]    send a command to the running Mininet (pingall, ping h5 h8,
                                           link s5 s6 down|up, switch s5 stop|start, status, wait-converged)
       rftest/$RFTEST_NAME --show             print the mapping table, VM states and switches of a running demo
       rftest/$RFTEST_NAME --restart-rfboot   stop rfboot (if it runs) and start it again on the same config; waits
                                           until every switch rejoined it and every VM is ready again (adopted)
options:
  --no-wait              bring up, print, exit 0 leaving everything running (tests, scripts)
  --hypervisor X         qemu, kvm, lxc, xen-pv, xen-hvm, test: rfboot runs on a copy of the config that
                         uses X (state dir rfboot.yaml); default: the config's own choice
  --leave ACTION[:S]     rfboot's leave policy on the same kind of copy: keep, shutdown, destroy or suspend
                         (managedsave), S seconds after the switch leaves (default: the config's, keep:30)
  --rfboot MODE          run (default): 'bin/rfboot run --config $RFTEST_CONFIG' boots the VMs on demand
                         watch: 'bin/rfboot watch' relays and reports joins only (no VMs)
                         none: switches connect straight to the upstream controller (no rfboot)
  --listen-port N        rfboot's OpenFlow port, where the Mininet switches connect (default 6653)
  --upstream-port N      upstream controller port (rfproxy's 6633 by default); if something already listens
                         there (a real rfproxy), it is used as is, otherwise ovs-testcontroller is started
  --upstream-mode M      ovs-testcontroller: normal (default; OFPP_NORMAL flows, follows RSTP changes) or
                         learn (exact-match learning-switch flows; stale after a link change until idle)
  --loop L               spanning tree on the switches: rstp (rftest2 default), stp, none
  --addressing A         hosts: l2 (default, one /16, for a learning-switch upstream) or routed (RouteFlow's
                         172.31.i.100/24 via 172.31.i.1, for a real rfproxy + routing VMs; use with --loop none)
  --listen-mode          switches connect to the upstream AND to rfboot (rfboot's config in listen mode)
                         instead of to rfboot alone (relay mode)
  --timeout S            how long to wait for the VMs (default 300 s)
  --ready-state S        ready (default: boot marker seen) or running (domain started)
  --keep-on-failure      leave things up when bring-up fails (to debug); default: tear down
  --keep-state           keep rfboot's own collections (<prefix>_vms, _events, _leases) when the demo resets its
                         lab database at start and teardown; RouteFlow's (rftable, rfconfig, rfstats, both IPC
                         channels) are always dropped, as RouteFlow's own rftest does
state and logs: $LAB_DIR/$RFTEST_NAME/ (rfboot.log, upstream.log, mininet.log, mininet/events.jsonl, timings.json: ms per step)
EOF
}

rftest_say() { printf '[%s %6.1fs] %s\n' "$RFTEST_NAME" "$(rftest_elapsed)" "$*"; }
rftest_elapsed() { awk -v a="$(date +%s%N)" -v b="$RFTEST_T0" 'BEGIN { printf "%.1f", (a - b) / 1e9 }'; }
rftest_now_ms() { echo $(($(date +%s%N) / 1000000)); }
rftest_die() {
  printf '[%s] error: %s\n' "$RFTEST_NAME" "$*" >&2
  return 1
}

# rftest_timing NAME START_MS records one step's duration (ms) for bench/ and the final summary.
rftest_timing() {
  local now
  now="$(rftest_now_ms)"
  printf '%s %s\n' "$1" "$((now - $2))" >>"$RFTEST_STATE/timings.txt"
}

# rftest_alive PID: running and not a zombie (an orphan that exited stays a zombie until PID 1 reaps it, and
# kill -0 still succeeds on it).
rftest_alive() {
  local st
  [[ "$1" =~ ^[0-9]+$ ]] || return 1
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
rftest_pid_alive() { [ -f "$1" ] && rftest_alive "$(cat "$1" 2>/dev/null)"; }

# rftest_stop_pid PIDFILE [GRACE_S]: SIGTERM the recorded process, SIGKILL after GRACE_S, remove the file.
rftest_stop_pid() {
  local f="$1" grace="${2:-10}" pid i
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if rftest_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      rftest_alive "$pid" || break
      sleep 0.1
    done
    if rftest_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

# rftest_spawn NAME LOGFILE CMD...: starts CMD in its own session (Ctrl-C on the terminal does not reach it;
# teardown stops it in order), stdin closed, output to LOGFILE, pid in STATE/NAME.pid.
rftest_spawn() {
  local name="$1" log="$2"
  shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  echo $! >"$RFTEST_STATE/$name.pid"
}

rftest_parse() {
  RFTEST_ACTION=up
  RFTEST_WAIT=1
  RFTEST_HYPERVISOR=""
  RFTEST_LEAVE=""
  RFTEST_RFBOOT=run
  RFTEST_LISTEN_PORT=6653
  RFTEST_UPSTREAM_PORT=6633
  RFTEST_UPSTREAM_MODE=normal
  RFTEST_LOOP="${RFTEST_DEFAULT_LOOP:-rstp}"
  RFTEST_TIMEOUT=300
  RFTEST_READY_STATE=ready
  RFTEST_KEEP=0
  RFTEST_KEEP_STATE=0
  RFTEST_ADDRESSING=l2
  RFTEST_LISTEN_MODE=0
  RFTEST_MN_ARGS=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --down) RFTEST_ACTION=down ;;
      --show) RFTEST_ACTION=show ;;
      --restart-rfboot) RFTEST_ACTION=restart-rfboot ;;
      --mn)
        RFTEST_ACTION=mn
        shift
        RFTEST_MN_ARGS=("$@")
        [ ${#RFTEST_MN_ARGS[@]} -gt 0 ] || { rftest_usage >&2; return 2; }
        return 0
        ;;
      --no-wait) RFTEST_WAIT=0 ;;
      --hypervisor) RFTEST_HYPERVISOR="${2:?--hypervisor needs a value}" && shift ;;
      --leave) RFTEST_LEAVE="${2:?--leave needs ACTION[:GRACE_SECONDS]}" && shift ;;
      --rfboot) RFTEST_RFBOOT="${2:?--rfboot needs run, watch or none}" && shift ;;
      --listen-port) RFTEST_LISTEN_PORT="${2:?}" && shift ;;
      --upstream-port) RFTEST_UPSTREAM_PORT="${2:?}" && shift ;;
      --upstream-mode) RFTEST_UPSTREAM_MODE="${2:?}" && shift ;;
      --loop) RFTEST_LOOP="${2:?}" && shift ;;
      --timeout) RFTEST_TIMEOUT="${2:?}" && shift ;;
      --ready-state) RFTEST_READY_STATE="${2:?}" && shift ;;
      --keep-on-failure) RFTEST_KEEP=1 ;;
      --keep-state) RFTEST_KEEP_STATE=1 ;;
      --addressing) RFTEST_ADDRESSING="${2:?}" && shift ;;
      --listen-mode) RFTEST_LISTEN_MODE=1 ;;
      -h | --help)
        rftest_usage
        exit 0
        ;;
      *)
        echo "$RFTEST_NAME: unknown option $1" >&2
        rftest_usage >&2
        return 2
        ;;
    esac
    shift
  done
  case "$RFTEST_RFBOOT" in run | watch | none) ;; *) rftest_die "--rfboot must be run, watch or none" || return 2 ;; esac
  case "$RFTEST_UPSTREAM_MODE" in normal | learn) ;; *) rftest_die "--upstream-mode must be normal or learn" || return 2 ;; esac
  case "$RFTEST_LOOP" in rstp | stp | none) ;; *) rftest_die "--loop must be rstp, stp or none" || return 2 ;; esac
  case "$RFTEST_READY_STATE" in ready | running) ;; *) rftest_die "--ready-state must be ready or running" || return 2 ;; esac
  case "$RFTEST_ADDRESSING" in l2 | routed) ;; *) rftest_die "--addressing must be l2 or routed" || return 2 ;; esac
  [[ -z "$RFTEST_LEAVE" || "$RFTEST_LEAVE" =~ ^(keep|shutdown|destroy|suspend)(:[0-9]+)?$ ]] ||
    { rftest_die "--leave must be keep, shutdown, destroy or suspend, optionally :GRACE_SECONDS" || return 2; }
  [[ "$RFTEST_LISTEN_PORT" =~ ^[0-9]+$ && "$RFTEST_UPSTREAM_PORT" =~ ^[0-9]+$ && "$RFTEST_TIMEOUT" =~ ^[0-9]+$ ]] ||
    { rftest_die "ports and --timeout must be numbers" || return 2; }
  if [ "$RFTEST_RFBOOT" != none ] && [ "$RFTEST_LISTEN_PORT" = "$RFTEST_UPSTREAM_PORT" ]; then
    rftest_die "--listen-port and --upstream-port must differ (rfboot relays from one to the other)" || return 2
  fi
  return 0
}

# ------------------------------------------------------------------------------------------ steps

# rftest_load_config: in run mode the rfboot config decides the OpenFlow mode and ports and where the
# records are (rftest/lib/config-info.mjs); the command-line ports apply to watch/none modes only.
RFCFG_MONGO_URI="${RFBOOT_MONGO_URI:-mongodb://127.0.0.1:27017}"
RFCFG_DB=db
RFCFG_PREFIX=rfboot
# RFTEST_SAVED_CONFIG (a file holding a config path): given, that config is read as is (--restart-rfboot reuses
# the one the demo was brought up with, derived copy included).
rftest_load_config() {
  local k v src derive=()
  [ "$RFTEST_RFBOOT" = run ] || return 0
  src="$RFTEST_REPO/$RFTEST_CONFIG"
  RFTEST_RFBOOT_CONFIG="$src"
  if [ -n "${RFTEST_SAVED_CONFIG:-}" ]; then
    src="$(cat "$RFTEST_SAVED_CONFIG")"
    RFTEST_RFBOOT_CONFIG="$src"
  elif [ -n "$RFTEST_HYPERVISOR$RFTEST_LEAVE" ]; then
    # rfboot takes the hypervisor and the leave policy from its config: run it on a copy that says the choice.
    RFTEST_RFBOOT_CONFIG="$RFTEST_STATE/rfboot.yaml"
    [ -z "$RFTEST_HYPERVISOR" ] || derive+=(--hypervisor "$RFTEST_HYPERVISOR")
    [ -z "$RFTEST_LEAVE" ] || derive+=(--leave "$RFTEST_LEAVE")
    derive+=(--out "$RFTEST_RFBOOT_CONFIG")
  fi
  if [ "$RFTEST_HYPERVISOR" = lxc ] || grep -q '^ *uri: lxc:' "$RFTEST_RFBOOT_CONFIG" 2>/dev/null; then lab_cgroup_lxc; fi
  [ -f "$src" ] ||
    { rftest_die "${src#"$RFTEST_REPO/"} is missing; 'rfboot run' needs it (or try --rfboot watch)" || return 1; }
  while IFS='=' read -r k v; do
    case "$k" in RFCFG_*) printf -v "$k" '%s' "$v" ;; esac
  done < <(node "$RFTEST_REPO/rftest/lib/config-info.mjs" "$src" "${derive[@]}" || echo "RFCFG_ERROR=1")
  [ -z "${RFCFG_ERROR:-}" ] || { rftest_die "cannot read ${src#"$RFTEST_REPO/"}" || return 1; }
  RFTEST_LISTEN_PORT="$RFCFG_LISTEN_PORT"
  if [ "$RFCFG_MODE" = relay ]; then
    RFTEST_LISTEN_MODE=0
    RFTEST_UPSTREAM_PORT="$RFCFG_UPSTREAM_PORT"
  else
    RFTEST_LISTEN_MODE=1
  fi
  rftest_say "config: ${RFTEST_RFBOOT_CONFIG#"$RFTEST_REPO/"}: $RFCFG_MODE mode on 127.0.0.1:$RFTEST_LISTEN_PORT, upstream 127.0.0.1:$RFTEST_UPSTREAM_PORT, leave policy $RFCFG_LEAVE, VMs ${RFCFG_VMS:-?}"
}

rftest_mongo_args() { printf '%s\0' --uri "$RFCFG_MONGO_URI" --db "$RFCFG_DB" --prefix "${RFCFG_PREFIX}_"; }

rftest_step_lab() {
  local t
  t="$(rftest_now_ms)"
  rftest_say "lab: packages, MongoDB-wire server, libvirtd, Open vSwitch"
  lab_up || rftest_die "lab bring-up failed (see $LAB_DIR/*.log)" || return 1
  lab_node_deps "$RFTEST_REPO" || rftest_die "npm ci failed in $RFTEST_REPO" || return 1
  lab_doctor "$RFTEST_REPO" || rftest_die "rfboot doctor found blocking problems (above)" || return 1
  rftest_timing lab "$t"
}

rftest_step_guest() {
  local t
  t="$(rftest_now_ms)"
  if [ -x "$RFTEST_REPO/rftest/guest/build-guest.sh" ] || [ -f "$RFTEST_REPO/rftest/guest/build-guest.sh" ]; then
    rftest_say "guest: kernel + initramfs (cached in /var/lib/rfboot/guest)"
    bash "$RFTEST_REPO/rftest/guest/build-guest.sh" >"$RFTEST_STATE/guest.log" 2>&1 ||
      { tail -n 20 "$RFTEST_STATE/guest.log" >&2; rftest_die "guest build failed (log: $RFTEST_STATE/guest.log)" || return 1; }
  else
    rftest_say "guest: rftest/guest/build-guest.sh not present, skipped"
  fi
  rftest_timing guest "$t"
}

rftest_step_net() {
  local t
  t="$(rftest_now_ms)"
  RFNET_DP0_CONTROLLER="${RFNET_DP0_CONTROLLER:-tcp:127.0.0.1:$RFTEST_UPSTREAM_PORT}"
  export RFNET_DP0_CONTROLLER
  rfnet_up || rftest_die "could not set up $(rfnet_dp0_name)/$(rfnet_mgmt_name)" || return 1
  rfnet_show | while read -r line; do rftest_say "net: $line"; done
  rftest_timing net "$t"
}

# rftest_step_upstream: the controller rfproxy would be. A listener already there is used as is.
rftest_step_upstream() {
  local t args
  t="$(rftest_now_ms)"
  if rftest_pid_alive "$RFTEST_STATE/upstream.pid"; then
    rftest_say "upstream: ovs-testcontroller already running (pid $(cat "$RFTEST_STATE/upstream.pid"))"
  elif lab_port_open "$RFTEST_UPSTREAM_PORT"; then
    rftest_say "upstream: 127.0.0.1:$RFTEST_UPSTREAM_PORT already listening (a real rfproxy?): using it"
  else
    args=()
    [ "$RFTEST_UPSTREAM_MODE" = normal ] && args+=(--normal)
    rftest_spawn upstream "$RFTEST_STATE/upstream.log" ovs-testcontroller "${args[@]}" \
      "ptcp:$RFTEST_UPSTREAM_PORT:127.0.0.1"
    lab_wait_port "$RFTEST_UPSTREAM_PORT" 10 ||
      rftest_die "ovs-testcontroller did not listen on $RFTEST_UPSTREAM_PORT (log: $RFTEST_STATE/upstream.log)" || return 1
    rftest_say "upstream: ovs-testcontroller ${args[*]} on 127.0.0.1:$RFTEST_UPSTREAM_PORT (pid $(cat "$RFTEST_STATE/upstream.pid"))"
  fi
  rftest_timing upstream "$t"
}

# rftest_rfboot_cmd prints, NUL-separated, the rfboot command line for the chosen mode.
rftest_rfboot_cmd() {
  case "$RFTEST_RFBOOT" in
    run)
      printf '%s\0' "$RFTEST_REPO/bin/rfboot" run --config "$RFTEST_RFBOOT_CONFIG"
      ;;
    watch)
      printf '%s\0' "$RFTEST_REPO/bin/rfboot" watch --listen "127.0.0.1:$RFTEST_LISTEN_PORT"
      if [ "$RFTEST_LISTEN_MODE" = 1 ]; then
        printf '%s\0' --role slave
      else
        printf '%s\0' --relay "127.0.0.1:$RFTEST_UPSTREAM_PORT"
      fi
      ;;
  esac
  return 0
}

rftest_step_rfboot() {
  local t cmd=()
  t="$(rftest_now_ms)"
  if [ "$RFTEST_RFBOOT" = none ]; then
    rftest_say "rfboot: skipped (--rfboot none): switches connect straight to 127.0.0.1:$RFTEST_UPSTREAM_PORT"
    return 0
  fi
  if rftest_pid_alive "$RFTEST_STATE/rfboot.pid"; then
    rftest_say "rfboot: already running (pid $(cat "$RFTEST_STATE/rfboot.pid"))"
    return 0
  fi
  if lab_port_open "$RFTEST_LISTEN_PORT"; then
    rftest_die "127.0.0.1:$RFTEST_LISTEN_PORT is already in use by another process; stop it or pass --listen-port" || return 1
  fi
  rm -f "$RFTEST_STATE/watch.jsonl"
  # Build dist/ now (bin/rfboot does it when stale) so the wait below times rfboot, not tsc.
  "$RFTEST_REPO/bin/rfboot" --help >/dev/null 2>"$RFTEST_STATE/build.log" ||
    { tail -n 20 "$RFTEST_STATE/build.log" >&2; rftest_die "rfboot does not build (log: $RFTEST_STATE/build.log)" || return 1; }
  mapfile -d '' cmd < <(rftest_rfboot_cmd)
  # --restart-rfboot: the log of the rfboot that went away is kept beside the new one.
  [ ! -s "$RFTEST_STATE/rfboot.log" ] || [ "$RFTEST_ACTION" != restart-rfboot ] ||
    mv -f "$RFTEST_STATE/rfboot.log" "$RFTEST_STATE/rfboot.prev.log"
  if [ "$RFTEST_RFBOOT" = run ]; then
    printf '%s\n' "$RFTEST_RFBOOT_CONFIG" >"$RFTEST_STATE/rfboot.config"
  else
    rm -f "$RFTEST_STATE/rfboot.config"
  fi
  if [ "$RFTEST_RFBOOT" = watch ]; then
    # watch prints one JSON line per datapath event on stdout: keep them apart from its logs.
    setsid "${cmd[@]}" >"$RFTEST_STATE/watch.jsonl" 2>"$RFTEST_STATE/rfboot.log" </dev/null &
    echo $! >"$RFTEST_STATE/rfboot.pid"
  else
    rftest_spawn rfboot "$RFTEST_STATE/rfboot.log" "${cmd[@]}"
  fi
  rftest_say "rfboot: ${cmd[*]#"$RFTEST_REPO/"} (pid $(cat "$RFTEST_STATE/rfboot.pid"), log $RFTEST_STATE/rfboot.log)"
  local i
  for ((i = 0; i < 600; i++)); do
    lab_port_open "$RFTEST_LISTEN_PORT" && break
    rftest_pid_alive "$RFTEST_STATE/rfboot.pid" || break
    sleep 0.1
  done
  if ! lab_port_open "$RFTEST_LISTEN_PORT"; then
    tail -n 20 "$RFTEST_STATE/rfboot.log" >&2
    rftest_die "rfboot is not listening on 127.0.0.1:$RFTEST_LISTEN_PORT (log: $RFTEST_STATE/rfboot.log)" || return 1
  fi
  rftest_say "rfboot: listening on 127.0.0.1:$RFTEST_LISTEN_PORT"
  rftest_timing rfboot "$t"
}

rftest_mn() { "$RFTEST_PY" "$RFTEST_DRIVER" ctl --state-dir "$RFTEST_STATE/mininet" "$@"; }

# rftest_step_mininet starts the Mininet driver and waits for its `ready` event. A driver that is alive but
# has not reported ready within 60 s is stopped, its leftovers cleaned, and started once more (seen once in a
# few dozen CI runs: the driver hung during Mininet's start with nothing in its log).
rftest_step_mininet() {
  if rftest_pid_alive "$RFTEST_STATE/mininet.pid"; then
    rftest_say "mininet: already running (pid $(cat "$RFTEST_STATE/mininet.pid"))"
    return 0
  fi
  local rc=0
  rftest_mininet_start 600 || rc=$?
  [ "$rc" -eq 2 ] || return "$rc"
  rftest_say "mininet: the driver did not report ready in 60 s: stopping it and starting it once more"
  rftest_stop_pid "$RFTEST_STATE/mininet.pid" 10
  "$RFTEST_PY" "$RFTEST_DRIVER" cleanup --topo "$RFTEST_TOPO" >/dev/null 2>&1 || true
  rc=0
  rftest_mininet_start 1200 || rc=$?
  [ "$rc" -eq 2 ] && rftest_die "Mininet did not become ready in 120 s (log: $RFTEST_STATE/mininet.log)"
  return "$rc"
}

# rftest_mininet_start TENTHS: spawn the driver, wait up to TENTHS/10 s for `ready`. 0 ready, 1 failed, 2 timeout.
rftest_mininet_start() {
  local limit="$1" t n=0 seen=0 line ev targets=()
  t="$(rftest_now_ms)"
  # relay: switches -> rfboot -> upstream. listen: switches -> upstream and -> rfboot. none: -> upstream.
  if [ "$RFTEST_RFBOOT" = none ]; then
    targets=(--controller "tcp:127.0.0.1:$RFTEST_UPSTREAM_PORT")
  elif [ "$RFTEST_LISTEN_MODE" = 1 ]; then
    targets=(--controller "tcp:127.0.0.1:$RFTEST_UPSTREAM_PORT" --controller "tcp:127.0.0.1:$RFTEST_LISTEN_PORT")
  else
    targets=(--controller "tcp:127.0.0.1:$RFTEST_LISTEN_PORT")
  fi
  rm -rf "$RFTEST_STATE/mininet"
  mkdir -p "$RFTEST_STATE/mininet"
  rftest_spawn mininet "$RFTEST_STATE/mininet.log" "$RFTEST_PY" "$RFTEST_DRIVER" serve --topo "$RFTEST_TOPO" \
    --state-dir "$RFTEST_STATE/mininet" "${targets[@]}" --loop "$RFTEST_LOOP" --addressing "$RFTEST_ADDRESSING"
  rftest_say "mininet: $RFTEST_TOPO (${RFTEST_SWITCHES[*]}), controller(s) $(printf '%s ' "${targets[@]}" | sed 's/--controller //g; s/ $//'), loop guard $RFTEST_LOOP, hosts $RFTEST_ADDRESSING"
  local ev_file="$RFTEST_STATE/mininet/events.jsonl"
  for ((n = 0; n < limit; n++)); do
    if [ -f "$ev_file" ]; then
      while IFS= read -r line; do
        seen=$((seen + 1))
        ev="$(sed -n 's/.*"event": "\([^"]*\)".*/\1/p' <<<"$line")"
        case "$ev" in
          switch-connected) rftest_say "mininet: switch $(sed -n 's/.*"switch": "\([^"]*\)".*/\1/p' <<<"$line") connected to its controller" ;;
          converged) [ "$RFTEST_LOOP" = none ] || rftest_say "mininet: $RFTEST_LOOP converged: all ports forwarding or blocked $(sed -n 's/.*"since_start": \([0-9.]*\).*/\1/p' <<<"$line") s after Mininet started" ;;
          connect-timeout | converge-timeout) rftest_say "mininet: $ev: $line" ;;
          ready)
            rftest_timing mininet "$t"
            return 0
            ;;
        esac
      done < <(tail -n +"$((seen + 1))" "$ev_file")
    fi
    if ! rftest_pid_alive "$RFTEST_STATE/mininet.pid"; then
      tail -n 20 "$RFTEST_STATE/mininet.log" >&2
      rftest_die "the Mininet driver exited (log: $RFTEST_STATE/mininet.log)"
      return 1
    fi
    sleep 0.1
  done
  return 2
}

# rftest_wait_switches_watch: in watch mode, rfboot prints one JSON line per switch that comes up.
rftest_wait_switches_watch() {
  local t i d hex missing
  t="$(rftest_now_ms)"
  for ((i = 0; i < 300; i++)); do
    missing=()
    for d in "${RFTEST_DPIDS[@]}"; do
      hex="$(printf '%016x' "$d")"
      grep -q "\"event\":\"up\",\"dpid\":\"$hex\"" "$RFTEST_STATE/watch.jsonl" 2>/dev/null || missing+=("$hex")
    done
    [ ${#missing[@]} -eq 0 ] && break
    sleep 0.1
  done
  if [ ${#missing[@]} -gt 0 ]; then
    rftest_die "rfboot watch did not report switches ${missing[*]} (see $RFTEST_STATE/watch.jsonl)"
    return 1
  fi
  grep '"event":"up"' "$RFTEST_STATE/watch.jsonl" | while IFS= read -r line; do
    rftest_say "rfboot: switch joined: $(sed -n 's/.*"dpid":"\([0-9a-f]*\)".*"version":"\([0-9.]*\)".*/dpid \1, OpenFlow \2/p' <<<"$line")"
  done
  rftest_timing switches "$t"
}

# rftest_progress_start starts printing each step as rfboot records it in MongoDB (switch joined, VM defined,
# started, ready), in the background, before the switches start: the steps show as they happen, between
# Mininet's own lines. It exits once every dpid's VM reached RFTEST_READY_STATE (rftest_wait_vms waits for it).
rftest_progress_start() {
  local dpids margs=()
  mapfile -d '' margs < <(rftest_mongo_args)
  dpids="$(
    IFS=,
    echo "${RFTEST_DPIDS[*]}"
  )"
  # --require-join: a record left "ready" by an earlier run (or by the rfboot before a restart) does not count
  # until its switch joined this run's rfboot.
  node "$RFTEST_REPO/rftest/lib/show-mongo.mjs" progress "${margs[@]}" --dpids "$dpids" --until "$RFTEST_READY_STATE" \
    --timeout "$RFTEST_TIMEOUT" --since "${RFTEST_WAIT_SINCE_MS:-$RFTEST_T0_MS}" --require-join &
  RFTEST_PROGRESS_PID=$!
}

# rftest_progress_stop ends the progress printer (bring-up failed before the wait).
rftest_progress_stop() {
  [ -n "${RFTEST_PROGRESS_PID:-}" ] || return 0
  kill "$RFTEST_PROGRESS_PID" 2>/dev/null || true
  wait "$RFTEST_PROGRESS_PID" 2>/dev/null || true
  RFTEST_PROGRESS_PID=""
}

# rftest_wait_vms waits until every dpid's VM reaches RFTEST_READY_STATE (rftest_progress_start's printer exits
# 0). Fails early if rfboot exits.
rftest_wait_vms() {
  local t pid rc
  t="$(rftest_now_ms)" # the "vms" timing: from here (after Mininet) until all are ready, as before
  [ -n "${RFTEST_PROGRESS_PID:-}" ] || rftest_progress_start
  pid="$RFTEST_PROGRESS_PID"
  rftest_say "waiting for ${#RFTEST_DPIDS[@]} VM(s) to be $RFTEST_READY_STATE (timeout ${RFTEST_TIMEOUT}s)"
  while kill -0 "$pid" 2>/dev/null; do
    if ! rftest_pid_alive "$RFTEST_STATE/rfboot.pid"; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      tail -n 20 "$RFTEST_STATE/rfboot.log" >&2
      rftest_die "rfboot exited while the VMs were coming up (log: $RFTEST_STATE/rfboot.log)"
      return 1
    fi
    sleep 0.5
  done
  rc=0
  wait "$pid" || rc=$?
  RFTEST_PROGRESS_PID=""
  [ "$rc" = 0 ] || { rftest_die "VMs not $RFTEST_READY_STATE in ${RFTEST_TIMEOUT}s (log: $RFTEST_STATE/rfboot.log)"; return 1; }
  rftest_timing vms "$t"
}

rftest_show() {
  local dpids margs=()
  mapfile -d '' margs < <(rftest_mongo_args)
  dpids="$(
    IFS=,
    echo "${RFTEST_DPIDS[*]}"
  )"
  echo "---- mapping read back from MongoDB ----"
  node "$RFTEST_REPO/rftest/lib/show-mongo.mjs" table "${margs[@]}" --dpids "$dpids" || true
  echo "---- VMs (virsh -c qemu:///system list --all) ----"
  LC_ALL=C virsh -c qemu:///system list --all 2>&1 | grep -E '^ *(Id|--|[-0-9]+ +rfvm)' || true
  if LC_ALL=C virsh -c lxc:///system version >/dev/null 2>&1; then
    LC_ALL=C virsh -c lxc:///system list --all --name 2>/dev/null | grep '^rfvm' | sed 's/^/  lxc: /' || true
  fi
  echo "---- networks ----"
  rfnet_show
  echo "---- switches ----"
  local sw
  for sw in "${RFTEST_SWITCHES[@]}"; do
    if ovs-vsctl --timeout=5 br-exists "$sw" 2>/dev/null; then
      printf '%s: dpid %s, %s data ports, controller %s connected=%s\n' "$sw" \
        "$(ovs-vsctl --timeout=5 get bridge "$sw" other-config:datapath-id | tr -d '"')" \
        "$(ovs-vsctl --timeout=5 list-ports "$sw" | wc -l)" \
        "$(ovs-vsctl --timeout=5 get-controller "$sw" | tr '\n' ' ' | sed 's/ $//')" \
        "$(ovs-vsctl --timeout=5 --columns=is_connected --bare list controller "$(ovs-vsctl --timeout=5 get bridge "$sw" controller | tr -d '[]' | cut -d, -f1)" 2>/dev/null)"
    else
      printf '%s: absent\n' "$sw"
    fi
  done
}

# ------------------------------------------------------------------------------------------ teardown

rftest_domains() {
  local uri="$1"
  LC_ALL=C virsh -c "$uri" list --all --name 2>/dev/null | grep '^rfvm' || true
}

rftest_down() {
  local uri d left=()
  [ -n "${RFTEST_STATE:-}" ] || return 0
  mkdir -p "$RFTEST_STATE"
  rftest_say "teardown: Mininet"
  if rftest_pid_alive "$RFTEST_STATE/mininet.pid"; then
    rftest_mn --timeout 30 quit >/dev/null 2>&1 || true
    local i
    for ((i = 0; i < 200; i++)); do rftest_pid_alive "$RFTEST_STATE/mininet.pid" || break; sleep 0.1; done
  fi
  rftest_stop_pid "$RFTEST_STATE/mininet.pid" 10
  "$RFTEST_PY" "$RFTEST_DRIVER" cleanup --topo "$RFTEST_TOPO" >/dev/null 2>&1 || true
  # The VMs go while rfboot still runs: its libvirt event watch records them as gone (state missing) instead of
  # leaving records that say "ready" for domains that no longer exist. The switches are gone, so it starts
  # nothing again.
  rftest_say "teardown: VMs (domains named rfvm*)"
  local pids=()
  for uri in qemu:///system lxc:///system; do
    LC_ALL=C virsh -c "$uri" version >/dev/null 2>&1 || continue
    # In parallel: `virsh destroy` of a TCG guest takes 1-2 s.
    for d in $(rftest_domains "$uri"); do
      (
        LC_ALL=C virsh -c "$uri" destroy "$d" >/dev/null 2>&1 || true
        LC_ALL=C virsh -c "$uri" undefine "$d" --managed-save --snapshots-metadata >/dev/null 2>&1 ||
          LC_ALL=C virsh -c "$uri" undefine "$d" >/dev/null 2>&1 || true
      ) &
      pids+=($!)
    done
  done
  # Only these: a bare `wait` would also wait for the processes this shell started (upstream controller),
  # which hangs the Ctrl-C teardown of a foreground run.
  [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}" 2>/dev/null || true
  rftest_say "teardown: rfboot"
  rftest_stop_pid "$RFTEST_STATE/rfboot.pid" 15
  rm -f "$RFTEST_STATE/rfboot.config"
  rftest_say "teardown: upstream controller, $(rfnet_dp0_name), $(rfnet_mgmt_name)"
  rftest_stop_pid "$RFTEST_STATE/upstream.pid" 5
  rfnet_down
  rftest_reset_db || true
  # What is left, if anything, is reported rather than hidden.
  for uri in qemu:///system lxc:///system; do
    LC_ALL=C virsh -c "$uri" version >/dev/null 2>&1 || continue
    for d in $(rftest_domains "$uri"); do left+=("domain:$d"); done
  done
  for d in "${RFTEST_SWITCHES[@]}" "$(rfnet_dp0_name)"; do
    ovs-vsctl --timeout=5 br-exists "$d" 2>/dev/null && left+=("bridge:$d")
  done
  [ -d "/sys/class/net/$(rfnet_mgmt_name)" ] && left+=("link:$(rfnet_mgmt_name)")
  if [ ${#left[@]} -gt 0 ]; then
    rftest_say "teardown: LEFT BEHIND: ${left[*]}"
    return 1
  fi
  rftest_say "teardown: done"
}

# ------------------------------------------------------------------------------------------ restart

# rftest_restart_rfboot stops rfboot (SIGTERM by its pid, if it still runs) and starts it again on the config the
# demo was brought up with. rfboot reconciles MongoDB with libvirt at start and adopts the running VMs; the
# switches reconnect (relay: they lost their only controller; listen: rfboot's connection). Waits until every
# switch has joined the new rfboot and its VM is ready again, then prints the mapping.
rftest_restart_rfboot() {
  local old=""
  [ -f "$RFTEST_STATE/rfboot.config" ] || {
    rftest_die "no demo brought up with rfboot run here ($RFTEST_STATE/rfboot.config missing): start rftest/$RFTEST_NAME first"
    return 1
  }
  RFTEST_SAVED_CONFIG="$RFTEST_STATE/rfboot.config"
  rftest_load_config || return 1
  if rftest_pid_alive "$RFTEST_STATE/rfboot.pid"; then
    old="$(cat "$RFTEST_STATE/rfboot.pid")"
    rftest_say "rfboot: stopping pid $old"
  elif [ -f "$RFTEST_STATE/rfboot.pid" ]; then
    rftest_say "rfboot: pid $(cat "$RFTEST_STATE/rfboot.pid") is gone (killed?)"
  fi
  rftest_stop_pid "$RFTEST_STATE/rfboot.pid" 15
  # The port is free once the old process is gone; a listener still there is someone else's (step_rfboot says so).
  local i
  for ((i = 0; i < 50; i++)); do lab_port_open "$RFTEST_LISTEN_PORT" || break; sleep 0.1; done
  RFTEST_WAIT_SINCE_MS="$(rftest_now_ms)"
  rftest_step_rfboot || return 1
  rftest_wait_vms || return 1
  rftest_show
}

# ------------------------------------------------------------------------------------------ main

# rftest_reset_db resets the demo's lab database as RouteFlow's rftest does (at start and at teardown): the demo
# owns it. The daemon never does this. rfboot's own collections go too unless --keep-state.
rftest_reset_db() {
  local margs=() keep=()
  lab_port_open 27017 || [ "$RFCFG_MONGO_URI" != mongodb://127.0.0.1:27017 ] || return 0
  mapfile -d '' margs < <(rftest_mongo_args)
  [ "${RFTEST_KEEP_STATE:-0}" = 0 ] || keep=(--keep-state)
  rftest_say "database: $(node "$RFTEST_REPO/rftest/lib/show-mongo.mjs" reset "${margs[@]}" "${keep[@]}" 2>&1 | tail -n 1)"
}

rftest_up() {
  rftest_step_lab || return 1
  rftest_load_config || return 1
  rftest_reset_db
  if [ "$RFTEST_RFBOOT" = run ]; then rftest_step_guest || return 1; fi
  rftest_step_net || return 1
  rftest_step_upstream || return 1
  rftest_step_rfboot || return 1
  if [ "$RFTEST_RFBOOT" = run ]; then
    rftest_say "rfboot: each VM's progress follows as rfboot records it (switch joined, VM defined, started, ready)"
    rftest_progress_start
  fi
  rftest_step_mininet || { rftest_progress_stop; return 1; }
  case "$RFTEST_RFBOOT" in
    run) rftest_wait_vms || return 1 ;;
    watch) rftest_wait_switches_watch || return 1 ;;
  esac
  return 0
}

rftest_on_signal() {
  trap - INT TERM
  echo
  rftest_say "interrupted: tearing down"
  rftest_progress_stop
  rftest_down || true
  exit 130
}

rftest_main() {
  RFTEST_T0="$(date +%s%N)"
  RFTEST_T0_MS="$(rftest_now_ms)"
  rftest_parse "$@" || return $?
  if [ "$(id -u)" != 0 ]; then
    rftest_die "must run as root (libvirt qemu:///system, Open vSwitch, Mininet namespaces)"
    return 1
  fi
  RFTEST_STATE="$LAB_DIR/$RFTEST_NAME"
  mkdir -p "$RFTEST_STATE"
  case "$RFTEST_ACTION" in
    down)
      rftest_down
      return $?
      ;;
    mn)
      rftest_mn "${RFTEST_MN_ARGS[@]}"
      return $?
      ;;
    show)
      [ ! -f "$RFTEST_STATE/rfboot.config" ] || RFTEST_SAVED_CONFIG="$RFTEST_STATE/rfboot.config"
      rftest_load_config >/dev/null || true
      rftest_show
      return 0
      ;;
    restart-rfboot)
      rftest_restart_rfboot
      return $?
      ;;
  esac
  : >"$RFTEST_STATE/timings.txt"
  trap rftest_on_signal INT TERM
  if ! rftest_up; then
    if [ "$RFTEST_KEEP" = 1 ]; then
      rftest_say "bring-up failed; left running (--keep-on-failure); rftest/$RFTEST_NAME --down cleans up"
    else
      rftest_say "bring-up failed: tearing down (--keep-on-failure keeps it)"
      rftest_down || true
    fi
    return 1
  fi
  rftest_timing total "$RFTEST_T0_MS"
  awk 'BEGIN { printf "{" } { printf "%s\"%s\": %s", (NR > 1 ? ", " : ""), $1, $2 } END { print "}" }' \
    "$RFTEST_STATE/timings.txt" >"$RFTEST_STATE/timings.json"
  rftest_show
  echo "---- timings (ms) ----"
  cat "$RFTEST_STATE/timings.json"
  echo "---- try ----"
  echo "  rftest/$RFTEST_NAME --mn pingall        rftest/$RFTEST_NAME --mn link ${RFTEST_SWITCHES[0]} ${RFTEST_SWITCHES[1]:-h1} down"
  echo "  rftest/$RFTEST_NAME --show              rftest/$RFTEST_NAME --down"
  if [ "$RFTEST_WAIT" = 0 ]; then
    trap - INT TERM
    rftest_say "up; left running (--no-wait)"
    return 0
  fi
  rftest_say "up; Ctrl-C tears everything down"
  local warned=0
  while true; do
    if [ "$warned" = 0 ] && ! rftest_pid_alive "$RFTEST_STATE/mininet.pid"; then
      rftest_say "warning: the Mininet driver exited (log: $RFTEST_STATE/mininet.log)"
      warned=1
    fi
    sleep 1 &
    wait $! || true
  done
}
