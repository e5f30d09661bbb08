"""RouteFlow's rftest1 topology for Mininet: one switch (dpid 0x99), two hosts.

       h1 --- s99 --- h2

RouteFlow's rftest1config.csv maps dp_id 0x99 ports 1 and 2 to rfvm1's eth1 and eth2, so h1
sits on port 1 and h2 on port 2. The switch is named s99 (not s1) so that it does not
collide with Mininet's default names; its dpid is set explicitly to 0x99.

Addressing (`addressing` parameter): "l2" (default) puts h1/h2 at 172.31.1.100/16 and
172.31.2.100/16 so that a plain learning switch connects them; "routed" is RouteFlow's own
172.31.i.100/24 with default gateway 172.31.i.1 (rfvm1 routes between them).
No loop here, so no spanning tree is needed.
"""

from mininet.topo import Topo

RFTEST1_DPID = 0x99


class RFTest1Topo(Topo):
    "RouteFlow rftest1: s99 (dpid 0x99) with h1 on port 1 and h2 on port 2."

    def build(self, addressing="l2"):
        if addressing not in ("l2", "routed"):
            raise ValueError("rftest1 addressing must be 'l2' or 'routed', not %r" % (addressing,))
        self.addSwitch("s99", dpid="%016x" % RFTEST1_DPID)
        for i in (1, 2):
            opts = {"mac": "00:00:00:00:99:%02x" % i}
            if addressing == "l2":
                opts["ip"] = "172.31.%d.100/16" % i
            else:
                opts["ip"] = "172.31.%d.100/24" % i
                opts["defaultRoute"] = "via 172.31.%d.1" % i
            self.addHost("h%d" % i, **opts)
            self.addLink("h%d" % i, "s99", port1=0, port2=i)


topos = {"rftest1": RFTest1Topo}
