"""RouteFlow's rftest2 topology for Mininet: four switches in a mesh, one host each.

       h5 --- s5(A) ---- s6(B) --- h6
               |   \\      |
               |    \\     |
       h7 --- s7(C) ---- s8(D) --- h8

Switch names, dpids and OpenFlow port numbers follow RouteFlow's rftest2
(CPqD/RouteFlow rftest/topo-4sw-4host.py, and its rftest2config.csv mapping dp_id 5..8):
port 1 of every switch faces its host; A-B uses 2/2, B-D 3/2, D-C 3/2, C-A 3/3, A-D 4/4.
So s5 and s8 have 4 data ports, s6 and s7 have 3: 14 in all, one per rfconfig row.

Addressing (`addressing` parameter):
- "l2" (default): hosts h5..h8 at 172.31.i.100/16, one L2 subnet. Used when a plain
  learning switch (ovs-testcontroller) is the upstream controller: nothing routes, so the
  hosts must share a subnet to ping each other. The mesh has loops, so the switches run
  (R)STP (see rfmn.py).
- "routed": RouteFlow's own addressing, 172.31.i.100/24 with default gateway 172.31.i.1.
  Use it with a real rfproxy/rfserver, where the routing VMs route between the /24s.

Use from the command line:
  mn --custom rftest/topo/rfmn.py,rftest/topo/rftest2.py --topo rftest2 --switch rfovs,datapath=user \\
     --controller remote,ip=127.0.0.1,port=6653
or through rftest/topo/run.py (unattended, with a control socket).
"""

from mininet.topo import Topo

# (switch, RouteFlow letter, dpid, host, host subnet index)
RFTEST2_SWITCHES = (
    ("s5", "A", 5, "h5", 1),
    ("s6", "B", 6, "h6", 2),
    ("s7", "C", 7, "h7", 3),
    ("s8", "D", 8, "h8", 4),
)

# (switch1, port1, switch2, port2): RouteFlow's links A-B, B-D, D-C, C-A, A-D.
RFTEST2_LINKS = (
    ("s5", 2, "s6", 2),
    ("s6", 3, "s8", 2),
    ("s8", 3, "s7", 2),
    ("s7", 3, "s5", 3),
    ("s5", 4, "s8", 4),
)


def dpid_str(dpid):
    """Mininet's dpid format: 16 hex digits, no separators."""
    return "%016x" % dpid


class RFTest2Topo(Topo):
    "RouteFlow rftest2: s5..s8 (dpid 5..8) in a mesh, host hN on port 1 of sN."

    def build(self, addressing="l2"):
        if addressing not in ("l2", "routed"):
            raise ValueError("rftest2 addressing must be 'l2' or 'routed', not %r" % (addressing,))
        for sw, _letter, dpid, host, i in RFTEST2_SWITCHES:
            self.addSwitch(sw, dpid=dpid_str(dpid))
            if addressing == "l2":
                self.addHost(host, ip="172.31.%d.100/16" % i, mac="00:00:00:00:00:%02x" % dpid)
            else:
                self.addHost(
                    host,
                    ip="172.31.%d.100/24" % i,
                    mac="00:00:00:00:00:%02x" % dpid,
                    defaultRoute="via 172.31.%d.1" % i,
                )
            self.addLink(host, sw, port1=0, port2=1)
        for s1, p1, s2, p2 in RFTEST2_LINKS:
            self.addLink(s1, s2, port1=p1, port2=p2)


topos = {"rftest2": RFTest2Topo}
