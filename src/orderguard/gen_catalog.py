"""Shops and products: several shop types, Zipf-like popularity, prices, margins.

Shop types: ordinary, WeChat mini-program, referral-commission (链动小铺-style) and card-key
(发卡网: virtual goods, never shipped). Mini-program, referral and card-key shops run a
distribution programme that pays L1 10% / L2 5% / L3 3% of the paid amount; deep-chain
shops set no level limit and also pay 2% on levels 4 and deeper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from orderguard.gen_text import CARRIER_SHARE, CARRIERS, pick

SHOP_TYPES = ("ordinary", "miniprogram", "referral", "cardkey")
ORDINARY, MINIPROGRAM, REFERRAL, CARDKEY = range(4)

# category, median price, price sigma, margin range
CATEGORIES = (
    ("食品", 49.0, 0.6, (0.25, 0.5)),
    ("美妆", 129.0, 0.6, (0.4, 0.7)),
    ("服饰", 99.0, 0.5, (0.35, 0.6)),
    ("母婴", 139.0, 0.6, (0.25, 0.45)),
    ("家居", 79.0, 0.7, (0.3, 0.55)),
    ("数码", 299.0, 0.9, (0.1, 0.3)),
    ("保健", 199.0, 0.6, (0.4, 0.7)),
    ("虚拟卡密", 30.0, 0.8, (0.05, 0.2)),
)
VIRTUAL_CAT = 7
ITEMS = (
    "坚果礼盒 云南小粒咖啡豆 手工牛肉干 五常大米 螺蛳粉 黑芝麻丸 燕麦片 红枣夹核桃 "
    "自热火锅 蜂蜜柚子茶 鲜花饼 纯牛奶整箱",
    "玻尿酸精华液 氨基酸洗面奶 防晒霜SPF50 补水面膜10片 口红礼盒 卸妆水 眼霜 气垫BB霜",
    "纯棉T恤 冰丝阔腿裤 轻薄羽绒服 连帽卫衣 运动鞋 针织开衫 牛仔外套 休闲短裤",
    "婴儿纸尿裤L码 宽口径奶瓶 婴儿湿巾80抽 儿童保温杯 宝宝辅食米粉 孕妇枕",
    "全棉四件套 记忆棉枕头 折叠收纳箱 不粘锅 电动牙刷 懒人沙发 香薰蜡烛 静音加湿器",
    "蓝牙耳机 充电宝20000mAh 手机壳 智能手环 机械键盘 三合一数据线 平板支架",
    "维生素C泡腾片 益生菌粉 乳清蛋白粉 胶原蛋白肽 深海鱼油软胶囊 果蔬酵素",
    "腾讯视频VIP月卡 爱奇艺黄金会员季卡 优酷会员年卡 网易云音乐黑胶VIP Steam充值卡100元 "
    "王者荣耀点券 百度网盘超级会员 QQ音乐绿钻 迅雷会员 京东E卡50元",
)
ITEMS_T = tuple(tuple(s.split()) for s in ITEMS)
BRANDS = ("良品", "优选", "臻品", "", "", "official", "家用", "网红", "老字号", "")
SPECS = ("", "", "", " 【2件装】", " (礼盒装)", " 500g", " 升级款", " 家庭装", " 官方正品")


@dataclass
class Catalog:
    shop_type: np.ndarray
    shop_pop: np.ndarray
    ship_med: np.ndarray
    carriers: np.ndarray  # (shops, 2)
    carrier_p2: np.ndarray
    carrier_short: np.ndarray
    masked: np.ndarray
    level_limit: np.ndarray
    prod_shop: np.ndarray
    price: np.ndarray
    cost: np.ndarray
    category: np.ndarray
    virtual: np.ndarray
    p: np.ndarray  # global popularity (sums to 1)
    name: pl.Series
    product_ids: pl.Series
    shop_ids: pl.Series
    deep_shops: list[int]
    entry_products: list[int]
    _cdf: np.ndarray | None = None
    _key: np.ndarray | None = None

    @property
    def n_shops(self) -> int:
        return len(self.shop_type)

    @property
    def programme(self) -> np.ndarray:
        return self.shop_type != ORDINARY

    def physical_shops(self) -> np.ndarray:
        return np.flatnonzero(self.shop_type != CARDKEY)

    def prepare(self) -> None:
        self._cdf = np.cumsum(self.p)
        self._cdf /= self._cdf[-1]
        tot = np.bincount(self.prod_shop, weights=self.p, minlength=self.n_shops)
        q = self.p / np.maximum(tot[self.prod_shop], 1e-300)
        c = np.cumsum(q)
        first = np.r_[0, np.flatnonzero(np.diff(self.prod_shop)) + 1]
        base = np.repeat(np.r_[0.0, c][first], np.diff(np.r_[first, len(c)]))
        within = c - base
        self._key = self.prod_shop + np.minimum(within, 1.0)

    def sample_global(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self._cdf, rng.random(n), side="right"), len(self.p) - 1)

    def sample_in_shop(self, rng: np.random.Generator, shops: np.ndarray) -> np.ndarray:
        u = np.asarray(shops) + rng.random(len(shops)) * (1 - 1e-9)
        return np.minimum(np.searchsorted(self._key, u, side="right"), len(self.p) - 1)

    def shop_share(self) -> np.ndarray:
        return np.bincount(self.prod_shop, weights=self.p, minlength=self.n_shops)

    def products_frame(self) -> pl.DataFrame:
        return pl.DataFrame({
            "product_id": self.product_ids,
            "shop_id": self.shop_ids.gather(self.prod_shop),
            "name": self.name,
            "price": np.round(self.price, 2),
            "cost": np.round(self.cost, 2),
            "category": pick([c[0] for c in CATEGORIES], self.category),
            "is_virtual": self.virtual,
        }).sort(["shop_id", "product_id"])


def _zipf(rng: np.random.Generator, n: int, a: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** a
    return rng.permutation(w / w.sum())


def build_catalog(rng: np.random.Generator, n_shops: int, n_deep: int,
                  max_product_share: float = 0.012) -> Catalog:
    t = rng.choice(4, size=n_shops, p=[0.4, 0.25, 0.25, 0.1])
    need = [ORDINARY] * 4 + [MINIPROGRAM] * 2 + [REFERRAL] * 3 + [CARDKEY]
    t[: len(need)] = need
    t = rng.permutation(t)
    shop_w = _zipf(rng, n_shops, 0.8)
    ship_med = np.clip(rng.lognormal(np.log(0.9), 0.55, n_shops), 0.3, 3.0)
    c1 = rng.choice(len(CARRIERS), n_shops, p=CARRIER_SHARE)
    c2 = (c1 + rng.integers(1, len(CARRIERS), n_shops)) % len(CARRIERS)
    main_cat = np.where(t == CARDKEY, VIRTUAL_CAT, rng.integers(0, VIRTUAL_CAT, n_shops))

    counts = np.clip(rng.lognormal(np.log(25), 0.6, n_shops), 5, 120).astype(np.int64)
    deep_shops = [int(s) for s in rng.choice(np.flatnonzero(t == REFERRAL), n_deep)]
    extra = np.bincount(np.array(deep_shops, dtype=np.int64), minlength=n_shops)
    counts = counts + extra
    prod_shop = np.repeat(np.arange(n_shops), counts)
    n = len(prod_shop)
    own = rng.random(n) < 0.8
    category = np.where(own | (t[prod_shop] == CARDKEY), main_cat[prod_shop],
                        rng.integers(0, VIRTUAL_CAT, n))
    med = np.array([c[1] for c in CATEGORIES])[category]
    sig = np.array([c[2] for c in CATEGORIES])[category]
    raw = np.clip(rng.lognormal(np.log(med), sig), 1.0, 9999.0)
    cents = rng.choice([0.9, 0.0, 0.8, 0.99, 0.5], n, p=[0.45, 0.25, 0.1, 0.1, 0.1])
    price = np.floor(raw) + cents
    lo = np.array([c[3][0] for c in CATEGORIES])[category]
    hi = np.array([c[3][1] for c in CATEGORIES])[category]
    cost = np.round(price * (1 - rng.uniform(lo, hi)), 2)
    within = np.concatenate([_zipf(rng, int(k), 0.9) for k in counts])
    p = within * shop_w[prod_shop]

    # the entry package (入门礼包) of each deep-chain shop: last product of the shop
    ends = np.cumsum(counts) - 1
    entry = []
    for s in deep_shops:
        i = int(ends[s])
        while i in entry:
            i -= 1
        entry.append(i)
        category[i] = 6
        price[i] = float(rng.choice([399.0, 499.0, 699.0, 999.0]))
        cost[i] = round(price[i] * 0.75, 2)
        p[i] = 0.0
    # cap the share of any one product so popularity stays realistic
    for _ in range(30):
        p = p / p.sum()
        if p.max() <= max_product_share:
            break
        p = np.minimum(p, max_product_share * 0.98)
    p = p / p.sum()

    item_idx = np.array([rng.integers(0, len(ITEMS_T[c])) for c in category])
    items = pl.Series([ITEMS_T[c][i] for c, i in zip(category, item_idx, strict=True)])
    brand = pick(BRANDS, rng.integers(0, len(BRANDS), n))
    spec = pick(SPECS, rng.integers(0, len(SPECS), n))
    name = pl.DataFrame({"b": brand, "i": items, "s": spec}).select(
        pl.concat_str(["b", "i", "s"]).alias("n"))["n"]
    for i in entry:
        name[i] = "会员创业礼包(含" + ITEMS_T[6][int(rng.integers(0, 6))] + ")"
    width = max(4, len(str(n_shops)))
    shop_ids = pl.Series([f"S{i + 1:0{width}d}" for i in range(n_shops)])
    pid = rng.choice(9_000_000, n, replace=False) + 1_000_000
    level = np.full(n_shops, 3)
    level[deep_shops] = 99
    cat = Catalog(
        shop_type=t, shop_pop=shop_w, ship_med=ship_med, carriers=np.c_[c1, c2],
        carrier_p2=np.where(rng.random(n_shops) < 0.4, rng.uniform(0.1, 0.4, n_shops), 0.0),
        carrier_short=rng.random(n_shops) < 0.35, masked=rng.random(n_shops) < 0.12,
        level_limit=level, prod_shop=prod_shop, price=price, cost=cost, category=category,
        virtual=t[prod_shop] == CARDKEY, p=p, name=name,
        product_ids=pl.Series([f"P{x}" for x in pid]), shop_ids=shop_ids,
        deep_shops=deep_shops, entry_products=entry,
    )
    cat.prepare()
    return cat
