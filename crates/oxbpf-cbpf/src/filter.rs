//! A compiler for libpcap's filter language (`man pcap-filter`) to
//! classic BPF, for Ethernet (DLT_EN10MB) frames. This first part covers
//! the protocol primitives (`ether`, `ip`, `ip6`, `arp`, `rarp`, `tcp`,
//! `udp`, `sctp`, `icmp`, `icmp6`), `host`, `net` (CIDR and `mask`),
//! `port`, `portrange` with `src`/`dst` and protocol qualifiers, `len`,
//! `greater`/`less`, `proto`, and `and`/`or`/`not` with parentheses, with
//! libpcap's meaning of each (a `port` is TCP, UDP or SCTP, over IPv4 that
//! is not a later fragment or over IPv6). Errors name the column.

use crate::{Insn, class, mode, op, rval, size, src};

/// A syntax or meaning error at a column (1-based) of the expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("syntax error at 1:{col}: {msg}")]
pub struct FilterError {
    pub col: usize,
    pub msg: String,
}

/// What a kept packet returns: libpcap's default snap length.
pub const SNAPLEN: u32 = 262_144;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Num(u32),
    Ip4(u32, Option<u8>),
    Ip6([u8; 16], Option<u8>),
    LParen,
    RParen,
    Not,
    And,
    Or,
    Cmp(&'static str),
    /// An arithmetic operator or bracket: + - * / % & | ^ << >> [ ] :
    Op(&'static str),
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let at = i + 1;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let two = s.get(i..i + 2).unwrap_or("");
        let (tok, len) = match c {
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'!' if two == "!=" => (Tok::Cmp("!="), 2),
            b'!' => (Tok::Not, 1),
            b'&' if two == "&&" => (Tok::And, 2),
            b'|' if two == "||" => (Tok::Or, 2),
            b'<' if two == "<<" => (Tok::Op("<<"), 2),
            b'>' if two == ">>" => (Tok::Op(">>"), 2),
            b'<' if two == "<=" => (Tok::Cmp("<="), 2),
            b'>' if two == ">=" => (Tok::Cmp(">="), 2),
            b'&' => (Tok::Op("&"), 1),
            b'|' => (Tok::Op("|"), 1),
            b'+' => (Tok::Op("+"), 1),
            b'*' => (Tok::Op("*"), 1),
            b'/' => (Tok::Op("/"), 1),
            b'%' => (Tok::Op("%"), 1),
            b'^' => (Tok::Op("^"), 1),
            b'[' => (Tok::Op("["), 1),
            b']' => (Tok::Op("]"), 1),
            b':' => (Tok::Op(":"), 1),
            b'-' => (Tok::Op("-"), 1),
            b'<' => (Tok::Cmp("<"), 1),
            b'>' => (Tok::Cmp(">"), 1),
            b'=' if two == "==" => (Tok::Cmp("="), 2),
            b'=' => (Tok::Cmp("="), 1),
            _ if c.is_ascii_alphanumeric() || c == b':' || c == b'_' || c == b'\\' => {
                let end = s[i..]
                    .find(|ch: char| {
                        !(ch.is_ascii_alphanumeric()
                            || matches!(ch, '.' | ':' | '/' | '_' | '-' | '\\'))
                    })
                    .map_or(b.len(), |e| i + e);
                let w = &s[i..end];
                (word(w, at)?, end - i)
            }
            _ => {
                return Err(FilterError {
                    col: at,
                    msg: format!("unexpected {:?}", c as char),
                });
            }
        };
        out.push((at, tok));
        i += len;
    }
    Ok(out)
}

fn word(w: &str, at: usize) -> Result<Tok, FilterError> {
    let (addr, prefix) = match w.split_once('/') {
        Some((a, p)) => {
            let p: u8 = p.parse().map_err(|_| FilterError {
                col: at + a.len() + 1,
                msg: format!("{p:?} is not a prefix length"),
            })?;
            (a, Some(p))
        }
        None => (w, None),
    };
    if let Ok(a) = addr.parse::<std::net::Ipv4Addr>() {
        if prefix.is_some_and(|p| p > 32) {
            return Err(FilterError {
                col: at,
                msg: format!("{w}: an IPv4 prefix is at most 32 bits"),
            });
        }
        return Ok(Tok::Ip4(u32::from(a), prefix));
    }
    if addr.contains(':')
        && let Ok(a) = addr.parse::<std::net::Ipv6Addr>()
    {
        if prefix.is_some_and(|p| p > 128) {
            return Err(FilterError {
                col: at,
                msg: format!("{w}: an IPv6 prefix is at most 128 bits"),
            });
        }
        return Ok(Tok::Ip6(a.octets(), prefix));
    }
    if prefix.is_some() {
        return Err(FilterError {
            col: at,
            msg: format!("{w:?} is not an address/prefix"),
        });
    }
    let num = if let Some(h) = w.strip_prefix("0x") {
        u32::from_str_radix(h, 16).ok()
    } else if w.chars().all(|c| c.is_ascii_digit()) {
        w.parse().ok()
    } else {
        None
    };
    if let Some(n) = num {
        return Ok(Tok::Num(n));
    }
    Ok(match w {
        "and" => Tok::And,
        "or" => Tok::Or,
        "not" => Tok::Not,
        _ => Tok::Word(w.trim_start_matches('\\').to_string()),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// Source or destination (none given, or `src or dst`).
    Any,
    Src,
    Dst,
    /// `src and dst`.
    Both,
}

/// Where an IPv4 address is looked for (`host`, `net`): bits.
const IN_IP: u8 = 1;
const IN_ARP: u8 = 2;
const IN_RARP: u8 = 4;

#[derive(Clone, Debug)]
enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    /// A frame of this Ethernet type.
    EtherType(u16),
    /// IPv4 with this protocol, IPv6 with this next header.
    Ip4Proto(u8),
    Ip6Proto(u8),
    /// An IPv4 address (under a mask) in IPv4 headers and/or ARP/RARP
    /// sender or target addresses (`IN_*` bits: an unqualified
    /// `host`/`net` means all three).
    /// `host A or host B` is one node with both (address, mask) pairs:
    /// each field is loaded once, as in libpcap's optimized code.
    Host4(Dir, Vec<(u32, u32)>, u8),
    Host6(Dir, [u8; 16], u8),
    /// A transport port of `protos` (IPv4, unfragmented, and IPv6) in one
    /// of the ranges (`port 80 or port 443` is one node, tested as
    /// libpcap's optimized code tests it: each port field loaded once).
    Port(Dir, Vec<u8>, Vec<(u16, u16)>),
    /// The frame's length compared with a constant.
    Len(&'static str, u32),
    /// An Ethernet address (`ether host/src/dst`).
    Mac(Dir, [u8; 6]),
    /// The first byte of the destination has its group bit set.
    EtherMulticast,
    /// An 802.1Q/802.1ad tag here (with this VLAN id).
    Vlan(Option<u16>),
    /// A tag the kernel took off the frame into the skb (with this VLAN
    /// id): the ancillary loads `vlanp` and `vlan_tci`.
    VlanMeta(Option<u16>),
    /// An MPLS label here (this one).
    Mpls(Option<u32>),
    /// `arith relop arith` (`tcp[13] & 2 != 0`, `ip[2:2] > 576`).
    Rel(&'static str, Arith, Arith),
    /// The node with the link header this many bytes further on (after
    /// `vlan` or `mpls`, libpcap reads the rest of the expression inside
    /// the encapsulation).
    Shift(u32, Box<Node>),
}

/// An arithmetic expression of the filter language.
#[derive(Clone, Debug)]
enum Arith {
    Num(u32),
    Len,
    /// `proto[idx : size]`.
    Load(&'static str, Box<Arith>, u8),
    Bin(&'static str, Box<Arith>, Box<Arith>),
    Neg(Box<Arith>),
}

impl Arith {
    fn konst(&self) -> Option<u32> {
        match self {
            Arith::Num(n) => Some(*n),
            _ => None,
        }
    }

    fn protos(&self, out: &mut Vec<&'static str>) {
        match self {
            Arith::Load(p, i, _) => {
                if !out.contains(p) {
                    out.push(p);
                }
                i.protos(out);
            }
            // libpcap's gen_arth keeps the protocol checks of the left
            // operand only (`300 - ip[8]` checks for no IP header): the
            // same verdicts need the same.
            Arith::Bin(_, a, _) => a.protos(out),
            Arith::Neg(a) => a.protos(out),
            _ => {}
        }
    }
}

fn named_constant(w: &str) -> Option<u32> {
    Some(match w {
        "tcpflags" => 13,
        "icmptype" | "icmp6type" => 0,
        "icmpcode" | "icmp6code" => 1,
        "tcp-fin" => 0x01,
        "tcp-syn" => 0x02,
        "tcp-rst" => 0x04,
        "tcp-push" => 0x08,
        "tcp-ack" => 0x10,
        "tcp-urg" => 0x20,
        "tcp-ece" => 0x40,
        "tcp-cwr" => 0x80,
        "icmp-echoreply" => 0,
        "icmp-unreach" => 3,
        "icmp-sourcequench" => 4,
        "icmp-redirect" => 5,
        "icmp-echo" => 8,
        "icmp-routeradvert" => 9,
        "icmp-routersolicit" => 10,
        "icmp-timxceed" => 11,
        "icmp-paramprob" => 12,
        "icmp-tstamp" => 13,
        "icmp-tstampreply" => 14,
        "icmp-ireq" => 15,
        "icmp-ireqreply" => 16,
        "icmp-maskreq" => 17,
        "icmp-maskreply" => 18,
        _ => return None,
    })
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
    end: usize,
    /// Nesting of `not` and parentheses, and primitives so far: both
    /// bounded, so that no input recurses without end.
    depth: usize,
    primitives: usize,
    /// Bytes of VLAN tags and MPLS labels before the network header, for
    /// the primitives from here on.
    l2: u32,
    /// After `mpls`, primitives mean the payload's protocol (libpcap reads
    /// the IP version nibble there): not supported yet.
    in_mpls: bool,
    link: Link,
    /// The first `vlan` reads the tag Linux took off into the skb (see
    /// [`Options::kernel_vlan`]); set once it has.
    kernel_vlan: bool,
}

/// Bounds on an expression (libpcap's jumps reach 256 instructions, so
/// far less already fails to compile).
const MAX_DEPTH: usize = 200;
const MAX_PRIMITIVES: usize = 1000;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(_, t)| t)
    }

    fn col(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |(c, _)| *c)
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, FilterError> {
        Err(FilterError {
            col: self.col(),
            msg: msg.into(),
        })
    }

    fn expr(&mut self) -> Result<Node, FilterError> {
        let mut n = self.term()?;
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            n = Node::Or(Box::new(n), Box::new(self.term()?));
        }
        Ok(n)
    }

    fn term(&mut self) -> Result<Node, FilterError> {
        let mut n = self.factor()?;
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            n = Node::And(Box::new(n), Box::new(self.factor()?));
        }
        Ok(n)
    }

    fn factor(&mut self) -> Result<Node, FilterError> {
        if self.depth >= MAX_DEPTH {
            return self.err("the expression nests too deeply");
        }
        self.depth += 1;
        let r = self.factor_inner();
        self.depth -= 1;
        r
    }

    /// Whether a comparison follows at this nesting level before the
    /// primitive or relation ends: then it is a relation.
    fn relation_ahead(&self) -> bool {
        let mut depth = 0i32;
        for (_, t) in &self.toks[self.at..] {
            match t {
                Tok::LParen => depth += 1,
                Tok::RParen if depth == 0 => return false,
                Tok::RParen => depth -= 1,
                Tok::And | Tok::Or if depth == 0 => return false,
                Tok::Cmp(_) if depth == 0 => return true,
                _ => {}
            }
        }
        false
    }

    fn relation(&mut self) -> Result<Node, FilterError> {
        let a = self.arith(0)?;
        let op = match self.peek() {
            Some(Tok::Cmp(c)) => *c,
            _ => return self.err("expected a comparison (=, !=, <, <=, >, >=)"),
        };
        self.at += 1;
        let b = self.arith(0)?;
        Ok(Node::Rel(op, a, b))
    }

    /// Arithmetic by precedence climbing: | ^, &, << >>, + -, * / %.
    fn arith(&mut self, level: usize) -> Result<Arith, FilterError> {
        const LEVELS: [&[&str]; 5] = [
            &["|", "^"],
            &["&"],
            &["<<", ">>"],
            &["+", "-"],
            &["*", "/", "%"],
        ];
        if self.depth >= MAX_DEPTH {
            return self.err("the expression nests too deeply");
        }
        if level == LEVELS.len() {
            return self.unary();
        }
        self.depth += 1;
        let mut a = self.arith(level + 1);
        while let Ok(l) = &a {
            let op = match self.peek() {
                Some(Tok::Op(o)) if LEVELS[level].contains(o) => *o,
                _ => break,
            };
            self.at += 1;
            let l = l.clone();
            a = self
                .arith(level + 1)
                .map(|r| Arith::Bin(op, Box::new(l), Box::new(r)));
        }
        self.depth -= 1;
        a
    }

    fn unary(&mut self) -> Result<Arith, FilterError> {
        match self.peek().cloned() {
            Some(Tok::Op("-")) => {
                self.at += 1;
                self.depth += 1;
                let r = self.unary().map(|x| Arith::Neg(Box::new(x)));
                self.depth -= 1;
                r
            }
            Some(Tok::LParen) => {
                self.at += 1;
                let a = self.arith(0)?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.err("expected ')'");
                }
                self.at += 1;
                Ok(a)
            }
            Some(Tok::Num(n)) => {
                self.at += 1;
                Ok(Arith::Num(n))
            }
            Some(Tok::Word(w)) if w == "len" => {
                self.at += 1;
                Ok(Arith::Len)
            }
            Some(Tok::Word(w)) => {
                if let Some(n) = named_constant(&w) {
                    self.at += 1;
                    return Ok(Arith::Num(n));
                }
                let proto: &'static str = match w.as_str() {
                    "ether" => "ether",
                    "ip" => "ip",
                    "ip6" => "ip6",
                    "tcp" => "tcp",
                    "udp" => "udp",
                    "icmp" => "icmp",
                    "sctp" => "sctp",
                    _ => return self.err(format!("{w:?} is not a number or a protocol[index]")),
                };
                self.at += 1;
                if self.peek() != Some(&Tok::Op("[")) {
                    return self.err(format!("expected '[' after {proto}"));
                }
                self.at += 1;
                // `ip[2:2]` lexes its `2:2` as one word.
                if let Some(Tok::Word(w)) = self.peek().cloned()
                    && let Some((i, sz)) = w.split_once(':')
                    && let (Ok(i), Ok(sz)) = (i.parse::<u32>(), sz.parse::<u8>())
                {
                    self.at += 1;
                    return self.close_load(proto, Arith::Num(i), Some(sz));
                }
                let idx = self.arith(0)?;
                let size = if self.peek() == Some(&Tok::Op(":")) {
                    self.at += 1;
                    match self.peek() {
                        Some(Tok::Num(n)) => {
                            let n = *n as u8;
                            self.at += 1;
                            Some(n)
                        }
                        _ => return self.err("expected a size (1, 2 or 4)"),
                    }
                } else {
                    None
                };
                self.close_load(proto, idx, size)
            }
            _ => self.err("expected a number, len or protocol[index]"),
        }
    }

    fn close_load(
        &mut self,
        proto: &'static str,
        idx: Arith,
        size: Option<u8>,
    ) -> Result<Arith, FilterError> {
        let size = size.unwrap_or(1);
        if !matches!(size, 1 | 2 | 4) {
            return self.err("data size must be 1, 2, or 4");
        }
        if self.peek() != Some(&Tok::Op("]")) {
            return self.err("expected ']'");
        }
        self.at += 1;
        Ok(Arith::Load(proto, Box::new(idx), size))
    }

    fn factor_inner(&mut self) -> Result<Node, FilterError> {
        if self.relation_ahead() {
            self.primitives += 1;
            let off = self.l2;
            let n = self.relation()?;
            return Ok(if off > 0 {
                Node::Shift(off, Box::new(n))
            } else {
                n
            });
        }
        match self.peek() {
            Some(Tok::Not) => {
                self.at += 1;
                Ok(Node::Not(Box::new(self.factor()?)))
            }
            Some(Tok::LParen) => {
                self.at += 1;
                let n = self.expr()?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.err("expected ')'");
                }
                self.at += 1;
                Ok(n)
            }
            Some(_) => {
                self.primitives += 1;
                if self.primitives > MAX_PRIMITIVES {
                    return self.err("the expression has too many primitives");
                }
                let off = self.l2;
                let n = self.primitive()?;
                Ok(if off > 0 {
                    Node::Shift(off, Box::new(n))
                } else {
                    n
                })
            }
            None => self.err("expected a primitive"),
        }
    }

    fn word(&self) -> Option<&str> {
        match self.peek() {
            Some(Tok::Word(w)) => Some(w),
            _ => None,
        }
    }

    fn number(&mut self, what: &str) -> Result<u32, FilterError> {
        match self.peek() {
            Some(Tok::Num(n)) => {
                let n = *n;
                self.at += 1;
                Ok(n)
            }
            _ => self.err(format!("expected {what}")),
        }
    }

    fn primitive(&mut self) -> Result<Node, FilterError> {
        if self.in_mpls {
            return self.err("primitives after 'mpls' are not supported yet");
        }
        // `vlan [id]`, `mpls [label]`: the rest reads inside.
        if let Some(w @ ("vlan" | "mpls")) = self.word() {
            let vlan = w == "vlan";
            if self.link == Link::RawIp {
                return self.err(format!(
                    "no {} on raw IP links",
                    if vlan { "VLAN" } else { "MPLS" }
                ));
            }
            self.at += 1;
            let id = match self.peek() {
                Some(Tok::Num(n)) => {
                    let n = *n;
                    if (vlan && n > 4095) || n > 0xfffff {
                        return self.err(format!(
                            "{n} is not a {}",
                            if vlan { "VLAN id" } else { "MPLS label" }
                        ));
                    }
                    self.at += 1;
                    Some(n)
                }
                _ => None,
            };
            if vlan && self.kernel_vlan && self.l2 == 0 {
                self.kernel_vlan = false;
                return Ok(Node::VlanMeta(id.map(|n| n as u16)));
            }
            if self.l2 >= 64 {
                return self.err("too many VLAN tags or MPLS labels");
            }
            self.l2 += 4;
            self.in_mpls |= !vlan;
            return Ok(if vlan {
                Node::Vlan(id.map(|n| n as u16))
            } else {
                Node::Mpls(id)
            });
        }
        // [proto] [dir] [type] id
        let mut proto: Option<String> = None;
        if let Some(w) = self.word()
            && matches!(
                w,
                "ether" | "ip" | "ip6" | "arp" | "rarp" | "tcp" | "udp" | "sctp" | "icmp" | "icmp6"
            )
        {
            proto = Some(w.to_string());
            self.at += 1;
        }
        let mut dir = Dir::Any;
        let mut dir_given = false;
        if let Some(w @ ("src" | "dst")) = self.word() {
            let src = w == "src";
            dir = if src { Dir::Src } else { Dir::Dst };
            dir_given = true;
            self.at += 1;
            // `src or dst`, `src and dst` (either order).
            let other = if src { "dst" } else { "src" };
            let joined = matches!(self.peek(), Some(Tok::Or | Tok::And))
                && matches!(self.toks.get(self.at + 1), Some((_, Tok::Word(x))) if x == other);
            if joined {
                dir = if self.peek() == Some(&Tok::Or) {
                    Dir::Any
                } else {
                    Dir::Both
                };
                self.at += 2;
            }
        }
        let kind = self.word().map(str::to_string);
        if proto.as_deref() == Some("ether") {
            return self.ether(dir, kind.as_deref());
        }
        if !dir_given && let Some(k @ ("multicast" | "broadcast")) = kind.as_deref() {
            let load =
                |p: &'static str, i: u32, sz: u8| Arith::Load(p, Box::new(Arith::Num(i)), sz);
            let multicast = k == "multicast";
            let node = match (proto.as_deref(), multicast) {
                (None, _) => return self.ether(Dir::Any, Some(k)),
                // The destination: 224.0.0.0/4 and up; ff00::/8.
                (Some("ip"), true) => Node::Rel(">=", load("ip", 16, 1), Arith::Num(0xe0)),
                (Some("ip6"), true) => Node::Rel("=", load("ip6", 24, 1), Arith::Num(0xff)),
                // Without a netmask, libpcap's broadcasts are 0.0.0.0 and
                // 255.255.255.255.
                (Some("ip"), false) => Node::Or(
                    Box::new(Node::Rel("=", load("ip", 16, 4), Arith::Num(0))),
                    Box::new(Node::Rel("=", load("ip", 16, 4), Arith::Num(u32::MAX))),
                ),
                (Some(p), _) => {
                    return self.err(format!("{k} applies to ether, ip or ip6, not {p}"));
                }
            };
            self.at += 1;
            return Ok(node);
        }
        match kind.as_deref() {
            Some("host") => {
                self.at += 1;
                self.host(dir, proto.as_deref())
            }
            Some("net") => {
                self.at += 1;
                self.net(dir, proto.as_deref())
            }
            Some("port") | Some("portrange") => {
                self.at += 1;
                let name_at = self.at;
                let (lo, only) = self.port_number()?;
                let hi = if kind.as_deref() == Some("portrange") {
                    if self.word().is_some_and(|w| w.starts_with('-')) {
                        let w = self.word().unwrap_or_default().to_string();
                        self.at += 1;
                        w[1..]
                            .parse::<u16>()
                            .or_else(|_| self.err("expected a port number after '-'"))?
                    } else {
                        return self.err("expected a port range (N-M)");
                    }
                } else {
                    lo
                };
                let protos = match (proto.as_deref(), only) {
                    (None, Some(p)) => vec![p],
                    (None, None) => vec![6, 17, 132],
                    (Some(q @ ("tcp" | "udp" | "sctp")), Some(p)) if proto_number(q) != Some(p) => {
                        self.at = name_at;
                        let name = self.word().unwrap_or_default().to_string();
                        return self.err(format!(
                            "port '{name}' is {}",
                            if p == 6 { "tcp" } else { "udp" }
                        ));
                    }
                    (Some("tcp"), _) => vec![6],
                    (Some("udp"), _) => vec![17],
                    (Some("sctp"), _) => vec![132],
                    (Some(p), _) => {
                        return self.err(format!("port applies to tcp, udp or sctp, not {p}"));
                    }
                };
                Ok(Node::Port(dir, protos, vec![(lo, hi)]))
            }
            Some("proto") => {
                self.at += 1;
                let n = match self.peek() {
                    Some(Tok::Num(n)) if *n < 256 => *n as u8,
                    Some(Tok::Word(w)) => match proto_number(w) {
                        Some(n) => n,
                        None => return self.err(format!("unknown protocol {w:?}")),
                    },
                    _ => return self.err("expected a protocol number or name after 'proto'"),
                };
                self.at += 1;
                Ok(match proto.as_deref() {
                    Some("ip") => Node::Ip4Proto(n),
                    Some("ip6") => Node::Ip6Proto(n),
                    None => Node::Or(Box::new(Node::Ip4Proto(n)), Box::new(Node::Ip6Proto(n))),
                    Some(p) => return self.err(format!("proto applies to ip or ip6, not {p}")),
                })
            }
            Some("len") if proto.is_none() => {
                self.at += 1;
                let cmp = match self.peek() {
                    Some(Tok::Cmp(c)) => *c,
                    _ => return self.err("expected a comparison after 'len'"),
                };
                self.at += 1;
                Ok(Node::Len(cmp, self.number("a length")?))
            }
            Some(w @ ("greater" | "less")) if proto.is_none() => {
                let cmp = if w == "greater" { ">=" } else { "<=" };
                self.at += 1;
                Ok(Node::Len(cmp, self.number("a length")?))
            }
            _ => match (proto.as_deref(), dir_given) {
                (Some(p), false) => Ok(protocol(p)),
                (_, _) => match self.peek() {
                    // An address alone: `src 10.0.0.1` means `src host ...`.
                    Some(Tok::Ip4(..) | Tok::Ip6(..)) => self.host(dir, proto.as_deref()),
                    _ => self.err("expected a primitive (host, net, port, a protocol, len, ...)"),
                },
            },
        }
    }

    /// The `ether` primitives: `host`/`src`/`dst` MAC, `broadcast`,
    /// `multicast`, `proto N`.
    fn ether(&mut self, dir: Dir, kind: Option<&str>) -> Result<Node, FilterError> {
        if self.link == Link::RawIp && kind != Some("proto") {
            return self.err(match kind {
                Some("broadcast") => "not a broadcast link (raw IP)",
                Some("multicast") => "link-layer multicast needs Ethernet frames (this is raw IP)",
                _ => "Ethernet addresses need Ethernet frames (this is raw IP)",
            });
        }
        match kind {
            Some("broadcast") if dir == Dir::Any => {
                self.at += 1;
                Ok(Node::Mac(Dir::Dst, [0xff; 6]))
            }
            Some("multicast") if dir == Dir::Any => {
                self.at += 1;
                Ok(Node::EtherMulticast)
            }
            Some("proto") if dir == Dir::Any => {
                self.at += 1;
                let n = match self.peek() {
                    Some(Tok::Num(n)) if *n > 1500 && *n <= 0xffff => *n as u16,
                    Some(Tok::Word(w)) => match w.as_str() {
                        "ip" => 0x0800,
                        "ip6" => 0x86dd,
                        "arp" => 0x0806,
                        "rarp" => 0x8035,
                        _ => return self.err(format!("unknown Ethernet protocol {w:?}")),
                    },
                    _ => {
                        return self.err(
                            "expected an Ethernet type above 1500 (LLC protocols are not supported yet)",
                        );
                    }
                };
                self.at += 1;
                Ok(Node::EtherType(n))
            }
            Some("host") => {
                self.at += 1;
                self.mac(dir)
            }
            _ if dir != Dir::Any => self.mac(dir),
            _ => self.err("expected host, src, dst, broadcast, multicast or proto after 'ether'"),
        }
    }

    fn mac(&mut self, dir: Dir) -> Result<Node, FilterError> {
        let parsed = match self.peek() {
            Some(Tok::Word(w)) => parse_mac(w),
            _ => None,
        };
        match parsed {
            Some(m) => {
                self.at += 1;
                Ok(Node::Mac(dir, m))
            }
            None => self.err("expected an Ethernet address (xx:xx:xx:xx:xx:xx)"),
        }
    }

    /// A port number or service name, and the one protocol a service name
    /// is registered for (`http` is TCP's only).
    fn port_number(&mut self) -> Result<(u16, Option<u8>), FilterError> {
        match self.peek() {
            Some(Tok::Num(n)) if *n <= 65535 => {
                let n = *n as u16;
                self.at += 1;
                Ok((n, None))
            }
            Some(Tok::Word(w)) => {
                // `1000-2000` lexes as a number only up to the '-'.
                if let Some((a, b)) = w.split_once('-')
                    && let (Ok(a), Ok(_)) = (a.parse::<u16>(), b.parse::<u16>())
                {
                    self.toks[self.at].1 = Tok::Word(format!("-{b}"));
                    return Ok((a, None));
                }
                match service_port(w) {
                    Some(p) => {
                        self.at += 1;
                        Ok(p)
                    }
                    None => self.err(format!("expected a port number after 'port', found {w:?}")),
                }
            }
            _ => self.err("expected a port number after 'port'"),
        }
    }

    fn host(&mut self, dir: Dir, proto: Option<&str>) -> Result<Node, FilterError> {
        match self.peek().cloned() {
            Some(Tok::Ip4(a, None)) if let Some(w) = ip4_places(proto) => {
                self.at += 1;
                Ok(Node::Host4(dir, vec![(a, u32::MAX)], w))
            }
            Some(Tok::Ip6(a, None)) if matches!(proto, None | Some("ip6")) => {
                self.at += 1;
                Ok(Node::Host6(dir, a, 128))
            }
            _ => self.err("expected an IPv4 or IPv6 address after 'host'"),
        }
    }

    fn net(&mut self, dir: Dir, proto: Option<&str>) -> Result<Node, FilterError> {
        match self.peek().cloned() {
            Some(Tok::Ip4(a, p)) if let Some(w) = ip4_places(proto) => {
                self.at += 1;
                let mask = if self.word() == Some("mask") {
                    self.at += 1;
                    match self.peek() {
                        Some(Tok::Ip4(m, None)) => {
                            let m = *m;
                            self.at += 1;
                            m
                        }
                        _ => return self.err("expected a netmask after 'mask'"),
                    }
                } else {
                    match p {
                        Some(0) => 0,
                        Some(p) => u32::MAX << (32 - p as u32),
                        None => u32::MAX,
                    }
                };
                if a & !mask != 0 {
                    return self.err("non-network bits set in the network address");
                }
                Ok(Node::Host4(dir, vec![(a, mask)], w))
            }
            Some(Tok::Ip6(a, p)) if matches!(proto, None | Some("ip6")) => {
                self.at += 1;
                Ok(Node::Host6(dir, a, p.unwrap_or(128)))
            }
            _ => self.err("expected a network after 'net'"),
        }
    }
}

/// Where `[proto] host/net` looks for an IPv4 address (`IN_*` bits).
fn ip4_places(proto: Option<&str>) -> Option<u8> {
    match proto {
        None => Some(IN_IP | IN_ARP | IN_RARP),
        Some("ip") => Some(IN_IP),
        Some("arp") => Some(IN_ARP),
        Some("rarp") => Some(IN_RARP),
        _ => None,
    }
}

fn parse_mac(w: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = w.split([':', '-', '.']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(&parts) {
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

fn proto_number(w: &str) -> Option<u8> {
    Some(match w {
        "icmp" => 1,
        "igmp" => 2,
        "tcp" => 6,
        "udp" => 17,
        "ipv6" => 41,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmp6" => 58,
        "pim" => 103,
        "sctp" => 132,
        _ => return None,
    })
}

/// Well-known service names, as Debian's /etc/services has them: the
/// port, and the one protocol when the name is registered for TCP or UDP
/// only (libpcap then filters that protocol alone).
fn service_port(w: &str) -> Option<(u16, Option<u8>)> {
    const TCP: Option<u8> = Some(6);
    const UDP: Option<u8> = Some(17);
    Some(match w {
        "ftp-data" => (20, TCP),
        "ftp" => (21, TCP),
        "ssh" => (22, TCP),
        "telnet" => (23, TCP),
        "smtp" => (25, TCP),
        "domain" => (53, None),
        "bootps" => (67, UDP),
        "bootpc" => (68, UDP),
        "tftp" => (69, UDP),
        "http" | "www" => (80, TCP),
        "kerberos" => (88, None),
        "pop3" => (110, TCP),
        "sunrpc" => (111, None),
        "nntp" => (119, TCP),
        "ntp" => (123, UDP),
        "netbios-ns" => (137, UDP),
        "netbios-dgm" => (138, UDP),
        "netbios-ssn" => (139, TCP),
        "imap" | "imap2" => (143, TCP),
        "snmp" => (161, None),
        "snmp-trap" => (162, None),
        "bgp" => (179, TCP),
        "ldap" => (389, None),
        "https" => (443, None),
        "microsoft-ds" => (445, TCP),
        "submission" => (587, TCP),
        "ldaps" => (636, None),
        "imaps" => (993, TCP),
        "pop3s" => (995, TCP),
        "mysql" => (3306, TCP),
        "ms-wbt-server" => (3389, TCP),
        "postgresql" => (5432, TCP),
        "http-alt" => (8080, TCP),
        _ => return None,
    })
}

fn protocol(p: &str) -> Node {
    let both = |n| Node::Or(Box::new(Node::Ip4Proto(n)), Box::new(Node::Ip6Proto(n)));
    match p {
        "ip" => Node::EtherType(0x0800),
        "ip6" => Node::EtherType(0x86dd),
        "arp" => Node::EtherType(0x0806),
        "rarp" => Node::EtherType(0x8035),
        "tcp" => both(6),
        "udp" => both(17),
        "sctp" => both(132),
        "icmp" => Node::Ip4Proto(1),
        "icmp6" => Node::Ip6Proto(58),
        // `ether` alone is every frame.
        _ => Node::Len(">=", 0),
    }
}

/// A jump target while the code is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    Accept,
    Reject,
    At(usize),
}

struct Gen {
    /// Instructions with symbolic jump targets: (insn, jt, jf).
    code: Vec<(Insn, Label, Label)>,
    labels: Vec<Option<usize>>,
    /// Bytes of encapsulation before the link header's type field ends
    /// (see [`Node::Shift`]): added to every packet offset.
    base: u32,
    link: Link,
}

impl Gen {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label::At(self.labels.len() - 1)
    }

    fn place(&mut self, l: Label) {
        if let Label::At(i) = l {
            self.labels[i] = Some(self.code.len());
        }
    }

    fn emit(&mut self, i: Insn) {
        self.code.push((i, Label::Reject, Label::Reject));
    }

    fn jump(&mut self, cond: u16, k: u32, t: Label, f: Label) {
        self.code
            .push((Insn::new(class::JMP | cond | src::K, 0, 0, k), t, f));
    }

    /// Where byte `k` of an Ethernet frame is on this link (code is
    /// written with Ethernet offsets: the network header at 14; on raw IP
    /// it is at 0), encapsulation included.
    fn at(&self, k: u32) -> u32 {
        let k = match self.link {
            Link::RawIp if k >= 14 => k - 14,
            _ => k,
        };
        k + self.base
    }

    fn ld(&mut self, sz: u16, k: u32) {
        let k = self.at(k);
        self.emit(Insn::new(class::LD | sz | mode::ABS, 0, 0, k));
    }

    /// The link header's type is `t`; on raw IP, the IP version says
    /// whether it is IPv4 or IPv6, and nothing else can be.
    fn ethertype(&mut self, t: u16, yes: Label, no: Label) {
        if self.link == Link::RawIp {
            let version = match t {
                0x0800 => 0x40,
                0x86dd => 0x60,
                _ => {
                    self.code
                        .push((Insn::new(class::JMP | op::JA, 0, 0, 0), no, no));
                    return;
                }
            };
            self.emit(Insn::new(class::LD | size::B | mode::ABS, 0, 0, self.base));
            self.emit(Insn::new(class::ALU | op::AND | src::K, 0, 0, 0xf0));
            self.jump(op::JEQ, version, yes, no);
            return;
        }
        self.ld(size::H, 12);
        self.jump(op::JEQ, t as u32, yes, no);
    }

    /// Code that goes to `t` when `n` holds, else to `f`.
    fn pred(&mut self, n: &Node, t: Label, f: Label) {
        match n {
            Node::And(a, b) => {
                let mid = self.label();
                self.pred(a, mid, f);
                self.place(mid);
                self.pred(b, t, f);
            }
            Node::Or(a, b) => {
                let mid = self.label();
                self.pred(a, t, mid);
                self.place(mid);
                self.pred(b, t, f);
            }
            Node::Not(a) => self.pred(a, f, t),
            Node::EtherType(ty) => self.ethertype(*ty, t, f),
            Node::Ip4Proto(p) => {
                let l = self.label();
                self.ethertype(0x0800, l, f);
                self.place(l);
                self.ld(size::B, 23);
                self.jump(op::JEQ, *p as u32, t, f);
            }
            Node::Ip6Proto(p) => {
                // The next header, or the one after a fragment header.
                let l = self.label();
                let frag = self.label();
                let after = self.label();
                self.ethertype(0x86dd, l, f);
                self.place(l);
                self.ld(size::B, 20);
                self.jump(op::JEQ, *p as u32, t, frag);
                self.place(frag);
                self.jump(op::JEQ, 44, after, f);
                self.place(after);
                self.ld(size::B, 54);
                self.jump(op::JEQ, *p as u32, t, f);
            }
            Node::Host4(dir, addrs, places) => {
                // IPv4's source and destination, then ARP/RARP's sender
                // and target protocol addresses.
                let mut branches: Vec<(Vec<u16>, u32, u32)> = Vec::new();
                if places & IN_IP != 0 {
                    branches.push((vec![0x0800], 26, 30));
                }
                let arps: Vec<u16> = [(IN_ARP, 0x0806), (IN_RARP, 0x8035)]
                    .iter()
                    .filter(|(b, _)| places & b != 0)
                    .map(|(_, ty)| *ty)
                    .collect();
                if !arps.is_empty() {
                    branches.push((arps, 28, 38));
                }
                for (bi, (types, srco, dsto)) in branches.iter().enumerate() {
                    let next = if bi + 1 == branches.len() {
                        f
                    } else {
                        self.label()
                    };
                    let body = self.label();
                    for (ti, ty) in types.iter().enumerate() {
                        let other = if ti + 1 == types.len() {
                            next
                        } else {
                            self.label()
                        };
                        self.ethertype(*ty, body, other);
                        self.place(other);
                    }
                    self.place(body);
                    self.either(*dir, *srco, *dsto, t, next, &mut |g, off, yes, no| {
                        for (i, &(a, mask)) in addrs.iter().enumerate() {
                            let other = if i + 1 == addrs.len() { no } else { g.label() };
                            if mask == 0 {
                                // Every address is in 0.0.0.0/0: nothing to
                                // load (libpcap's optimized code loads
                                // nothing either).
                                g.code
                                    .push((Insn::new(class::JMP | op::JA, 0, 0, 0), yes, yes));
                            } else {
                                g.ld(size::W, off);
                                if mask != u32::MAX {
                                    g.emit(Insn::new(class::ALU | op::AND | src::K, 0, 0, mask));
                                }
                                g.jump(op::JEQ, a, yes, other);
                            }
                            g.place(other);
                        }
                    });
                    self.place(next);
                }
            }
            Node::Host6(dir, a, prefix) => {
                let l = self.label();
                self.ethertype(0x86dd, l, f);
                self.place(l);
                let (a, prefix) = (*a, *prefix as usize);
                self.either(*dir, 22, 38, t, f, &mut |g, off, yes, no| {
                    // Compare word by word; a prefix masks the last one.
                    let words = prefix.div_ceil(32);
                    for w in 0..words {
                        let bits = (prefix - w * 32).min(32);
                        let mask = if bits == 32 {
                            u32::MAX
                        } else {
                            u32::MAX << (32 - bits)
                        };
                        let want = u32::from_be_bytes([
                            a[w * 4],
                            a[w * 4 + 1],
                            a[w * 4 + 2],
                            a[w * 4 + 3],
                        ]) & mask;
                        g.ld(size::W, off + 4 * w as u32);
                        if mask != u32::MAX {
                            g.emit(Insn::new(class::ALU | op::AND | src::K, 0, 0, mask));
                        }
                        if w + 1 == words {
                            g.jump(op::JEQ, want, yes, no);
                        } else {
                            let cont = g.label();
                            g.jump(op::JEQ, want, cont, no);
                            g.place(cont);
                        }
                    }
                    if words == 0 {
                        g.code
                            .push((Insn::new(class::JMP | op::JA, 0, 0, 0), yes, yes));
                    }
                });
            }
            Node::Port(dir, protos, ranges) => {
                let v4 = self.label();
                let v6 = self.label();
                let not6 = self.label();
                self.ethertype(0x86dd, v6, not6);
                // IPv6: the next header, the ports right after the fixed header.
                self.place(v6);
                self.proto_in(20, protos, t, f, |g, t, f| {
                    g.ports(*dir, 54, false, ranges, t, f)
                });
                self.place(not6);
                self.ethertype(0x0800, v4, f);
                self.place(v4);
                self.proto_in(23, protos, t, f, |g, t, f| {
                    // Not a later fragment.
                    let whole = g.label();
                    g.ld(size::H, 20);
                    g.jump(op::JSET, 0x1fff, f, whole);
                    g.place(whole);
                    g.emit(Insn::new(class::LDX | mode::MSH | size::B, 0, 0, g.at(14)));
                    g.ports(*dir, 14, true, ranges, t, f)
                });
            }
            Node::Mac(dir, m) => {
                let tail = u32::from_be_bytes([m[2], m[3], m[4], m[5]]);
                let head = u16::from_be_bytes([m[0], m[1]]) as u32;
                self.either(*dir, 6, 0, t, f, &mut |g, off, yes, no| {
                    let second = g.label();
                    g.ld(size::W, off + 2);
                    g.jump(op::JEQ, tail, second, no);
                    g.place(second);
                    g.ld(size::H, off);
                    g.jump(op::JEQ, head, yes, no);
                });
            }
            Node::Rel(op, a, b) => {
                // The protocols the loads read must be there.
                let mut protos = Vec::new();
                a.protos(&mut protos);
                b.protos(&mut protos);
                for p in protos {
                    let ok = self.label();
                    self.proto_check(p, ok, f);
                    self.place(ok);
                }
                let mut scratch = 0;
                self.eval(a, &mut scratch);
                let c = b.konst();
                if c.is_none() {
                    self.emit(Insn::new(class::ST, 0, 0, scratch));
                    let mut s2 = scratch + 1;
                    self.eval(b, &mut s2);
                    self.emit(Insn::new(class::MISC | crate::misc::TAX, 0, 0, 0));
                    self.emit(Insn::new(class::LD | mode::MEM, 0, 0, scratch));
                }
                let (code, k) = match c {
                    Some(k) => (src::K, k),
                    None => (src::X, 0),
                };
                let (cond, swap) = match *op {
                    "=" => (op::JEQ, false),
                    "!=" => (op::JEQ, true),
                    ">" => (op::JGT, false),
                    "<=" => (op::JGT, true),
                    ">=" => (op::JGE, false),
                    _ => (op::JGE, true),
                };
                let (tt, ff) = if swap { (f, t) } else { (t, f) };
                self.code
                    .push((Insn::new(class::JMP | cond | code, 0, 0, k), tt, ff));
            }
            Node::Shift(off, n) => {
                let saved = self.base;
                self.base = *off;
                self.pred(n, t, f);
                self.base = saved;
            }
            Node::Vlan(id) => {
                self.ld(size::H, 12);
                let tagged = self.label();
                let ad = self.label();
                let qinq = self.label();
                self.jump(op::JEQ, 0x8100, tagged, ad);
                self.place(ad);
                self.jump(op::JEQ, 0x88a8, tagged, qinq);
                self.place(qinq);
                self.jump(op::JEQ, 0x9100, tagged, f);
                self.place(tagged);
                match id {
                    Some(v) => {
                        self.ld(size::H, 14);
                        self.emit(Insn::new(class::ALU | op::AND | src::K, 0, 0, 0xfff));
                        self.jump(op::JEQ, *v as u32, t, f);
                    }
                    None => self
                        .code
                        .push((Insn::new(class::JMP | op::JA, 0, 0, 0), t, t)),
                }
            }
            Node::VlanMeta(id) => {
                let tagged = self.label();
                self.emit(Insn::new(
                    class::LD | size::B | mode::ABS,
                    0,
                    0,
                    crate::skf::AD_OFF + 48,
                ));
                self.jump(op::JEQ, 1, tagged, f);
                self.place(tagged);
                match id {
                    Some(v) => {
                        self.emit(Insn::new(
                            class::LD | size::H | mode::ABS,
                            0,
                            0,
                            crate::skf::AD_OFF + 44,
                        ));
                        self.emit(Insn::new(class::ALU | op::AND | src::K, 0, 0, 0xfff));
                        self.jump(op::JEQ, *v as u32, t, f);
                    }
                    None => self
                        .code
                        .push((Insn::new(class::JMP | op::JA, 0, 0, 0), t, t)),
                }
            }
            Node::Mpls(label) => {
                let l = self.label();
                self.ethertype(0x8847, l, f);
                self.place(l);
                match label {
                    Some(v) => {
                        self.ld(size::W, 14);
                        self.emit(Insn::new(class::ALU | op::AND | src::K, 0, 0, 0xffff_f000));
                        self.jump(op::JEQ, v << 12, t, f);
                    }
                    None => self
                        .code
                        .push((Insn::new(class::JMP | op::JA, 0, 0, 0), t, t)),
                }
            }
            Node::EtherMulticast => {
                self.ld(size::B, 0);
                self.jump(op::JSET, 1, t, f);
            }
            Node::Len(cmp, n) => {
                self.emit(Insn::new(class::LD | size::W | mode::LEN, 0, 0, 0));
                match *cmp {
                    ">=" => self.jump(op::JGE, *n, t, f),
                    ">" => self.jump(op::JGT, *n, t, f),
                    "<=" => self.jump(op::JGT, *n, f, t),
                    "<" => self.jump(op::JGE, *n, f, t),
                    "!=" => self.jump(op::JEQ, *n, f, t),
                    _ => self.jump(op::JEQ, *n, t, f),
                }
            }
        }
    }

    /// The frame carries `proto` (for `proto[...]` loads): IPv4 or IPv6,
    /// or IPv4 with this transport protocol and no fragment offset.
    fn proto_check(&mut self, proto: &str, t: Label, f: Label) {
        let transport = match proto {
            "ether" => {
                self.code
                    .push((Insn::new(class::JMP | op::JA, 0, 0, 0), t, t));
                return;
            }
            "ip" => return self.ethertype(0x0800, t, f),
            "ip6" => return self.ethertype(0x86dd, t, f),
            "tcp" => 6,
            "udp" => 17,
            "icmp" => 1,
            _ => 132,
        };
        let v4 = self.label();
        let p = self.label();
        self.ethertype(0x0800, v4, f);
        self.place(v4);
        self.ld(size::B, 23);
        self.jump(op::JEQ, transport, p, f);
        self.place(p);
        self.ld(size::H, 20);
        self.jump(op::JSET, 0x1fff, f, t);
    }

    /// Code leaving `a`'s value in A (scratch memory from `*m` on).
    fn eval(&mut self, a: &Arith, m: &mut u32) {
        match a {
            Arith::Num(n) => self.emit(Insn::new(class::LD | mode::IMM, 0, 0, *n)),
            Arith::Len => self.emit(Insn::new(class::LD | size::W | mode::LEN, 0, 0, 0)),
            Arith::Neg(x) => {
                self.eval(x, m);
                self.emit(Insn::new(class::ALU | op::NEG, 0, 0, 0));
            }
            Arith::Bin(o, l, r) => {
                let code = match *o {
                    "+" => op::ADD,
                    "-" => op::SUB,
                    "*" => op::MUL,
                    "/" => op::DIV,
                    "%" => op::MOD,
                    "&" => op::AND,
                    "|" => op::OR,
                    "^" => op::XOR,
                    "<<" => op::LSH,
                    _ => op::RSH,
                };
                self.eval(l, m);
                match r.konst() {
                    // A constant divisor of 0 or a shift past 31 the kernel
                    // refuses: computed at run time instead, as libpcap's.
                    Some(k)
                        if !(matches!(code, op::DIV | op::MOD) && k == 0
                            || matches!(code, op::LSH | op::RSH) && k > 31) =>
                    {
                        self.emit(Insn::new(class::ALU | code | src::K, 0, 0, k));
                    }
                    _ => {
                        let at = (*m).min(15);
                        self.emit(Insn::new(class::ST, 0, 0, at));
                        *m += 1;
                        self.eval(r, m);
                        *m -= 1;
                        self.emit(Insn::new(class::MISC | crate::misc::TAX, 0, 0, 0));
                        self.emit(Insn::new(class::LD | mode::MEM, 0, 0, at));
                        self.emit(Insn::new(class::ALU | code | src::X, 0, 0, 0));
                    }
                }
            }
            Arith::Load(proto, idx, sz) => {
                let szc = match sz {
                    4 => size::W,
                    2 => size::H,
                    _ => size::B,
                };
                let transport = matches!(*proto, "tcp" | "udp" | "icmp" | "sctp");
                let off = self.at(if *proto == "ether" { 0 } else { 14 });
                match (idx.konst(), transport) {
                    (Some(c), false) => {
                        self.emit(Insn::new(class::LD | szc | mode::ABS, 0, 0, off + c))
                    }
                    (Some(c), true) => {
                        self.emit(Insn::new(
                            class::LDX | mode::MSH | size::B,
                            0,
                            0,
                            self.at(14),
                        ));
                        self.emit(Insn::new(class::LD | szc | mode::IND, 0, 0, off + c));
                    }
                    (None, _) => {
                        self.eval(idx, m);
                        if transport {
                            self.emit(Insn::new(
                                class::LDX | mode::MSH | size::B,
                                0,
                                0,
                                self.at(14),
                            ));
                            self.emit(Insn::new(class::ALU | op::ADD | src::X, 0, 0, 0));
                        }
                        self.emit(Insn::new(class::MISC | crate::misc::TAX, 0, 0, 0));
                        self.emit(Insn::new(class::LD | szc | mode::IND, 0, 0, off));
                    }
                }
            }
        }
    }

    /// `body(off, yes, no)` for the source field at `src`, the destination
    /// field at `dst`, or both as `dir` says: either one holds (`Any`),
    /// both do (`Both`).
    #[allow(clippy::too_many_arguments)]
    fn either(
        &mut self,
        dir: Dir,
        src: u32,
        dst: u32,
        t: Label,
        f: Label,
        body: &mut dyn FnMut(&mut Gen, u32, Label, Label),
    ) {
        match dir {
            Dir::Src => body(self, src, t, f),
            Dir::Dst => body(self, dst, t, f),
            Dir::Any => {
                let next = self.label();
                body(self, src, t, next);
                self.place(next);
                body(self, dst, t, f);
            }
            Dir::Both => {
                let mid = self.label();
                body(self, src, mid, f);
                self.place(mid);
                body(self, dst, t, f);
            }
        }
    }

    /// The protocol byte at `off` is one of `protos`, then `then`.
    fn proto_in(
        &mut self,
        off: u32,
        protos: &[u8],
        t: Label,
        f: Label,
        then: impl FnOnce(&mut Gen, Label, Label),
    ) {
        let body = self.label();
        self.ld(size::B, off);
        for (i, p) in protos.iter().enumerate() {
            let next = if i + 1 == protos.len() {
                f
            } else {
                self.label()
            };
            self.jump(op::JEQ, *p as u32, body, next);
            self.place(next);
        }
        self.place(body);
        then(self, t, f);
    }

    /// The source/destination port at `base` (+X when `ind`) in one of
    /// `ranges`.
    fn ports(&mut self, dir: Dir, base: u32, ind: bool, ranges: &[(u16, u16)], t: Label, f: Label) {
        let m = if ind { mode::IND } else { mode::ABS };
        self.either(dir, base, base + 2, t, f, &mut |g, off, yes, no| {
            g.emit(Insn::new(class::LD | size::H | m, 0, 0, g.at(off)));
            for (j, &(lo, hi)) in ranges.iter().enumerate() {
                let other = if j + 1 == ranges.len() { no } else { g.label() };
                if lo == hi {
                    g.jump(op::JEQ, lo as u32, yes, other);
                } else {
                    let in_lo = g.label();
                    g.jump(op::JGE, lo as u32, in_lo, other);
                    g.place(in_lo);
                    g.jump(op::JGT, hi as u32, other, yes);
                }
                g.place(other);
            }
        });
    }

    fn finish(mut self) -> Result<Vec<Insn>, FilterError> {
        let accept = self.code.len();
        self.code.push((
            Insn::new(class::RET | rval::K, 0, 0, SNAPLEN),
            Label::Reject,
            Label::Reject,
        ));
        let reject = self.code.len();
        self.code.push((
            Insn::new(class::RET | rval::K, 0, 0, 0),
            Label::Reject,
            Label::Reject,
        ));
        let at = |l: Label| match l {
            Label::Accept => accept,
            Label::Reject => reject,
            Label::At(i) => self.labels[i].expect("every label is placed"),
        };
        let mut out = Vec::with_capacity(self.code.len());
        for (pc, (mut i, t, f)) in self.code.iter().copied().enumerate() {
            if i.class() == class::JMP {
                let (tt, ff) = (at(t), at(f));
                if i.code & 0xf0 == op::JA {
                    i.k = tt.saturating_sub(pc + 1) as u32;
                } else {
                    let rel = |x: usize| x.checked_sub(pc + 1).and_then(|r| u8::try_from(r).ok());
                    match (rel(tt), rel(ff)) {
                        (Some(a), Some(b)) => {
                            i.jt = a;
                            i.jf = b;
                        }
                        _ => {
                            return Err(FilterError {
                                col: 1,
                                msg: "the expression is too large for classic jumps (256 instructions)".into(),
                            });
                        }
                    }
                }
            }
            out.push(i);
        }
        Ok(out)
    }
}

/// `port A or port B` (same direction and protocols) as one test of
/// both, so that each port field is loaded once and a port that is in the
/// packet matches even when the other field is cut off, as in libpcap's
/// optimized code; `host A or host B` (and `net`) alike.
fn merge_alternatives(n: Node) -> Node {
    match n {
        Node::Or(a, b) => match (merge_alternatives(*a), merge_alternatives(*b)) {
            (Node::Port(d1, p1, mut r1), Node::Port(d2, p2, r2)) if d1 == d2 && p1 == p2 => {
                r1.extend(r2);
                Node::Port(d1, p1, r1)
            }
            (Node::Host4(d1, mut a1, w1), Node::Host4(d2, a2, w2)) if d1 == d2 && w1 == w2 => {
                a1.extend(a2);
                Node::Host4(d1, a1, w1)
            }
            (a, b) => Node::Or(Box::new(a), Box::new(b)),
        },
        Node::And(a, b) => Node::And(
            Box::new(merge_alternatives(*a)),
            Box::new(merge_alternatives(*b)),
        ),
        Node::Not(a) => Node::Not(Box::new(merge_alternatives(*a))),
        Node::Shift(k, a) => Node::Shift(k, Box::new(merge_alternatives(*a))),
        n => n,
    }
}

/// The link layer the frames a filter reads start with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Link {
    /// Ethernet (`DLT_EN10MB`, pcap link type 1).
    #[default]
    Ethernet,
    /// An IPv4 or IPv6 header, no link header (`DLT_RAW`: pcap link type
    /// 101, also 12 and 14).
    RawIp,
}

impl Link {
    /// The link of a pcap file's link type, if it is one of these.
    pub fn from_linktype(t: u32) -> Option<Link> {
        match t {
            1 => Some(Link::Ethernet),
            12 | 14 | 101 => Some(Link::RawIp),
            _ => None,
        }
    }
}

/// How an expression is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub link: Link,
    /// Run the optimizer (tcpdump's `-O` turns it off).
    pub optimize: bool,
    /// The frames are what a Linux socket filter sees: the receive path
    /// takes the outer 802.1Q/802.1ad tag off the frame into the skb, so
    /// the first `vlan` reads it there (`ld vlanp`, `ld vlan_tci`) and
    /// the rest of the expression reads on at the same offsets, as
    /// libpcap compiles for a live capture on Linux.
    pub kernel_vlan: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            link: Link::Ethernet,
            optimize: true,
            kernel_vlan: false,
        }
    }
}

/// Compiles a filter expression (for Ethernet frames) to classic BPF: a
/// kept packet returns [`SNAPLEN`], a dropped one 0. An empty expression
/// keeps every packet.
pub fn compile(expr: &str) -> Result<Vec<Insn>, FilterError> {
    compile_with(expr, &Options::default())
}

/// [`compile`] for a link type, optimized or not, for the kernel's view
/// of VLAN frames or not.
pub fn compile_with(expr: &str, opts: &Options) -> Result<Vec<Insn>, FilterError> {
    let toks = lex(expr)?;
    if toks.is_empty() {
        return Ok(vec![Insn::new(class::RET | rval::K, 0, 0, SNAPLEN)]);
    }
    let mut p = Parser {
        toks,
        at: 0,
        end: expr.len() + 1,
        depth: 0,
        primitives: 0,
        l2: 0,
        in_mpls: false,
        link: opts.link,
        kernel_vlan: opts.kernel_vlan,
    };
    let node = merge_alternatives(p.expr()?);
    if p.at < p.toks.len() {
        return p.err("unexpected words after the expression");
    }
    let mut g = Gen {
        code: Vec::new(),
        labels: Vec::new(),
        base: 0,
        link: opts.link,
    };
    g.pred(&node, Label::Accept, Label::Reject);
    let code = g.finish()?;
    Ok(if opts.optimize {
        crate::optimize(&code)
    } else {
        code
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_column() {
        assert_eq!(
            compile("tcp port").unwrap_err().to_string(),
            "syntax error at 1:9: expected a port number after 'port'"
        );
        assert_eq!(compile("host 10.0.0.1 or").unwrap_err().col, 17);
        assert_eq!(compile("(tcp").unwrap_err().msg, "expected ')'");
        assert!(
            compile("icmp port 80")
                .unwrap_err()
                .msg
                .contains("not icmp")
        );
        assert!(
            compile("tcp $")
                .unwrap_err()
                .to_string()
                .starts_with("syntax error at 1:5")
        );
        assert!(
            compile("net 10.0.0.1/8")
                .unwrap_err()
                .msg
                .contains("non-network bits")
        );
    }

    #[test]
    fn arithmetic_relations_compute_as_written() {
        let frame = |b8: u8| {
            let mut f = vec![0u8; 60];
            f[12] = 0x08;
            f[22] = b8;
            f
        };
        let m = crate::Meta::default();
        let p = compile("-ip[8] + 300 > 200").unwrap();
        assert_ne!(crate::run(&p, &frame(50), &m), 0);
        assert_eq!(crate::run(&p, &frame(150), &m), 0);
        let p =
            compile("ip[8] * 2 - (ip[8] << 1) = 0 and ip[8] / 4 = 3 and ip[8] % 4 = 1").unwrap();
        assert_ne!(crate::run(&p, &frame(13), &m), 0);
        assert_eq!(crate::run(&p, &frame(14), &m), 0);
        assert_eq!(
            compile("ip[1:3] = 1").unwrap_err().msg,
            "data size must be 1, 2, or 4"
        );
        assert!(
            compile("tcp[13 = 2")
                .unwrap_err()
                .msg
                .contains("expected ']'")
        );
    }

    #[test]
    fn output_passes_the_kernel_rules() {
        for e in [
            "tcp port 80",
            "not (udp or icmp) and host 10.1.2.3",
            "ip6 net 2001:db8::/35",
            "",
        ] {
            crate::validate(&compile(e).unwrap()).unwrap_or_else(|x| panic!("{e}: {x}"));
        }
    }
}
