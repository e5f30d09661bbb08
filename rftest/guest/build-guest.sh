#!/usr/bin/env bash
# build-guest.sh [OUT_DIR]: builds rfboot's tiny test guests from Debian packages (cloud kernel, busybox).
#   OUT_DIR/vmlinuz        Debian cloud kernel (linux-image-6.1.0-*-cloud-amd64), for direct kernel boot
#   OUT_DIR/initrd.gz      busybox-static + virtio NIC modules + /init (marker + heartbeat on ttyS0)
#   OUT_DIR/rootfs-lxc/    busybox rootfs for libvirt LXC domains (same /init behaviour, no modules)
#   OUT_DIR/manifest.json  kernel package/version, busybox version, sha256 of each artefact, inputs key
# Idempotent and cached: rebuilt only when an artefact is missing or an input (kernel package version,
# busybox version, this script) changed. Works on a fresh Debian 12 as root (installs what it needs).
# Guest /init protocol (kernel cmdline for the VM, init arguments for LXC):
#   rfboot.name=NAME        printed in the boot marker
#   rfboot.ip=ADDR/PREFIX   configured on eth0
#   rfboot.addr=ethN:ADDR/PREFIX   configured on ethN (repeatable)
#   rfboot.ping=ADDR        pinged every 0.5 s, once the NICs are up
# Console output: "RFBOOT-NIC name=ethN mac=..." per NIC, then
#   "RFBOOT-GUEST-BOOTED name=NAME uptime=SECS", then "RFBOOT-HEARTBEAT n=K" every 0.25 s forever; with
#   rfboot.ping, also "RFBOOT-PING to=ADDR ok rtt_ms=MS" or "RFBOOT-PING to=ADDR fail" after each ping.
set -euo pipefail

OUT="${1:-/var/lib/rfboot/guest}"
SELF="$(readlink -f "${BASH_SOURCE[0]}")"
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net)

log() { printf '[build-guest] %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "must run as root (apt-get, files readable by libvirt-qemu)"; exit 1; }

# One build at a time per output directory (test files and rftest may call this concurrently).
mkdir -p "$OUT"
chmod 755 "$OUT"
exec 9>"$OUT/.build.lock"
flock 9

# Host tools: busybox-static (guest userland), cpio + gzip (initramfs), xz-utils (compressed modules).
need=()
for p in busybox-static cpio xz-utils gzip; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
apt_updated=0
apt_update() { [ "$apt_updated" = 1 ] || { apt-get update -qq; apt_updated=1; }; }
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Resolve the exact kernel package behind the linux-image-cloud-amd64 metapackage.
resolve_kpkg() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
KPKG="$(resolve_kpkg || true)"
if [ -z "$KPKG" ]; then apt_update; KPKG="$(resolve_kpkg)"; fi
[ -n "$KPKG" ] || { log "cannot resolve linux-image-cloud-amd64's kernel package (apt-cache depends)"; exit 1; }
KPKG_VER="$(apt-cache policy "$KPKG" | awk '/Candidate:/{print $2}')"
BUSYBOX_VER="$(dpkg-query -W -f='${Version}' busybox-static)"
INPUTS_KEY="$(printf '%s\n' "$KPKG=$KPKG_VER" "busybox-static=$BUSYBOX_VER" "$(sha256sum "$SELF" | cut -d' ' -f1)" | sha256sum | cut -d' ' -f1)"

if [ -f "$OUT/manifest.json" ] && [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.gz" ] && [ -x "$OUT/rootfs-lxc/init" ] &&
  grep -q "\"inputsKey\": \"$INPUTS_KEY\"" "$OUT/manifest.json"; then
  log "up to date: $OUT ($KPKG $KPKG_VER)"
  exit 0
fi

log "building into $OUT ($KPKG $KPKG_VER, busybox $BUSYBOX_VER)"
mkdir -p "$OUT/.cache"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Kernel package: cached .deb (apt-get download writes into the current directory).
DEB="$(ls "$OUT/.cache/${KPKG}_"*.deb 2>/dev/null | head -n1 || true)"
if [ -z "$DEB" ] || ! dpkg-deb -f "$DEB" Version | grep -qx "$KPKG_VER"; then
  rm -f "$OUT/.cache/"linux-image-*.deb
  log "apt-get download $KPKG"
  (cd "$OUT/.cache" && apt-get download -qq "$KPKG" 2>/dev/null) || { apt_update; (cd "$OUT/.cache" && apt-get download -qq "$KPKG"); }
  DEB="$(ls "$OUT/.cache/${KPKG}_"*.deb | head -n1)"
fi
dpkg -x "$DEB" "$WORK/kernel"
VMLINUZ="$(ls "$WORK"/kernel/boot/vmlinuz-* | head -n1)"
KVER="${VMLINUZ##*/vmlinuz-}"
MODDIR="$WORK/kernel/lib/modules/$KVER"

# Common busybox userland: the static binary plus a symlink per applet (made here, so the guest's /init
# does not need a writable /bin).
populate_busybox() {
  local root="$1"
  mkdir -p "$root/bin" "$root/sbin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/run" "$root/var/log" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  local a
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
  done
}

# The guest /init, shared by the VM initramfs and the LXC rootfs (ROLE decides module loading and mounts).
write_init() {
  local root="$1" role="$2"
  cat >"$root/init" <<INIT
#!/bin/sh
# rfboot test guest init ($role): see rftest/guest/build-guest.sh for the console protocol.
export PATH=/bin:/sbin
ROLE=$role
INIT
  cat >>"$root/init" <<'INIT'
if [ "$ROLE" = vm ]; then
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev 2>/dev/null
  for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
    [ -f "/lib/modules/$m.ko" ] && insmod "/lib/modules/$m.ko" 2>/dev/null
  done
  ARGS="$(cat /proc/cmdline)"
else
  [ -d /proc/self ] || mount -t proc proc /proc 2>/dev/null
  [ -d /sys/class ] || mount -t sysfs sysfs /sys 2>/dev/null
  ARGS="$*"
fi
NAME=unknown
IP=
ADDRS=
PING=
for a in $ARGS; do
  case "$a" in
    rfboot.name=*) NAME="${a#rfboot.name=}" ;;
    rfboot.ip=*) IP="${a#rfboot.ip=}" ;;
    rfboot.addr=*) ADDRS="$ADDRS ${a#rfboot.addr=}" ;;
    rfboot.ping=*) PING="${a#rfboot.ping=}" ;;
  esac
done
# Console output also goes to /var/log/rfboot-guest.log when writable (LXC: readable from the host).
LOG=/var/log/rfboot-guest.log
: >"$LOG" 2>/dev/null || LOG=/dev/null
say() { echo "$*"; echo "$*" >>"$LOG"; }
ip link set lo up 2>/dev/null
# virtio NICs may register just after insmod returns: wait (at most 2 s) until every virtio-net device
# (virtio device id 0x0001) has its ethN.
want=0
for d in /sys/bus/virtio/devices/*; do [ "$(cat "$d/device" 2>/dev/null)" = 0x0001 ] && want=$((want + 1)); done
i=0
while [ "$ROLE" = vm ] && [ "$(ls -d /sys/class/net/eth* 2>/dev/null | wc -l)" -lt "$want" ] && [ $i -lt 20 ]; do
  sleep 0.1
  i=$((i + 1))
done
for d in /sys/class/net/eth*; do
  [ -e "$d" ] || continue
  n="${d##*/}"
  ip link set "$n" up 2>/dev/null
  say "RFBOOT-NIC name=$n mac=$(cat "$d/address")"
done
[ -n "$IP" ] && [ -e /sys/class/net/eth0 ] && ip addr add "$IP" dev eth0 2>/dev/null
# rfboot.addr=ethN:ADDR/PREFIX: the part before the first colon names the NIC (an IPv6 address keeps its own).
for a in $ADDRS; do
  n="${a%%:*}"
  [ -e "/sys/class/net/$n" ] && ip addr add "${a#*:}" dev "$n" 2>/dev/null
done
read -r UP _ </proc/uptime
say "RFBOOT-GUEST-BOOTED name=$NAME uptime=$UP"
# One ping every 0.5 s in the background, each result on the console: a test reads the data path's state
# from the log (busybox ping: one echo, 1 s to answer; rtt_ms from its "time=" field).
if [ -n "$PING" ]; then
  (
    while true; do
      if out="$(ping -c 1 -W 1 "$PING" 2>/dev/null)"; then
        t="${out#*time=}"
        echo "RFBOOT-PING to=$PING ok rtt_ms=${t%% ms*}"
      else
        echo "RFBOOT-PING to=$PING fail"
      fi
      sleep 0.5
    done
  ) &
fi
k=0
# Four beats a second: after a resume from managedsave the first new beat says the guest runs again, so
# the beat period bounds how late readiness is seen. Beats go to the console (virtlogd rotates that log);
# the file keeps only the latest one, so a guest that runs for weeks does not fill its RAM disk.
while true; do
  sleep 0.25
  k=$((k + 1))
  echo "RFBOOT-HEARTBEAT n=$k"
  echo "RFBOOT-HEARTBEAT n=$k" >"$LOG.heartbeat" 2>/dev/null
done
INIT
  chmod 755 "$root/init"
}

# VM initramfs.
IR="$WORK/initramfs"
populate_busybox "$IR"
mkdir -p "$IR/lib/modules"
for m in "${MODULES[@]}"; do
  f="$(find "$MODDIR/kernel" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n1)"
  [ -n "$f" ] || { log "module $m not found in $KPKG"; exit 1; }
  case "$f" in
    *.ko.xz) xz -dc "$f" >"$IR/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -dcq "$f" >"$IR/lib/modules/$m.ko" ;;
    *) cp "$f" "$IR/lib/modules/$m.ko" ;;
  esac
done
write_init "$IR" vm
# Reproducible archive: fixed order, owner, mtimes and inode numbers, so the same inputs give the same sha256.
find "$IR" -exec touch -h -d @0 {} +
(cd "$IR" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --reproducible -R 0:0 | gzip -9n) >"$WORK/initrd.gz"

# LXC rootfs.
RF="$WORK/rootfs-lxc"
populate_busybox "$RF"
write_init "$RF" lxc
chmod -R a+rX "$RF"

install -m 644 "$VMLINUZ" "$OUT/vmlinuz.new" && mv -f "$OUT/vmlinuz.new" "$OUT/vmlinuz"
install -m 644 "$WORK/initrd.gz" "$OUT/initrd.gz.new" && mv -f "$OUT/initrd.gz.new" "$OUT/initrd.gz"
rm -rf "$OUT/rootfs-lxc.old"
[ -d "$OUT/rootfs-lxc" ] && mv "$OUT/rootfs-lxc" "$OUT/rootfs-lxc.old"
cp -a "$RF" "$OUT/rootfs-lxc"
rm -rf "$OUT/rootfs-lxc.old"
chmod 755 "$OUT/rootfs-lxc"

sha() { sha256sum "$1" | cut -d' ' -f1; }
cat >"$OUT/manifest.json.new" <<JSON
{
  "kernelPackage": "$KPKG",
  "kernelPackageVersion": "$KPKG_VER",
  "kernelVersion": "$KVER",
  "busyboxVersion": "$BUSYBOX_VER",
  "modules": [$(printf '"%s",' "${MODULES[@]}" | sed 's/,$//')],
  "vmlinuz": { "path": "vmlinuz", "sha256": "$(sha "$OUT/vmlinuz")" },
  "initrd": { "path": "initrd.gz", "sha256": "$(sha "$OUT/initrd.gz")" },
  "rootfsLxc": { "path": "rootfs-lxc", "init": "rootfs-lxc/init", "sha256Init": "$(sha "$OUT/rootfs-lxc/init")" },
  "inputsKey": "$INPUTS_KEY",
  "builtAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
JSON
chmod 644 "$OUT/manifest.json.new"
mv -f "$OUT/manifest.json.new" "$OUT/manifest.json"
log "done: $OUT (kernel $KVER)"
