#!/usr/bin/env bash
# RouteFlow's host-side networks for rftest: the virtual switch dp0 and the VMs' management bridge.
# Source this file (after lab.sh, which starts Open vSwitch), then call rfnet_up / rfnet_down.
# Every function is idempotent. Settings (environment, read at call time):
#   RFNET_DP0=dp0                            RouteFlow virtual switch (OVS, userspace datapath)
#   RFNET_DP0_DPID=7266767372667673          "rfvsrfvs": rfproxy recognises dp0 by its top 32 bits
#   RFNET_DP0_CONTROLLER=tcp:127.0.0.1:6633  rfproxy's port; "none" leaves dp0 without a controller
#   RFNET_DP0_FAIL_MODE=secure               see rfnet_dp0_up for why not standalone
#   RFNET_MGMT_BRIDGE=rfbr0                  management bridge for every VM's eth0 (Linux bridge)
#   RFNET_MGMT_CIDR=192.169.1.1/24           host address on it (RouteFlow's lxcbr0/br0 network)

rfnet_log() { printf '[rfnet] %s\n' "$*" >&2; }

rfnet_dp0_name() { printf '%s' "${RFNET_DP0:-dp0}"; }
rfnet_mgmt_name() { printf '%s' "${RFNET_MGMT_BRIDGE:-rfbr0}"; }

# rfnet_dp0_up creates or repairs dp0. fail_mode=secure: without its controller dp0 forwards nothing.
# RouteFlow's dp0 only ever carries what rfproxy decides (each VM port mirrors one switch port); in
# standalone mode OVS would fall back to a learning switch after losing the controller and join every
# VM interface (rfvmA.1 .. rfvmD.4) into one flat L2 segment, so the routing VMs would see each other
# on links that do not exist. Secure is also quiet: no flows, no flooding, and the controller
# connection retries with a bounded backoff (max_backoff 8 s) instead of spinning.
rfnet_dp0_up() {
  local br dpid ctl fail want_ctl cur_ctl
  br="$(rfnet_dp0_name)"
  dpid="${RFNET_DP0_DPID:-7266767372667673}"
  ctl="${RFNET_DP0_CONTROLLER:-tcp:127.0.0.1:6633}"
  fail="${RFNET_DP0_FAIL_MODE:-secure}"
  [[ "$dpid" =~ ^[0-9a-fA-F]{16}$ ]] || { rfnet_log "RFNET_DP0_DPID must be 16 hex digits, not '$dpid'"; return 2; }
  case "$fail" in secure | standalone) ;; *) rfnet_log "RFNET_DP0_FAIL_MODE must be secure or standalone"; return 2 ;; esac
  ovs-vsctl --timeout=10 --may-exist add-br "$br" -- set bridge "$br" datapath_type=netdev \
    protocols=OpenFlow10,OpenFlow13 fail_mode="$fail" \
    other-config:datapath-id="$dpid" other-config:disable-in-band=true || {
    rfnet_log "could not create OVS bridge $br"
    return 1
  }
  if [ "$ctl" = none ]; then
    ovs-vsctl --timeout=10 del-controller "$br"
  else
    want_ctl="$ctl"
    cur_ctl="$(ovs-vsctl --timeout=10 get-controller "$br" | tr '\n' ' ' | sed 's/ $//')"
    # Only replace the Controller row when the target changed: a new row drops the live session.
    if [ "$cur_ctl" != "$want_ctl" ]; then
      ovs-vsctl --timeout=10 -- --id=@c create Controller target="\"$ctl\"" max_backoff=8000 \
        -- set bridge "$br" controller=@c >/dev/null || {
        rfnet_log "could not set controller $ctl on $br"
        return 1
      }
    fi
  fi
  # The bridge's own (LOCAL) port is a tap on the netdev datapath; RouteFlow brings it up.
  ip link set "$br" up 2>/dev/null || true
}

rfnet_dp0_down() {
  local br
  br="$(rfnet_dp0_name)"
  ovs-vsctl --timeout=10 --if-exists del-br "$br"
  # A netdev bridge leaves its tap behind if ovs-vswitchd died before removing it.
  if ip link show "$br" >/dev/null 2>&1 && ! ovs-vsctl --timeout=10 br-exists "$br" 2>/dev/null; then
    ip link del "$br" 2>/dev/null || true
  fi
}

# rfnet_mgmt_up creates the management bridge as a Linux bridge. libvirtd (root, qemu:///system) opens
# the tap itself and enslaves it for <interface type='bridge'><source bridge='rfbr0'/>: no
# qemu-bridge-helper, no bridge.conf ACL (those are for qemu:///session). LXC domains get a veth on it
# the same way. STP off and forward delay 0 so a VM's port forwards the moment it appears.
rfnet_mgmt_up() {
  local br cidr
  br="$(rfnet_mgmt_name)"
  cidr="${RFNET_MGMT_CIDR:-192.169.1.1/24}"
  if ! ip link show "$br" >/dev/null 2>&1; then
    ip link add "$br" type bridge stp_state 0 forward_delay 0 || {
      rfnet_log "could not create Linux bridge $br"
      return 1
    }
  elif [ ! -d "/sys/class/net/$br/bridge" ]; then
    rfnet_log "$br exists but is not a Linux bridge; remove it or set RFNET_MGMT_BRIDGE"
    return 1
  fi
  ip link set "$br" type bridge stp_state 0 forward_delay 0 2>/dev/null || true
  ip addr replace "$cidr" dev "$br"
  ip link set "$br" up
}

rfnet_mgmt_down() {
  local br
  br="$(rfnet_mgmt_name)"
  if [ -d "/sys/class/net/$br/bridge" ]; then ip link del "$br"; fi
}

# rfnet_up brings up dp0 and the management bridge.
rfnet_up() { rfnet_dp0_up && rfnet_mgmt_up; }

# rfnet_down removes both (VM ports on them go with them: stop the VMs first).
rfnet_down() {
  rfnet_dp0_down
  rfnet_mgmt_down
}

# rfnet_show prints a one-line summary of each (for progress output).
rfnet_show() {
  local br mg
  br="$(rfnet_dp0_name)"
  mg="$(rfnet_mgmt_name)"
  if ovs-vsctl --timeout=5 br-exists "$br" 2>/dev/null; then
    printf '%s: dpid %s, %s, fail_mode %s, controller %s, %s ports\n' "$br" \
      "$(ovs-vsctl --timeout=5 get bridge "$br" other-config:datapath-id | tr -d '"')" \
      "$(ovs-vsctl --timeout=5 get bridge "$br" datapath_type)" \
      "$(ovs-vsctl --timeout=5 get bridge "$br" fail_mode)" \
      "$(ovs-vsctl --timeout=5 get-controller "$br" | tr '\n' ' ' | sed 's/ $//')" \
      "$(ovs-vsctl --timeout=5 list-ports "$br" | wc -l)"
  else
    printf '%s: absent\n' "$br"
  fi
  if [ -d "/sys/class/net/$mg/bridge" ]; then
    printf '%s: %s, %s ports\n' "$mg" "$(ip -o -4 addr show dev "$mg" | awk '{print $4}' | paste -sd, -)" \
      "$(find "/sys/class/net/$mg/brif" -mindepth 1 -maxdepth 1 | wc -l)"
  else
    printf '%s: absent\n' "$mg"
  fi
}
