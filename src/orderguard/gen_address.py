"""Chinese shipping addresses: real places (entities) and the many ways people write them.

An entity is one physical delivery point: a flat (room level), an office room, or a parcel
station / campus pick-up point. `render` writes an entity as free text with the habits
seen in real exports: dropped province, spaces between levels, 3栋 / 3号楼 / 三幢 / 3#,
2单元 / 二单元, 1101室 / 1101 / 1101房, 3-2-1101, full-width digits, optional road.
Honest people and fraud rings draw their spellings from the same habits.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from orderguard.gen_text import CN_NUMERALS, choose, concat, pick, to_fullwidth

# (province, city, districts, weight); municipalities have no province prefix.
CITIES = (
    ("浙江省", "杭州市", ("西湖区", "拱墅区", "上城区", "滨江区", "余杭区", "萧山区"), 3.0),
    ("浙江省", "宁波市", ("海曙区", "鄞州区", "江北区", "北仑区"), 1.5),
    ("浙江省", "温州市", ("鹿城区", "瓯海区", "龙湾区"), 1.2),
    ("江苏省", "南京市", ("玄武区", "秦淮区", "鼓楼区", "建邺区", "江宁区"), 2.2),
    ("江苏省", "苏州市", ("姑苏区", "吴中区", "虎丘区", "相城区", "吴江区"), 2.2),
    ("广东省", "广州市", ("天河区", "越秀区", "海珠区", "番禺区", "白云区"), 3.2),
    ("广东省", "深圳市", ("南山区", "福田区", "宝安区", "龙岗区", "龙华区"), 3.2),
    ("", "北京市", ("海淀区", "朝阳区", "东城区", "西城区", "丰台区", "昌平区"), 3.0),
    ("", "上海市", ("浦东新区", "徐汇区", "静安区", "闵行区", "杨浦区", "长宁区"), 3.2),
    ("", "天津市", ("和平区", "南开区", "河西区", "滨海新区"), 1.4),
    ("", "重庆市", ("渝中区", "江北区", "南岸区", "渝北区", "沙坪坝区"), 1.8),
    ("四川省", "成都市", ("武侯区", "锦江区", "青羊区", "金牛区", "成华区"), 2.5),
    ("湖北省", "武汉市", ("洪山区", "武昌区", "江汉区", "江岸区", "汉阳区"), 2.0),
    ("湖南省", "长沙市", ("岳麓区", "芙蓉区", "天心区", "开福区", "雨花区"), 1.6),
    ("陕西省", "西安市", ("雁塔区", "碑林区", "未央区", "莲湖区", "长安区"), 1.6),
    ("山东省", "济南市", ("历下区", "市中区", "槐荫区", "天桥区"), 1.3),
    ("山东省", "青岛市", ("市南区", "市北区", "崂山区", "黄岛区"), 1.4),
    ("河南省", "郑州市", ("金水区", "二七区", "中原区", "管城回族区"), 1.6),
    ("福建省", "厦门市", ("思明区", "湖里区", "集美区"), 1.0),
    ("福建省", "福州市", ("鼓楼区", "台江区", "仓山区"), 1.0),
    ("安徽省", "合肥市", ("蜀山区", "包河区", "庐阳区", "瑶海区"), 1.3),
    ("辽宁省", "沈阳市", ("和平区", "沈河区", "皇姑区", "铁西区"), 1.1),
    ("河北省", "石家庄市", ("长安区", "桥西区", "新华区", "裕华区"), 1.0),
    ("云南省", "昆明市", ("五华区", "盘龙区", "官渡区", "西山区"), 0.9),
    ("广西壮族自治区", "南宁市", ("青秀区", "兴宁区", "西乡塘区"), 0.8),
    ("江西省", "南昌市", ("东湖区", "西湖区", "青山湖区"), 0.8),
    ("黑龙江省", "哈尔滨市", ("南岗区", "道里区", "香坊区"), 0.8),
)
CITY_W = np.array([c[3] for c in CITIES]) / sum(c[3] for c in CITIES)
_DIST_START = np.cumsum([0] + [len(c[2]) for c in CITIES])
_DISTRICTS = tuple(d for c in CITIES for d in c[2])
_PROV = tuple(c[0] for c in CITIES)
_CITY = tuple(c[1] for c in CITIES)

ROADS = tuple(
    "文三路 中山路 解放路 人民路 建设路 和平路 新华路 长江路 黄河路 南京路 学院路 科技路 创业路 "
    "华山路 延安路 天目山路 古墩路 莫干山路 东方路 世纪大道 江南大道 滨江大道 金沙江路 凤起路 "
    "体育场路 教工路 学林街 文一西路 丰潭路 庆春路 望江路 复兴路 光明路 胜利路 幸福路 青年路 "
    "朝阳路 振兴路 迎宾大道 高新大道 西湖大道 东湖路 北京路 上海路 广州路 深南大道 星光大道 "
    "湖滨路 新港路 工业园路 环城北路 环城东路 环城西路 滨河路 花园路 桂花路 银杏路 梧桐路 "
    "松江路 嘉陵江路 汉江路 珠江路 五一路 八一路 解放北路 人民南路 中山北路 建国路 "
    "金桥路 锦绣路 翠苑路 紫荆路 长安街 南大街 北大街".split()
)
COMMUNITIES = tuple(
    "阳光花园 金色家园 翠苑一区 翠苑二区 万科城市花园 绿城桂花园 保利天悦 碧桂园 华润城 "
    "龙湖天街 中海国际社区 世纪新城 幸福里 锦绣江南 金地格林小城 融创玖樾府 御景湾 和平里 "
    "东湖花园 星河湾 滨江花城 蓝色港湾 紫金华府 清水湾 丽景苑 枫林绿洲 香樟园 南苑新村 "
    "北苑小区 新村一区 城市之光 钱江花园 百合公寓 春江花月 水岸名都 静安花苑 天鹅湖 "
    "朝晖六区 大华西溪风情 绿地新都会 恒大名都 招商雍景湾 万达华府 未来城 书香门第 "
    "学府雅苑 新天地 阳光100 望京西园 金桂园 翡翠城 观澜湖 梧桐苑 桃源居 海天花园".split()
)
OFFICES = tuple(
    "东方大厦 国贸中心A座 国贸中心B座 科技大厦 金融中心 创新大厦 软件园2号楼 世贸中心 "
    "万达广场写字楼 环球中心 数字大厦 西溪谷A座 创意产业园 中央商务大厦 信息港 凯德广场 "
    "银泰中心 华润大厦 新世界中心 望京SOHO T2 腾飞大厦 未来科技城 电子商务产业园 智慧谷 "
    "汇金国际 天安数码城 浦江科技广场 嘉里中心".split()
)
SCHOOLS = ("大学", "理工大学", "师范大学", "职业技术学院", "财经大学", "医科大学", "工商学院")
CAMPUS = ("", "东校区", "西校区", "南校区", "北校区", "本部")
STATIONS = ("菜鸟驿站", "快递服务中心", "丰巢快递柜", "妈妈驿站", "兔喜生活驿站", "京东派")
_STATION_ALT = ("菜鸟驿站(北门)", "快递中心", "丰巢柜", "驿站", "兔喜驿站", "京东快递点")

RESIDENTIAL, OFFICE, STATION = 0, 1, 2


class AddressBook:
    """Delivery points (entities) and textual renderings (requests) of them."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.cols: dict[str, list[np.ndarray]] = {
            k: [] for k in ("kind", "city", "district", "road", "roadno", "place", "bldg",
                            "unit", "floor", "room", "school", "campus")
        }
        self.n = 0
        self.requests: list[np.ndarray] = []
        self.n_requests = 0

    def new(self, kind: int, city: np.ndarray) -> np.ndarray:
        """New entities of one kind in the given cities; returns their indices."""
        rng, n = self.rng, len(city)
        city = np.asarray(city, dtype=np.int64)
        nd = _DIST_START[city + 1] - _DIST_START[city]
        floor = rng.integers(2, 33, n)
        vals = {
            "kind": np.full(n, kind),
            "city": city,
            "district": _DIST_START[city] + (rng.random(n) * nd).astype(np.int64),
            "road": rng.integers(0, len(ROADS), n),
            "roadno": np.minimum(1 + rng.geometric(0.012, n), 1999),
            "place": rng.integers(0, len(COMMUNITIES) if kind != OFFICE else len(OFFICES), n),
            "bldg": np.minimum(rng.geometric(0.12, n), 40),
            "unit": np.minimum(rng.geometric(0.45, n), 8),
            "floor": floor,
            "room": floor * 100 + rng.integers(1, 5, n),
            "school": rng.integers(0, len(SCHOOLS), n),
            "campus": rng.integers(0, len(CAMPUS), n),
        }
        for k, v in vals.items():
            self.cols[k].append(np.asarray(v, dtype=np.int64))
        idx = np.arange(self.n, self.n + n)
        self.n += n
        return idx

    def request(self, entity: np.ndarray) -> np.ndarray:
        """Ask for one spelling of each entity; returns indices into the rendered table."""
        entity = np.asarray(entity, dtype=np.int64)
        self.requests.append(entity)
        idx = np.arange(self.n_requests, self.n_requests + len(entity))
        self.n_requests += len(entity)
        return idx

    def entity_of_requests(self) -> np.ndarray:
        return np.concatenate(self.requests) if self.requests else np.zeros(0, np.int64)

    def render_all(self) -> pl.Series:
        return render(self.rng, {k: np.concatenate(v) for k, v in self.cols.items()},
                      self.entity_of_requests())


def _num(v: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(v, dtype=np.int64)).cast(pl.String)


def render(rng: np.random.Generator, ent: dict[str, np.ndarray], idx: np.ndarray) -> pl.Series:
    n = len(idx)
    if n == 0:
        return pl.Series([], dtype=pl.String)
    e = {k: v[idx] for k, v in ent.items()}
    kind = e["kind"]
    u = lambda: rng.random(n)  # noqa: E731
    prov = pick(_PROV, e["city"])
    city = pick(_CITY, e["city"])
    dist = pick(_DISTRICTS, e["district"])
    drop_prov = (u() < 0.22) | (np.array(_PROV)[e["city"]] == "")
    spaced = u() < 0.15
    sp = choose([(spaced, pl.Series([" "] * n))], pl.Series([""] * n))
    head = concat(choose([(drop_prov, pl.Series([""] * n))], concat(prov, sp)), city, sp, dist,
                  sp)
    road = concat(pick(ROADS, e["road"]), _num(e["roadno"]), "号")
    with_road = u() < 0.72
    road = choose([(with_road, road)], pl.Series([""] * n))

    # residential: community + building + unit + room
    comm = pick(COMMUNITIES, np.minimum(e["place"], len(COMMUNITIES) - 1))
    comm = choose([(u() < 0.3, concat(comm, "小区"))], comm)
    b, un, r = e["bldg"], e["unit"], e["room"]
    bs = rng.choice(6, n, p=[0.34, 0.26, 0.12, 0.1, 0.1, 0.08])
    bldg = choose(
        [
            (bs == 1, concat(_num(b), "号楼")),
            (bs == 2, concat(pick(CN_NUMERALS, b), "幢")),
            (bs == 3, concat(_num(b), "#")),
            (bs == 4, concat(_num(b), "幢")),
            (bs == 5, concat(pick(CN_NUMERALS, b), "栋")),
        ],
        concat(_num(b), "栋"),
    )
    unit = choose([(u() < 0.2, concat(pick(CN_NUMERALS, un), "单元"))], concat(_num(un), "单元"))
    rs = rng.choice(4, n, p=[0.5, 0.3, 0.1, 0.1])
    room = choose(
        [(rs == 1, _num(r)), (rs == 2, concat(_num(r), "房")), (rs == 3, concat(_num(r), "号"))],
        concat(_num(r), "室"),
    )
    compact = u() < 0.12
    sp2 = choose([(u() < 0.1, pl.Series([" "] * n))], pl.Series([""] * n))
    resid = choose(
        [(compact, concat(comm, sp2, _num(b), "-", _num(un), "-", _num(r)))],
        concat(comm, sp2, bldg, unit, room),
    )

    # office: building name + floor + room
    off = pick(OFFICES, np.minimum(e["place"], len(OFFICES) - 1))
    fl = e["floor"]
    os_ = rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1])
    office = choose(
        [
            (os_ == 1, concat(off, _num(fl), "层", _num(r))),
            (os_ == 2, concat(off, _num(r), "室")),
            (os_ == 3, concat(off, " ", _num(fl), "F ", _num(r))),
        ],
        concat(off, _num(fl), "楼", _num(r), "室"),
    )

    # station: campus or community pick-up point
    short_city = pick(tuple(c[1].rstrip("市") for c in CITIES), e["city"])
    school = concat(short_city, pick(SCHOOLS, e["school"]), pick(CAMPUS, e["campus"]))
    is_campus = e["place"] % 2 == 0
    where = choose([(is_campus, school)], concat(comm, pl.Series([""] * n)))
    st_i = e["bldg"] % len(STATIONS)
    st = choose([(u() < 0.3, pick(_STATION_ALT, st_i))], pick(STATIONS, st_i))
    station = concat(where, st)

    body = choose([(kind == OFFICE, office), (kind == STATION, station)], resid)
    full = concat(head, road, body)
    return to_fullwidth(full, u() < 0.08)
