//! Which addresses a delivery may connect to. A webhook URL is chosen by a tenant, so
//! without this check the server would POST, on a tenant's behalf, to itself, to its
//! private network or to a cloud metadata service (SSRF). Only addresses routable on
//! the public Internet pass.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is an address on the public Internet, the only kind a delivery may
/// connect to (unless the operator allows private networks).
///
/// Refused: unspecified, loopback, private (RFC 1918), shared (CGNAT), link-local
/// (cloud metadata services live there), documentation, benchmarking, reserved,
/// broadcast and multicast addresses; IPv6 unique-local, site-local, discard-only and
/// everything outside global unicast (`2000::/3`). IPv6 addresses that carry an IPv4
/// address (IPv4-mapped, IPv4-compatible, NAT64, 6to4) are judged by that IPv4 address,
/// as that is where the packets end up.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network" (0/8), 0.0.0.0 included
        || a == 10 // private (RFC 1918)
        || (a == 100 && (64..128).contains(&b)) // shared address space, CGNAT (RFC 6598)
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local, 169.254.169.254 metadata included
        || (a == 172 && (16..32).contains(&b)) // private (RFC 1918)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments (RFC 6890)
        || (a == 192 && b == 0 && c == 2) // documentation TEST-NET-1
        || (a == 192 && b == 168) // private (RFC 1918)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking (RFC 2544)
        || (a == 198 && b == 51 && c == 100) // documentation TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // documentation TEST-NET-3
        || a >= 224; // multicast (224/4), reserved (240/4) and broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // Global unicast is 2000::/3; the rest (loopback, unspecified, unique-local fc00::/7,
    // link-local fe80::/10, site-local fec0::/10, multicast ff00::/8, discard 100::/64,
    // local-use NAT64 64:ff9b:1::/48, unassigned space) is not on the public Internet.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    let refused = match s[0] {
        // IETF protocol assignments 2001::/23 (Teredo, ORCHID…), documentation 2001:db8::/32
        0x2001 => s[1] < 0x0200 || s[1] == 0x0db8,
        // documentation 3fff::/20 (RFC 9637)
        0x3fff => s[1] < 0x1000,
        _ => false,
    };
    !refused
}

/// The IPv4 address an IPv6 address stands for, when it is one of the forms that
/// carry one: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d` (`::` and
/// `::1` included, which then fall in 0/8), NAT64 `64:ff9b::a.b.c.d` and 6to4
/// `2002:aabb:ccdd::/48`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(address: &str) -> bool {
        is_public(address.parse().unwrap())
    }

    fn assert_refused(addresses: &[&str]) {
        for address in addresses {
            assert!(!public(address), "{address} must be refused");
        }
    }

    fn assert_accepted(addresses: &[&str]) {
        for address in addresses {
            assert!(public(address), "{address} must be accepted");
        }
    }

    #[test]
    fn public_addresses_are_accepted() {
        assert_accepted(&[
            "1.1.1.1",
            "8.8.8.8",
            "9.9.9.9",
            "93.184.215.14",
            "100.63.255.255",  // just below CGNAT
            "100.128.0.0",     // just above CGNAT
            "172.15.255.255",  // just below 172.16/12
            "172.32.0.0",      // just above
            "169.253.255.255", // just below link-local
            "192.0.1.1",
            "192.0.3.1",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.1",
            "198.51.101.1",
            "203.0.112.1",
            "203.0.114.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001:80b::200e",
            "2001:200::1", // just past 2001::/23
            "2001:db9::1",
            "3ffe::1",
            "3ffe:ffff::1",
            "3fff:1000::1", // just past 3fff::/20
        ]);
    }

    #[test]
    fn unspecified_is_refused() {
        assert_refused(&["0.0.0.0", "::"]);
    }

    #[test]
    fn this_network_is_refused() {
        assert_refused(&["0.0.0.1", "0.1.2.3", "0.255.255.255"]);
    }

    #[test]
    fn loopback_is_refused() {
        assert_refused(&["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1"]);
    }

    #[test]
    fn rfc1918_private_is_refused() {
        assert_refused(&[
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.20.1.2",
            "172.31.255.255",
            "192.168.0.1",
            "192.168.255.255",
        ]);
    }

    #[test]
    fn link_local_and_metadata_are_refused() {
        assert_refused(&[
            "169.254.0.1",
            "169.254.169.254",
            "169.254.255.255",
            "fe80::1",
            "fe80::a00:27ff:fe4e:66a1",
            "febf:ffff::1",
        ]);
    }

    #[test]
    fn shared_cgnat_is_refused() {
        assert_refused(&["100.64.0.1", "100.100.100.200", "100.127.255.255"]);
    }

    #[test]
    fn ietf_documentation_and_benchmarking_v4_are_refused() {
        assert_refused(&[
            "192.0.0.1",
            "192.0.0.170",
            "192.0.2.1",
            "192.0.2.255",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
        ]);
    }

    #[test]
    fn reserved_broadcast_and_multicast_v4_are_refused() {
        assert_refused(&[
            "240.0.0.1",
            "250.1.2.3",
            "255.255.255.254",
            "255.255.255.255",
            "224.0.0.1",
            "232.1.1.1",
            "239.255.255.250",
        ]);
    }

    #[test]
    fn multicast_v6_is_refused() {
        assert_refused(&["ff02::1", "ff05::1:3", "ff0e::101", "ff00::"]);
    }

    #[test]
    fn unique_local_v6_is_refused() {
        assert_refused(&["fc00::1", "fd00::1", "fd12:3456:789a::1", "fdff:ffff::1"]);
    }

    #[test]
    fn site_local_v6_is_refused() {
        assert_refused(&["fec0::1", "feff:ffff::1"]);
    }

    #[test]
    fn documentation_v6_is_refused() {
        assert_refused(&["2001:db8::1", "2001:db8:ffff::1", "3fff::1", "3fff:fff::1"]);
    }

    #[test]
    fn discard_and_protocol_assignments_v6_are_refused() {
        assert_refused(&[
            "100::1",
            "100::ffff:ffff:ffff:ffff",
            "2001::1",            // Teredo
            "2001:0:4136:e378::", // Teredo
            "2001:10::1",         // ORCHID
            "2001:1ff::1",
            "64:ff9b:1::1", // local-use NAT64
        ]);
    }

    #[test]
    fn outside_global_unicast_v6_is_refused() {
        assert_refused(&["::2:0:0:0:1", "1::1", "4000::1", "8000::1", "e000::1"]);
    }

    #[test]
    fn ipv4_mapped_is_judged_by_its_ipv4_address() {
        assert_refused(&[
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:192.168.1.1",
            "::ffff:0.0.0.0",
            "::ffff:255.255.255.255",
        ]);
        assert_accepted(&["::ffff:1.1.1.1", "::ffff:8.8.8.8"]);
    }

    #[test]
    fn ipv4_compatible_is_judged_by_its_ipv4_address() {
        assert_refused(&[
            "::127.0.0.1",
            "::10.1.2.3",
            "::169.254.169.254",
            "::0.0.0.2",
        ]);
        assert_accepted(&["::1.1.1.1"]);
    }

    #[test]
    fn nat64_is_judged_by_its_ipv4_address() {
        assert_refused(&[
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b::169.254.169.254",
            "64:ff9b::192.168.0.1",
        ]);
        assert_accepted(&["64:ff9b::1.1.1.1"]);
    }

    #[test]
    fn six_to_four_is_judged_by_its_ipv4_address() {
        // 2002:AABB:CCDD::/48 carries AA.BB.CC.DD
        assert_refused(&[
            "2002:7f00:1::1",   // 127.0.0.1
            "2002:a00:1::1",    // 10.0.0.1
            "2002:a9fe:a9fe::", // 169.254.169.254
            "2002:c0a8:101::1", // 192.168.1.1
            "2002::1",          // 0.0.0.0
        ]);
        assert_accepted(&["2002:101:101::1"]); // 1.1.1.1
    }

    #[test]
    fn embedded_forms_are_recognised() {
        let v4 = |s: &str| embedded_v4(s.parse().unwrap());
        assert_eq!(v4("::ffff:1.2.3.4"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(v4("::1.2.3.4"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(v4("64:ff9b::1.2.3.4"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(v4("2002:102:304::"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(v4("2606:4700:4700::1111"), None);
        assert_eq!(v4("::ffff:0:1.2.3.4"), None); // IPv4-translated: refused as not global
        assert!(!public("::ffff:0:1.2.3.4"));
    }
}
