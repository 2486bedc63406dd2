"""Chinese names, phones, nicknames, identifiers and waybill numbers for the generator.

Everything here is vectorised: functions take numpy arrays of codes and return polars
Series of strings, so a million orders format in about a second.
"""

from __future__ import annotations

import numpy as np
import polars as pl

FULLWIDTH = ("０", "１", "２", "３", "４", "５", "６", "７", "８", "９")
DIGITS = tuple("0123456789")
CN_NUM = ("零", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十")


def cn_numeral(n: int) -> str:
    """1..99 as Chinese numerals (三, 十二, 二十三)."""
    if n <= 10:
        return CN_NUM[n]
    tens, ones = divmod(n, 10)
    head = "" if tens == 1 else CN_NUM[tens]
    return head + "十" + ("" if ones == 0 else CN_NUM[ones])


CN_NUMERALS = tuple(cn_numeral(i) for i in range(100))


def pick(vocab: list[str] | tuple[str, ...], idx: np.ndarray) -> pl.Series:
    """vocab[idx] as a Series."""
    return pl.Series(list(vocab), dtype=pl.String).gather(np.asarray(idx, dtype=np.int64))


def concat(*parts: pl.Series | str) -> pl.Series:
    """Element-wise string concatenation of Series and literals."""
    cols, exprs = {}, []
    for i, p in enumerate(parts):
        if isinstance(p, str):
            exprs.append(pl.lit(p))
        else:
            name = f"c{i}"
            cols[name] = p.cast(pl.String)
            exprs.append(pl.col(name))
    return pl.DataFrame(cols).select(pl.concat_str(exprs).alias("s"))["s"]


def choose(cases: list[tuple[np.ndarray, pl.Series]], default: pl.Series) -> pl.Series:
    """Per-row choice between Series: the first mask that holds wins."""
    cols = {"d": default}
    expr = None
    for i, (mask, series) in enumerate(cases):
        cols[f"m{i}"] = pl.Series(np.asarray(mask, dtype=bool))
        cols[f"v{i}"] = series
    for i in range(len(cases)):
        cond = pl.col(f"m{i}")
        expr = pl.when(cond).then(pl.col(f"v{i}")) if expr is None else expr.when(cond).then(
            pl.col(f"v{i}")
        )
    if expr is None:
        return default
    return pl.DataFrame(cols).select(expr.otherwise(pl.col("d")).alias("s"))["s"]


def to_fullwidth(s: pl.Series, mask: np.ndarray) -> pl.Series:
    return choose([(mask, s.str.replace_many(list(DIGITS), list(FULLWIDTH)))], s)


# ---------------------------------------------------------------- ids and hex strings
_HEX = np.array([f"{i:02x}" for i in range(256)], dtype="S2")


def hex16(values: np.ndarray) -> pl.Series:
    """uint64 -> 16 lowercase hex characters."""
    v = np.ascontiguousarray(np.asarray(values, dtype=">u8"))
    b = v.view(np.uint8).reshape(-1, 8)
    return pl.Series(_HEX[b].view("S16").ravel().astype("U16"), dtype=pl.String)


def splitmix(x: np.ndarray) -> np.ndarray:
    """A 64-bit mixing function (deterministic hash of codes)."""
    z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def device_strings(codes: np.ndarray) -> pl.Series:
    """Device fingerprints: Android-style 16 hex, or iOS-style uppercase UUID (~30%)."""
    codes = np.asarray(codes, dtype=np.uint64)
    a = hex16(codes)
    b = hex16(splitmix(codes))
    ios = (splitmix(codes ^ np.uint64(0x5555)) % np.uint64(10)) < 3
    uuid = concat(
        a.str.slice(0, 8), "-", a.str.slice(8, 4), "-", a.str.slice(12, 4), "-",
        b.str.slice(0, 4), "-", b.str.slice(4, 12),
    ).str.to_uppercase()
    return choose([(ios, uuid)], a)


def payer_strings(codes: np.ndarray) -> pl.Series:
    """Hashed payer accounts (the export hashes the wallet/bank account)."""
    return concat("pay_", hex16(splitmix(np.asarray(codes, dtype=np.uint64))))


# ---------------------------------------------------------------- IP addresses
_V4_BLOCKS = np.array(
    [27, 36, 39, 42, 49, 58, 59, 60, 61, 101, 106, 110, 111, 112, 113, 114, 115, 116, 117,
     118, 119, 120, 121, 122, 123, 124, 125, 180, 182, 183, 218, 223], dtype=np.int64,
)
_V6_PREFIX = ("240e", "2408", "2409", "240a")
V6_FLAG = np.int64(1) << np.int64(40)


def _mix29(x: np.ndarray) -> np.ndarray:
    """A bijection on 29-bit integers, so consecutive counters give unrelated addresses."""
    m = np.uint64((1 << 29) - 1)
    x = np.asarray(x, dtype=np.uint64) & m
    with np.errstate(over="ignore"):
        for mult, shift in ((0x2545F491, 13), (0x9E3779B1, 11), (0x85EBCA6B, 15)):
            x = (x * np.uint64(mult)) & m
            x = x ^ (x >> np.uint64(shift))
            x = (x + np.uint64(0x1B873593)) & m
    return x


class IpAllocator:
    """Unique IPv4 codes (< 2^32) and IPv6 codes (>= 2^40); rendered by ip_strings."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.counter = int(rng.integers(0, 1 << 20))

    def new(self, n: int, v6_share: float = 0.07) -> np.ndarray:
        c = np.arange(self.counter, self.counter + n, dtype=np.uint64)
        self.counter += n
        y = _mix29(c).astype(np.int64)
        v4 = (_V4_BLOCKS[y >> 24] << 24) | (y & 0xFFFFFF)
        v6 = V6_FLAG | self.rng.integers(0, 1 << 38, size=n, dtype=np.int64) << np.int64(2)
        is6 = self.rng.random(n) < v6_share
        return np.where(is6, v6 + np.arange(n, dtype=np.int64) % 4, v4)


def ip_strings(codes: np.ndarray) -> pl.Series:
    codes = np.asarray(codes, dtype=np.int64)
    is6 = codes >= V6_FLAG
    v4 = np.where(is6, 0, codes)
    o = [pl.Series((v4 >> s) & 255) for s in (24, 16, 8, 0)]
    s4 = concat(o[0], ".", o[1], ".", o[2], ".", o[3])
    h = hex16(splitmix(codes.astype(np.uint64)))
    h2 = hex16(splitmix(codes.astype(np.uint64) ^ np.uint64(0xABCDEF)))
    groups = [h.str.slice(i, 4).str.strip_chars_start("0") for i in (0, 4, 8, 12)]
    groups += [h2.str.slice(i, 4).str.strip_chars_start("0") for i in (0, 4, 8)]
    groups = [g.str.replace(r"^$", "0") for g in groups]
    s6 = concat(pick(_V6_PREFIX, codes % 4), ":", groups[0], ":", groups[1], ":", groups[2],
                ":", groups[3], ":", groups[4], ":", groups[5], ":", groups[6])
    return choose([(is6, s6)], s4)


# ---------------------------------------------------------------- people
SURNAMES = tuple(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤"
) + ("欧阳", "上官", "司马", "诸葛")
_SURNAME_W = np.r_[1.0 / np.arange(1, len(SURNAMES) - 3) ** 0.8, [0.004] * 4]
GIVEN = tuple(
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华建国红玉梅兵斌林琳鹏辉宇浩然子轩"
    "欣怡梓涵一诺雨桐佳琪思远晨阳博文嘉怡睿泽宁婷雪晶晓东海波志鑫慧颖倩瑞凯帆飞翔文静雯"
    "佳豪俊楠天宏亮丹萍燕彤悦瑶琦璐昊然诗涵梦洁家乐宗政"
)


def person_names(rng: np.random.Generator, n: int) -> pl.Series:
    p = _SURNAME_W / _SURNAME_W.sum()
    s = pick(SURNAMES, rng.choice(len(SURNAMES), size=n, p=p))
    g1 = pick(GIVEN, rng.integers(0, len(GIVEN), n))
    g2 = pick(GIVEN, rng.integers(0, len(GIVEN), n))
    two = rng.random(n) < 0.68
    return choose([(two, concat(s, g1, g2))], concat(s, g1))


_ADJ = ("快乐的", "安静的", "爱吃", "努力的", "温柔的", "奔跑的", "会飞的", "想睡觉的", "元气",
        "小小", "慢慢", "甜甜的", "佛系", "")
_NOUN = ("小猫", "橘子", "星星", "云朵", "大白", "鱼丸", "柠檬", "土豆", "月亮", "蜗牛", "小熊",
         "奶茶", "向日葵", "清风", "麦兜", "木木", "阿狸", "海绵宝宝")
_LATIN = ("lily", "tom", "amy", "jack", "coco", "kiki", "leo", "momo", "sunny", "yoyo", "echo",
          "max", "zoe", "vivi", "ken", "sky", "dudu", "bobo")


def nicknames(rng: np.random.Generator, names: pl.Series, default_share: np.ndarray) -> pl.Series:
    """Mixed nickname habits; default_share = per-row chance of a platform default name."""
    n = len(names)
    u = rng.random(n)
    default = concat("用户", pl.Series(rng.integers(1000, 99_999_999, n)))
    wx = pl.Series(["微信用户"] * n, dtype=pl.String)
    word = concat(pick(_ADJ, rng.integers(0, len(_ADJ), n)),
                  pick(_NOUN, rng.integers(0, len(_NOUN), n)))
    sep = pick(("", "_", ".", ""), rng.integers(0, 4, n))
    latin = concat(pick(_LATIN, rng.integers(0, len(_LATIN), n)), sep,
                   pl.Series(rng.choice([520, 1314, 88, 666, 1990, 1995, 2000, 2008, 7, 99], n)))
    given = concat("小", names.str.slice(-1, 1))
    empty = pl.Series([None] * n, dtype=pl.String)
    rest = (u - default_share) / np.maximum(1 - default_share, 1e-9)
    is_def = u < default_share
    return choose(
        [
            (is_def & (rng.random(n) < 0.8), default),
            (is_def, wx),
            (rest < 0.40, word),
            (rest < 0.65, latin),
            (rest < 0.82, given),
            (rest < 0.90, empty),
        ],
        names,
    )


# ---------------------------------------------------------------- phones
_PREFIXES = np.array([130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155,
                      156, 157, 158, 159, 166, 173, 175, 176, 177, 178, 180, 181, 182, 183, 185,
                      186, 187, 188, 189, 191, 195, 198, 199], dtype=np.int64)
_PREFIX_W = np.array([3, 2, 2, 2, 2, 4, 4, 4, 5, 5, 4, 3, 3, 2, 3, 3, 3, 4, 4, 2, 1, 1, 2, 2,
                      1, 2, 2, 2, 2, 2, 3, 3, 3, 2, 1, 1, 2, 2], dtype=float)


def phone_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    pre = rng.choice(_PREFIXES, size=n, p=_PREFIX_W / _PREFIX_W.sum())
    return pre * 100_000_000 + rng.integers(0, 100_000_000, n)


def same_range_phones(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    """Numbers sharing the first 7 digits with base (one SIM batch / one segment)."""
    return (np.asarray(base) // 10_000) * 10_000 + rng.integers(0, 10_000, len(base))


PHONE_STYLES = 7  # plain, dashes, spaces, +86 spaced, +86 compact, 86-, masked
PHONE_STYLE_P = np.array([0.58, 0.10, 0.08, 0.07, 0.05, 0.03, 0.09])


def phone_strings(numbers: np.ndarray, style: np.ndarray) -> pl.Series:
    s = pl.Series(np.asarray(numbers, dtype=np.int64)).cast(pl.String)
    a, b, c = s.str.slice(0, 3), s.str.slice(3, 4), s.str.slice(7, 4)
    style = np.asarray(style)
    return choose(
        [
            (style == 1, concat(a, "-", b, "-", c)),
            (style == 2, concat(a, " ", b, " ", c)),
            (style == 3, concat("+86 ", a, " ", b, " ", c)),
            (style == 4, concat("+86", s)),
            (style == 5, concat("86-", s)),
            (style == 6, concat(a, "****", c)),
        ],
        s,
    )


# ---------------------------------------------------------------- carriers and waybills
# (full name, short name, prefix, digits after the prefix, relative share, median days)
CARRIERS = (
    ("中通快递", "中通", "7", 12, 0.25, 2.4),
    ("圆通速递", "圆通", "YT", 13, 0.18, 2.5),
    ("申通快递", "申通", "77", 11, 0.12, 2.7),
    ("韵达快递", "韵达", "43", 11, 0.17, 2.6),
    ("顺丰速运", "顺丰", "SF", 12, 0.12, 1.3),
    ("京东物流", "京东", "JDVA", 11, 0.08, 1.4),
    ("极兔速递", "极兔", "JT", 13, 0.08, 2.8),
)
CARRIER_SHARE = np.array([c[4] for c in CARRIERS])
CARRIER_DAYS = np.array([c[5] for c in CARRIERS])
CARRIER_DIGITS = np.array([c[3] for c in CARRIERS], dtype=np.int64)


def carrier_names(carrier: np.ndarray, short: np.ndarray) -> pl.Series:
    full = pick([c[0] for c in CARRIERS], carrier)
    sh = pick([c[1] for c in CARRIERS], carrier)
    return choose([(short, sh)], full)


def random_waybill_numbers(rng: np.random.Generator, carrier: np.ndarray) -> np.ndarray:
    hi = 10 ** CARRIER_DIGITS[carrier]
    return (rng.random(len(carrier)) * hi).astype(np.int64)


def waybill_strings(carrier: np.ndarray, number: np.ndarray, defect: np.ndarray) -> pl.Series:
    """prefix + zero-padded digits. defect: 0 valid, 1 one digit short, 2 one digit long,
    3 the prefix of another carrier (fails that carrier's format)."""
    carrier = np.asarray(carrier, dtype=np.int64)
    defect = np.asarray(defect)
    width = CARRIER_DIGITS[carrier]
    number = np.asarray(number, dtype=np.int64)
    out = pl.DataFrame({"d": number, "w": width}).select(
        pl.col("d").cast(pl.String).str.zfill(13).str.slice(13 - pl.col("w"))
    )["d"]
    other = (carrier + 1 + (number % 3)) % len(CARRIERS)
    prefix = pick([c[2] for c in CARRIERS], carrier)
    wrong_prefix = pick([c[2] for c in CARRIERS], other)
    good = concat(prefix, out)
    return choose(
        [
            (defect == 1, concat(prefix, out.str.slice(0, out.str.len_chars() - 1))),
            (defect == 2, concat(prefix, out, pl.Series(number % 10))),
            (defect == 3, concat(wrong_prefix, out)),
        ],
        good,
    )
