"""Mininet pieces shared by rftest's topologies: an Open vSwitch switch with a loop guard.

RfOVSSwitch is Mininet's OVSSwitch plus spanning tree that works with a remote controller
(Mininet's own `stp=True` is only honoured with fail_mode=standalone). `loop` selects it:
- "rstp" (default): 802.1w, rstp_enable=true. Switch-to-switch links converge by
  proposal/agreement; host-facing ports are admin edge ports and forward at once.
- "stp": 802.1D, stp_enable=true, with the shortest timers OVS accepts (hello 1 s,
  max age 6 s, forward delay 4 s): ports forward ~8 s after the bridge comes up.
- "none": no loop guard (fine for loop-free topologies such as rftest1).
Both run inside ovs-vswitchd's ofproto layer, so they work on the userspace (netdev)
datapath and whatever the fail mode: BPDUs never reach the controller, and OVS drops
traffic received on, and floods nothing to, ports that (R)STP keeps discarding.

Usable as an `mn --custom` file too: `--switch rfovs,datapath=user,loop=rstp`.
"""

from mininet.node import OVSSwitch, Switch

LOOP_MODES = ("rstp", "stp", "none")

# Shortest timers OVS accepts (vswitchd/vswitch.xml: forward delay 4..30 s, max age 6..40 s,
# hello 1..10 s), so that the STP fallback converges in seconds rather than 30 s.
_TIMERS = {"hello-time": 1, "max-age": 6, "forward-delay": 4}


class RfOVSSwitch(OVSSwitch):
    "OVSSwitch with STP/RSTP that also runs under a remote controller (fail_mode=secure)."

    def __init__(self, name, loop="rstp", **params):
        if loop not in LOOP_MODES:
            raise ValueError("loop must be one of %s, not %r" % (", ".join(LOOP_MODES), loop))
        self.loop = loop
        OVSSwitch.__init__(self, name, **params)

    def bridgeOpts(self):
        opts = OVSSwitch.bridgeOpts(self)
        # Bridge identity from the dpid (not OVS's random MAC) so the lowest dpid is always the
        # root and every run blocks the same ports.
        ident = "02:" + ":".join("%02x" % b for b in int(self.dpid, 16).to_bytes(8, "big")[3:])
        if self.loop == "stp":
            opts += " stp_enable=true other_config:stp-system-id=%s" % ident
            for k, v in _TIMERS.items():
                opts += " other_config:stp-%s=%d" % (k, v)
        elif self.loop == "rstp":
            opts += " rstp_enable=true other_config:rstp-address=%s" % ident
            # RSTP's hello time is fixed at 2 s in OVS (no rstp-hello-time key).
            for k in ("max-age", "forward-delay"):
                opts += " other_config:rstp-%s=%d" % (k, _TIMERS[k])
        return opts

    def intfOpts(self, intf):
        opts = OVSSwitch.intfOpts(self, intf)
        if self.loop == "rstp" and self._faces_host(intf):
            # An edge port leads to a host, never to another bridge: forward at once instead of
            # waiting for a proposal/agreement handshake that a host never answers.
            # The rstp port keys live in the Port table (not Interface).
            opts += " -- set Port %s other_config:rstp-port-admin-edge=true" % intf
            opts += " other_config:rstp-port-auto-edge=false"
        return opts

    @staticmethod
    def _faces_host(intf):
        link = getattr(intf, "link", None)
        if link is None:
            return False
        peer = link.intf2 if link.intf1 is intf else link.intf1
        return not isinstance(peer.node, Switch)


switches = {"rfovs": RfOVSSwitch}
