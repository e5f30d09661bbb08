#!/usr/bin/env bash
# Lab bring-up shared by .ci/run and rftest/: installs and starts the real components rfboot talks to.
# Every function is idempotent; source this file, then call lab_up (or the pieces).
# State lives under ${RFBOOT_LAB_DIR:-/var/lib/rfboot-lab}.

LAB_DIR="${RFBOOT_LAB_DIR:-/var/lib/rfboot-lab}"
# openssh-server: the netns-host tests run an sshd of their own in a namespace (qemu+ssh://); where no init
# system runs (these machines), Debian's postinst does not start the machine's own ssh service.
LAB_PACKAGES=(libvirt-daemon-system libvirt-clients libvirt-daemon-driver-lxc qemu-system-x86 qemu-utils
  dnsmasq-base openvswitch-switch openvswitch-testcontroller mininet iputils-ping busybox-static cpio
  tmux iproute2 util-linux procps psmisc curl ca-certificates tini libxml2-utils openssl xz-utils systemd
  openssh-server prometheus chromium zsh groff-base man-db)
FERRETDB_VERSION="v1.24.2"
MONGO_PORT="${RFBOOT_MONGO_PORT:-27017}"

lab_log() { printf '[lab] %s\n' "$*" >&2; }

# lab_packages installs the Debian packages (only those missing).
lab_packages() {
  local missing=()
  for p in "${LAB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    lab_log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# lab_node_deps runs npm ci in the repo when node_modules is missing or older than the lockfile.
lab_node_deps() {
  local repo="$1"
  if [ ! -d "$repo/node_modules" ] || [ "$repo/package-lock.json" -nt "$repo/node_modules/.package-lock.json" ]; then
    lab_log "npm ci"
    (cd "$repo" && npm ci --no-audit --no-fund >/dev/null)
  fi
}

# lab_ferretdb_install builds FerretDB from the Go module proxy when no mongod/ferretdb is on PATH.
# `go install ...@version` is not usable here (the proxy refuses the version list it asks for, and the
# module zip lacks build/version/version.txt), so: fetch the module, copy it, write version.txt, build.
lab_ferretdb_install() {
  command -v mongod >/dev/null && return 0
  command -v ferretdb >/dev/null && return 0
  lab_log "building FerretDB $FERRETDB_VERSION (Go module, ~2 min)"
  local tmp dir
  tmp="$(mktemp -d)"
  (
    set -e
    export GOFLAGS=-buildvcs=false
    cd "$tmp"
    go mod init rfboot-ferretdb >/dev/null 2>&1
    go get "github.com/FerretDB/FerretDB/cmd/ferretdb@$FERRETDB_VERSION" >/dev/null 2>&1
    dir="$(go list -m -f '{{.Dir}}' "github.com/FerretDB/FerretDB")"
    cp -r "$dir" "$tmp/src"
    chmod -R u+w "$tmp/src"
    echo "$FERRETDB_VERSION" >"$tmp/src/build/version/version.txt"
    cd "$tmp/src"
    go build -o /usr/local/bin/ferretdb ./cmd/ferretdb
  ) || { lab_log "FerretDB build failed"; rm -rf "$tmp"; return 1; }
  rm -rf "$tmp"
}

# lab_mongo starts a MongoDB-wire server on 127.0.0.1:$MONGO_PORT (mongod if present, else FerretDB/SQLite).
lab_mongo() {
  if lab_port_open "$MONGO_PORT"; then return 0; fi
  mkdir -p "$LAB_DIR/mongo" && chmod 700 "$LAB_DIR"
  if command -v mongod >/dev/null; then
    mongod --fork --bind_ip 127.0.0.1 --port "$MONGO_PORT" --dbpath "$LAB_DIR/mongo" --logpath "$LAB_DIR/mongod.log" >/dev/null
  else
    lab_ferretdb_install || return 1
    DO_NOT_TRACK=1 setsid ferretdb --handler=sqlite --sqlite-url="file:$LAB_DIR/mongo/" \
      --listen-addr="127.0.0.1:$MONGO_PORT" --state-dir="$LAB_DIR" --telemetry=disable --log-level=warn \
      >"$LAB_DIR/ferretdb.log" 2>&1 </dev/null &
    echo $! >"$LAB_DIR/ferretdb.pid"
  fi
  lab_wait_port "$MONGO_PORT" 30 || { lab_log "MongoDB-wire server did not start"; return 1; }
}

lab_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
lab_wait_port() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do lab_port_open "$1" && return 0; sleep 0.1; done
  return 1
}

# lab_cgroup_lxc adds the extra cgroup2 mount LXC domains need on these machines: libvirt's LXC driver takes the
# last cgroup2 line of /proc/mounts as the hierarchy and, when that is under /sys, tries to create
# /sys/fs/cgroup/unified inside the container's fresh sysfs and fails. A second mount outside /sys is harmless.
lab_cgroup_lxc() {
  if ! awk '$3=="cgroup2"{last=$2} END{exit !(last=="/run/cg2")}' /proc/mounts; then
    mkdir -p /run/cg2 && mount -t cgroup2 cgroup2 /run/cg2 || lab_log "could not mount /run/cg2 (LXC will not start)"
  fi
}

# lab_proc_state prints the state letter of process $1 (R, S, D, Z, ...), or fails when there is none. The
# command name in /proc/PID/stat may hold spaces and parentheses, so the state is read after the last ") ".
lab_proc_state() {
  local s
  s="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  s="${s##*) }"
  printf '%s\n' "${s%% *}"
}

# lab_alive says whether process $1 exists and is not a zombie: where nothing reaps a dead daemon, kill -0 and
# pgrep still find it.
lab_alive() {
  local st
  st="$(lab_proc_state "$1")" || return 1
  [ "$st" != Z ] && [ "$st" != X ]
}

# lab_pidfile_alive says whether the pid in file $1 names a live (non-zombie) process.
lab_pidfile_alive() {
  local pid
  pid="$(cat "$1" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && lab_alive "$pid"
}

# lab_orphans_reaped says whether an orphan of this shell is reaped promptly (by PID 1 or by a subreaper above
# us). Some machines run a PID 1 that never waits for adopted children, or only every few seconds: a daemonized
# process that exits stays a zombie meanwhile, and libvirtd, which waits for its QEMU probe to vanish, waits on
# it. A reaping init (systemd, tini, docker-init) reaps within milliseconds of the exit.
lab_orphans_reaped() {
  local pid i
  # The orphan outlives its parent (which would otherwise reap it itself), then exits after 0.1 s.
  pid="$(sh -c 'sleep 0.1 </dev/null >/dev/null 2>&1 & echo $!')"
  for ((i = 0; i < 12; i++)); do
    lab_alive "$pid" || { [ ! -e "/proc/$pid" ] && return 0; }
    sleep 0.05
  done
  [ ! -e "/proc/$pid" ]
}

# LAB_REAPER is the prefix that runs a command under a subreaper where orphans are not reaped, else nothing.
# Computed once, on first use.
LAB_REAPER=()
LAB_REAPER_KNOWN=0
lab_reaper() {
  if [ "$LAB_REAPER_KNOWN" = 0 ]; then
    LAB_REAPER_KNOWN=1
    if ! lab_orphans_reaped; then
      if command -v tini >/dev/null; then
        lab_log "orphaned processes are not reaped here (PID 1: $(cat /proc/1/comm 2>/dev/null)): daemons run under tini -s"
        LAB_REAPER=(tini -s --)
      else
        lab_log "orphaned processes are not reaped here and tini is missing (apt-get install tini)"
      fi
    fi
  fi
}

# lab_daemon NAME CMD...: starts a long-lived daemon. Where orphans are reaped, CMD is run as given (it may
# detach itself). Where they are not, CMD must stay in the foreground: it runs under tini -s in its own
# session, so tini adopts and reaps whatever the daemon leaves behind. Output goes to $LAB_DIR/NAME.log.
lab_daemon() {
  local name="$1"
  shift
  lab_reaper
  mkdir -p "$LAB_DIR" && chmod 700 "$LAB_DIR"
  setsid "${LAB_REAPER[@]}" "$@" >>"$LAB_DIR/$name.log" 2>&1 </dev/null &
  disown 2>/dev/null || true
}

# lab_qemu_user prints the user libvirt runs QEMU as (qemu.conf `user`, Debian's default libvirt-qemu).
lab_qemu_user() {
  local u
  u="$(sed -nE 's/^[[:space:]]*user[[:space:]]*=[[:space:]]*"([^"]+)".*/\1/p' /etc/libvirt/qemu.conf 2>/dev/null | tail -n1)"
  u="${u#+}"
  printf '%s\n' "${u:-libvirt-qemu}"
}

# lab_kvm_access makes /dev/kvm, where present, usable by libvirt's QEMU user, as Debian's udev rule would
# (group kvm, mode 0660). Without udev the node stays root-only: libvirt probes QEMU as that user and caches "no
# KVM", while libvirtd (root) sees the device usable, declares the cache stale on every call and probes again
# (seconds each under TCG), so every virsh call crawls. A machine where the user can already open it is left as
# it is.
lab_kvm_access() {
  [ -c /dev/kvm ] || return 0
  local user
  user="$(lab_qemu_user)"
  id "$user" >/dev/null 2>&1 || return 0
  if setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups test -r /dev/kvm -a -w /dev/kvm 2>/dev/null; then
    return 0
  fi
  getent group kvm >/dev/null || { lab_log "/dev/kvm is unusable by $user and there is no kvm group"; return 1; }
  lab_log "/dev/kvm is $(stat -c '%U:%G %a' /dev/kvm), unusable by $user: setting group kvm, mode 0660 (Debian's udev rule)"
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
}

# lab_libvirt starts virtlogd and libvirtd (no systemd here) and waits until virsh answers. Each virsh call has
# a timeout: a libvirtd stuck on the traps above must make the lab fail with a reason, never hang it.
lab_libvirt() {
  mkdir -p /var/log/libvirt /var/run/libvirt
  lab_cgroup_lxc
  lab_kvm_access || return 1
  lab_reaper
  if ! lab_pidfile_alive /var/run/virtlogd.pid; then
    if [ ${#LAB_REAPER[@]} -gt 0 ]; then lab_daemon virtlogd virtlogd; else virtlogd -d; fi
  fi
  if ! lab_pidfile_alive /var/run/libvirtd.pid; then
    if [ ${#LAB_REAPER[@]} -gt 0 ]; then lab_daemon libvirtd libvirtd; else libvirtd -d; fi
  fi
  # 60 s in all: a first start probes QEMU once (seconds under TCG); far longer means a trap.
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    LC_ALL=C timeout 10 virsh -c qemu:///system version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  lab_log "libvirtd did not answer on qemu:///system within 60 s (log: $LAB_DIR/libvirtd.log, /var/log/libvirt); bin/rfboot doctor tells why"
  return 1
}

# lab_ovs starts Open vSwitch (userspace datapath only on these machines). ovs-ctl detaches its daemons; where
# orphans are not reaped, it runs under the lab's subreaper (kept alive by a sleeping shell), which then adopts
# ovsdb-server and ovs-vswitchd.
lab_ovs() {
  if lab_pidfile_alive /var/run/openvswitch/ovs-vswitchd.pid && ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
    return 0
  fi
  local ctl=/usr/share/openvswitch/scripts/ovs-ctl i
  lab_reaper
  if [ ${#LAB_REAPER[@]} -gt 0 ]; then
    lab_daemon ovs sh -c "$ctl start --system-id=random; exec sleep infinity"
  else
    "$ctl" start --system-id=random >>"$LAB_DIR/ovs.log" 2>&1 || true
  fi
  # Both daemons: ovsdb-server answers ovs-vsctl before ovs-vswitchd, which makes the bridges, is up.
  for ((i = 0; i < 100; i++)); do
    if lab_pidfile_alive /var/run/openvswitch/ovs-vswitchd.pid && ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  lab_log "Open vSwitch did not start (log: $LAB_DIR/ovs.log)"
  return 1
}

# lab_doctor runs `rfboot doctor` against the lab (needs the repo's node_modules): a host that cannot work is
# reported with its fixes, and the bring-up stops there instead of hanging later.
lab_doctor() {
  local repo="$1" out rc=0
  out="$(timeout 60 "$repo/bin/rfboot" doctor 2>&1)" || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '%s\n' "$out" >&2
    lab_log "rfboot doctor found blocking problems (exit $rc)"
    return 1
  fi
  printf '%s\n' "$out" | grep -E '^(warn|FAIL)' | sed 's/^/[lab] doctor: /' >&2 || true
}

# lab_up brings up everything: packages, MongoDB-wire server, libvirtd, Open vSwitch.
lab_up() {
  mkdir -p "$LAB_DIR" && chmod 700 "$LAB_DIR"
  lab_packages && lab_mongo && lab_libvirt && lab_ovs
}
