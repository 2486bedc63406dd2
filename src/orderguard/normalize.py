"""Identifier normalisers: phones, IPs, receiver keys, device/payment tokens, addresses.

Every function takes a whole column (pl.Series) and returns one output row per input row,
in input order; nothing here raises on odd text. All work is Polars expressions, except
the rare IPv6 values in special networks or with an IPv4 tail, which the stdlib
`ipaddress` reads once per distinct value.
Addresses live in `orderguard.address` and are re-exported here.
"""

from __future__ import annotations

import ipaddress

import polars as pl

from orderguard.address import (
    ADDRESS_COLUMNS,
    address_keys_for_distinct,
    join_address_keys,
    normalize_addresses,
    text_key,
)

__all__ = [
    "ADDRESS_COLUMNS",
    "IP_COLUMNS",
    "PHONE_COLUMNS",
    "PLACEHOLDER_TOKENS",
    "VIRTUAL_OPERATOR_PREFIXES",
    "address_keys_for_distinct",
    "join_address_keys",
    "normalize_addresses",
    "normalize_ips",
    "normalize_phones",
    "normalize_token",
    "receiver_key",
    "text_key",
]

PHONE_COLUMNS = (
    "phone_norm",
    "phone_masked_key",
    "phone_prefix7",
    "is_virtual_operator",
    "phone_valid",
)
IP_COLUMNS = ("ip_norm", "ip_version", "ip_network", "ip_valid", "ip_is_private")

# Mobile virtual network operators (虚拟运营商) number ranges: a feature, not a verdict.
VIRTUAL_OPERATOR_PREFIXES = ("170", "171", "162", "165", "167")

# Device ids and payment accounts that mean "no value". Strings made only of zeros and
# dashes (000000, the all-zero IDFA 00000000-0000-...) count too.
PLACEHOLDER_TOKENS = ("", *"null none nil nan n/a na unknown undefined - -- 0 000000".split())


def _frame(s: pl.Series) -> pl.DataFrame:
    return s.cast(pl.Utf8).alias("v").to_frame()


def normalize_phones(s: pl.Series) -> pl.DataFrame:
    """grain: one row per element of `s`, in order; columns PHONE_COLUMNS.

    phone_norm: 11-digit CN mobile (1[3-9]xxxxxxxxx) after dropping +86/0086/86, spaces,
      dashes, parentheses and full-width forms; null otherwise (landlines, masked, junk).
    phone_masked_key: '138****5678' for masked numbers (3 digits, 3-5 of * x X, 4 digits)
      and derived from full numbers too, so a full and a masked number of one person share
      this weaker key.
    phone_prefix7: first 7 digits of phone_norm (the number range); null when not full.
    is_virtual_operator: 170/171/162/165/167 range (from the masked key's first 3 digits
      when only a masked number is known); null when there is no number.
    phone_valid: phone_norm is not null (False for masked, junk and missing values).
    """
    raw = pl.col("v").str.normalize("NFKC")
    digits = raw.str.replace_all(r"[^0-9*xX]", "").str.to_lowercase()
    full = digits.str.extract(r"^(?:0086|86)?(1[3-9]\d{9})$", 1)
    masked = digits.str.extract_groups(r"^(?:0086|86)?(1\d{2})[*x]{3,5}(\d{4})$")
    masked_key = pl.coalesce(
        full.str.slice(0, 3) + "****" + full.str.slice(7, 4),
        masked.struct.field("1") + "****" + masked.struct.field("2"),
    )
    out = _frame(s).select(phone_norm=full, phone_masked_key=masked_key)
    return out.select(
        "phone_norm",
        "phone_masked_key",
        phone_prefix7=pl.col("phone_norm").str.slice(0, 7),
        is_virtual_operator=pl.col("phone_masked_key").str.slice(0, 3).is_in(list(VIRTUAL_OPERATOR_PREFIXES)),
        phone_valid=pl.col("phone_norm").is_not_null(),
    )


# IPv4 ranges that are not globally routable (RFC 6890 special purpose, CGNAT 100.64/10,
# multicast and reserved 224/3), as (first, last) integers.
_V4_NON_GLOBAL = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8 10.0.0.0/8 100.64.0.0/10 127.0.0.0/8 169.254.0.0/16 172.16.0.0/12 "
        "192.0.0.0/24 192.0.2.0/24 192.168.0.0/16 198.18.0.0/15 198.51.100.0/24 "
        "203.0.113.0/24 224.0.0.0/3"
    ).split()
]


def _v6_row(value: str) -> tuple[str | None, str | None, bool | None, int | None]:
    """(ip_norm, ip_network, ip_is_private, mapped_v4_int) for one distinct non-v4 value."""
    text = value.strip().strip("[]")
    if "%" in text:  # zone index (fe80::1%eth0)
        text = text.split("%", 1)[0]
    try:
        ip = ipaddress.IPv6Address(text)
    except ValueError:
        return None, None, None, None
    if ip.ipv4_mapped is not None:
        return None, None, None, int(ip.ipv4_mapped)
    net = ipaddress.IPv6Network((int(ip) >> 80 << 80, 48))
    return ip.compressed, str(net), not ip.is_global or ip.is_multicast, None


# Every IPv6 network the stdlib may call non-global (private, reserved, link- and
# site-local, multicast, and the exceptions newer Pythons carve out of those): an address
# outside all of them is global under any Python, so only addresses inside go to
# `ipaddress` one by one. Real order traffic is 2000::/3 global unicast and stays vectorised.
_V6_SPECIAL = sorted({
    net
    for group in ("_private_networks", "_private_networks_exceptions", "_reserved_networks")
    for net in getattr(ipaddress._IPv6Constants, group, [])
} | {ipaddress._IPv6Constants._multicast_network, ipaddress._IPv6Constants._linklocal_network,
     ipaddress._IPv6Constants._sitelocal_network})
_HEXTET = "[0-9A-Fa-f]{1,4}"
# the plain and the '::' spellings ipaddress accepts (embedded IPv4 tails and anything
# odd are left to it)
_V6_FULL = rf"^(?:{_HEXTET}:){{7}}{_HEXTET}$"
_V6_ELIDED = rf"^(?:(?:{_HEXTET}:)*{_HEXTET})?::(?:(?:{_HEXTET}:)*{_HEXTET})?$"


def _compressed(frame: pl.DataFrame, hextets: str, out: str) -> pl.DataFrame:
    """Adds `out`, the RFC 5952 text of the list column `hextets` (8 hextets without leading
    zeros) as ipaddress.compressed writes it: the first longest run of two or more '0'
    becomes '::'. Built a column at a time: nested expressions were recomputed per use."""
    runs = [f"_run{i}" for i in range(8)]  # zero hextets from i onwards without a break
    frame = frame.with_columns(_run8=pl.lit(0))
    for i in reversed(range(8)):
        frame = frame.with_columns(
            pl.when(pl.col(hextets).list.get(i) == "0").then(pl.col(f"_run{i + 1}") + 1)
            .otherwise(0).alias(runs[i]))
    frame = frame.with_columns(_longest=pl.max_horizontal(runs)).with_columns(
        _start=pl.coalesce([pl.when(pl.col(r) == pl.col("_longest")).then(pl.lit(i))
                            for i, r in enumerate(runs)]))
    h, start, longest = pl.col(hextets), pl.col("_start"), pl.col("_longest")
    elided = (h.list.slice(0, start).list.join(":") + "::"
              + h.list.slice(start + longest, 8).list.join(":"))
    return frame.with_columns(
        pl.when(longest >= 2).then(elided).otherwise(h.list.join(":")).alias(out)
    ).drop([*runs, "_run8", "_longest", "_start"])


def _v6_frame(values: pl.Series) -> pl.DataFrame:
    """grain: one row per distinct non-v4 value: t, _v6 (ip_norm), _v6net (the /48),
    _v6priv, _mapped (an IPv4-mapped address as an integer). Plain and '::' spellings are
    read by Polars expressions; embedded IPv4, special networks and anything unusual go
    through _v6_row, so every value gets what ipaddress says."""
    schema = {"t": pl.Utf8, "_v6": pl.Utf8, "_v6net": pl.Utf8, "_v6priv": pl.Boolean,
              "_mapped": pl.Int64}
    frame = values.alias("t").to_frame().with_columns(
        s=pl.col("t").str.strip_chars().str.strip_chars("[]").str.replace(r"%.*$", ""))
    plain = pl.col("s").str.contains(_V6_FULL)
    elided = pl.col("s").str.contains(_V6_ELIDED) & (pl.col("s").str.count_matches(_HEXTET) <= 7)
    halves = pl.col("s").str.split("::")
    head = halves.list.first().str.split(":").list.eval(pl.element().filter(pl.element() != ""))
    tail = pl.when(halves.list.len() > 1).then(
        halves.list.last().str.split(":").list.eval(pl.element().filter(pl.element() != "")))
    tail = tail.fill_null(pl.lit([], dtype=pl.List(pl.Utf8)))
    padding = pl.lit("0").repeat_by(8 - head.list.len() - tail.list.len())
    hextets = pl.concat_list([head, padding, tail]).list.eval(
        pl.element().str.to_lowercase().str.strip_chars_start("0").replace("", "0"))
    fast = frame.filter(plain | elided).with_columns(h=hextets).with_columns(
        [pl.col("h").list.get(i).str.to_integer(base=16).cast(pl.UInt64).alias(f"_n{i}")
         for i in range(8)])
    fast = fast.with_columns(  # the address as two 64-bit halves
        _high=pl.sum_horizontal([pl.col(f"_n{i}") * (1 << 16 * (3 - i)) for i in range(4)]),
        _low=pl.sum_horizontal([pl.col(f"_n{4 + i}") * (1 << 16 * (3 - i)) for i in range(4)]))
    fast = fast.filter(~pl.any_horizontal(
        [_in_network(pl.col("_high"), pl.col("_low"), net) for net in _V6_SPECIAL]))
    fast = fast.with_columns(_net=pl.concat_list([pl.col("h").list.slice(0, 3), pl.lit(["0"] * 5)]))
    fast = _compressed(_compressed(fast, "h", "_v6"), "_net", "_v6net").select(
        "t", "_v6", pl.col("_v6net") + "/48", _v6priv=pl.lit(False), _mapped=pl.lit(None, pl.Int64))
    rest = frame.join(fast, on="t", how="anti")["t"].to_list()
    slow = pl.DataFrame([(v, *_v6_row(v)) for v in rest], schema=schema, orient="row")
    return pl.concat([fast, slow])


def _in_network(high: pl.Expr, low: pl.Expr, net: ipaddress.IPv6Network) -> pl.Expr:
    """The address (its two 64-bit halves) lies in `net`."""
    first = int(net.network_address)
    net_high, net_low = first >> 64, first & (2**64 - 1)
    if net.prefixlen == 0:
        return pl.lit(True)
    if net.prefixlen <= 64:
        step = 1 << (64 - net.prefixlen)
        return high // step == net_high // step
    step = 1 << (128 - net.prefixlen)
    return (high == net_high) & (low // step == net_low // step)


def normalize_ips(s: pl.Series) -> pl.DataFrame:
    """grain: one row per element of `s`, in order; columns IP_COLUMNS.

    IPv4 is read by a vectorised regex (dotted quad, optional :port, leading zeros read
    as decimal); ip_network is its /24 ('1.2.3.0/24'). Other values are read once per
    distinct value as IPv6, exactly as `ipaddress.IPv6Address` reads them (brackets and
    zone index dropped; _v6_frame); ip_norm is the compressed form, ip_network the /48.
    IPv4-mapped IPv6 (::ffff:1.2.3.4) becomes the IPv4 address.
    ip_is_private: not globally routable (private, loopback, link-local, CGNAT 100.64/10,
    documentation, reserved, multicast). Invalid or missing: ip_valid False, others null.
    """
    frame = _frame(s).with_columns(t=pl.col("v").str.normalize("NFKC").str.strip_chars())
    q = pl.col("t").str.extract_groups(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?::\d{1,5})?$")
    octets = [q.struct.field(str(i)).cast(pl.Int64, strict=False) for i in range(1, 5)]
    ok = pl.all_horizontal([o.is_between(0, 255) for o in octets])
    v4_int = pl.when(ok).then(octets[0] * 16777216 + octets[1] * 65536 + octets[2] * 256 + octets[3])
    frame = frame.with_columns(_v4=v4_int)

    # non-v4 values containing ':', once per distinct value
    others = frame.filter(pl.col("_v4").is_null() & pl.col("t").str.contains(":"))["t"].unique()
    v6 = _v6_frame(others)
    frame = frame.join(v6, on="t", how="left", maintain_order="left")
    frame = frame.with_columns(_v4=pl.coalesce("_v4", "_mapped"))

    n = pl.col("_v4")
    a, b, c, d = (n // 16777216, n // 65536 % 256, n // 256 % 256, n % 256)
    v4_text = pl.concat_str([a, b, c, d], separator=".")
    v4_net = pl.concat_str([a, b, c], separator=".") + ".0/24"
    v4_private = pl.any_horizontal(
        [n.is_between(int(net.network_address), int(net.broadcast_address)) for net in _V4_NON_GLOBAL]
    )
    is_v4 = n.is_not_null()
    return frame.select(
        ip_norm=pl.when(is_v4).then(v4_text).otherwise(pl.col("_v6")),
        ip_version=pl.when(is_v4)
        .then(pl.lit(4, pl.Int8))
        .when(pl.col("_v6").is_not_null())
        .then(pl.lit(6, pl.Int8)),
        ip_network=pl.when(is_v4).then(v4_net).otherwise(pl.col("_v6net")),
        ip_valid=is_v4 | pl.col("_v6").is_not_null(),
        ip_is_private=pl.when(is_v4).then(v4_private).otherwise(pl.col("_v6priv")),
    )


def normalize_token(s: pl.Series) -> pl.Series:
    """Device ids and payment accounts: NFKC, stripped, lower case; placeholders -> null.

    grain: one value per element of `s`, in order. Placeholders are PLACEHOLDER_TOKENS and
    any string made only of zeros and dashes."""
    t = pl.col("v").str.normalize("NFKC").str.strip_chars().str.to_lowercase()
    placeholder = t.is_in(list(PLACEHOLDER_TOKENS)) | t.str.contains(r"^[0\-]+$")
    return _frame(s).select(pl.when(~placeholder).then(t).alias(s.name)).to_series()


def receiver_key(name: pl.Series, phone_norm: pl.Series) -> pl.Series:
    """'张三|13812345678': the consignee name (NFKC, all whitespace removed) and the
    normalised phone; null if either is missing or empty.

    grain: one value per row of the two equal-length inputs, in order."""
    frame = pl.DataFrame({"n": name.cast(pl.Utf8), "p": phone_norm.cast(pl.Utf8)})
    n = pl.col("n").str.normalize("NFKC").str.replace_all(r"\s+", "")
    p = pl.col("p").str.strip_chars()
    ok = (n.str.len_chars() > 0) & (p.str.len_chars() > 0)
    return frame.select(pl.when(ok).then(n + "|" + p).alias("receiver_key")).to_series()
