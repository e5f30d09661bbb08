#!/usr/bin/env bash
# Lab bring-up shared by .ci/run and rftest/: installs and starts the real components rfboot talks to.
# Every function is idempotent; source this file, then call lab_up (or the pieces).
# State lives under ${RFBOOT_LAB_DIR:-/var/lib/rfboot-lab}.

LAB_DIR="${RFBOOT_LAB_DIR:-/var/lib/rfboot-lab}"
LAB_PACKAGES=(libvirt-daemon-system libvirt-clients libvirt-daemon-driver-lxc qemu-system-x86 qemu-utils
  dnsmasq-base openvswitch-switch openvswitch-testcontroller mininet iputils-ping busybox-static cpio
  tmux iproute2 util-linux procps psmisc curl ca-certificates)
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

# lab_cgroup_lxc adds the extra cgroup2 mount LXC domains need on these machines (LAB.md).
lab_cgroup_lxc() {
  if ! awk '$3=="cgroup2"{last=$2} END{exit !(last=="/run/cg2")}' /proc/mounts; then
    mkdir -p /run/cg2 && mount -t cgroup2 cgroup2 /run/cg2 || lab_log "could not mount /run/cg2 (LXC will not start)"
  fi
}

# lab_libvirt starts virtlogd and libvirtd (no systemd here) and waits until virsh answers.
lab_libvirt() {
  mkdir -p /var/log/libvirt /var/run/libvirt
  lab_cgroup_lxc
  pgrep -x virtlogd >/dev/null || virtlogd -d
  if ! pgrep -x libvirtd >/dev/null; then libvirtd -d; fi
  local i
  for ((i = 0; i < 100; i++)); do
    LC_ALL=C virsh -c qemu:///system version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  lab_log "libvirtd did not answer on qemu:///system"
  return 1
}

# lab_ovs starts Open vSwitch (userspace datapath only on these machines).
lab_ovs() {
  if ovs-vsctl --timeout=2 show >/dev/null 2>&1; then return 0; fi
  /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1 || true
  ovs-vsctl --timeout=5 show >/dev/null || { lab_log "Open vSwitch did not start"; return 1; }
}

# lab_up brings up everything: packages, MongoDB-wire server, libvirtd, Open vSwitch.
lab_up() {
  lab_packages && lab_mongo && lab_libvirt && lab_ovs
}
