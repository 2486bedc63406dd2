"""Charts for report.html: matplotlib (Agg) drawn to PNG data URIs, Chinese labels in a CJK
font that comes from a package (Debian's fonts-noto-cjk; no font file ships with orderguard).

When no CJK font is installed the charts fall back to English labels, so they never show
tofu boxes; a warning says which package to install.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402

log = logging.getLogger(__name__)

# preferred first; any of them covers simplified Chinese
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
    "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback", "Noto Sans CJK JP",
    "Microsoft YaHei", "SimHei", "PingFang SC",
)
_CJK_FILE_HINTS = ("cjk", "wqy", "droidsansfallback", "sourcehansans", "notosanssc", "simhei", "msyh")
ID_WORDS_ZH = {"device": "设备", "payer": "支付账号", "phone": "手机", "ip": "IP", "addr_strict": "地址"}
ID_WORDS_EN = {"device": "device", "payer": "payer", "phone": "phone", "ip": "IP", "addr_strict": "address"}
ID_COLOURS = {"device": "#e67e22", "payer": "#8e44ad", "phone": "#27ae60", "ip": "#7f8c8d",
              "addr_strict": "#a0522d"}
BLUE, RED, GREY = "#4a78b5", "#c0392b", "#95a5a6"


@functools.cache
def cjk_font() -> str | None:
    """The name of an installed CJK font family matplotlib can use, or None."""
    names = {f.name for f in font_manager.fontManager.ttflist}
    found = next((n for n in CJK_FAMILIES if n in names), None)
    if found is None:
        # matplotlib's font cache may predate the font's installation: register system
        # fonts whose file names mark them as CJK, then look again
        for path in sorted(font_manager.findSystemFonts()):
            if any(h in os.path.basename(path).lower() for h in _CJK_FILE_HINTS):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError) as exc:
                    log.debug("cannot load font %s: %s", path, exc)
        names = {f.name for f in font_manager.fontManager.ttflist}
        found = next((n for n in CJK_FAMILIES if n in names), None)
    if found is None:
        log.warning("no CJK font found: report charts use English labels "
                    "(install Debian's fonts-noto-cjk for Chinese labels)")
    else:
        log.debug("report charts use the font %s", found)
    return found


def label(zh: str, en: str) -> str:
    """Chinese when a CJK font can draw it, else English (never tofu)."""
    return zh if cjk_font() else en


@contextmanager
def style() -> Iterator[None]:
    font = cjk_font()
    families = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    with plt.rc_context({
        "font.family": "sans-serif", "font.sans-serif": families, "axes.unicode_minus": False,
        "axes.spines.top": False, "axes.spines.right": False,
    }):
        yield


def png(fig) -> str:
    """A figure as a data: URI (no timestamps or software tag, so reruns match). Saved under
    style(): text whose family is the generic sans-serif finds the CJK font at draw time."""
    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def score_histogram(scores: np.ndarray, flag: float, high: float) -> str:
    with style():
        fig, ax = plt.subplots(figsize=(8, 3.2))
        ax.hist(scores, bins=50, range=(0, 1), color=BLUE, log=len(scores) > 0)  # empty night
        ax.axvline(flag, color="#e67e22", linestyle="--", label=label(f"标记阈值 {flag}", f"flag {flag}"))
        ax.axvline(high, color=RED, linestyle="--", label=label(f"高风险阈值 {high}", f"high {high}"))
        ax.set_xlabel(label("风险分（越高越可疑）", "score (higher = more suspicious)"))
        ax.set_ylabel(label("订单数（对数）", "orders (log)"))
        ax.legend(frameon=False)
        return png(fig)


def flagged_bars(kinds: Sequence[str], high: Sequence[int], medium: Sequence[int]) -> str:
    """Flagged orders per ring kind, split by risk level (horizontal stacked bars)."""
    with style():
        fig, ax = plt.subplots(figsize=(8, 0.45 * max(3, len(kinds)) + 0.8))
        y = np.arange(len(kinds))
        ax.barh(y, high, color=RED, label=label("高风险", "high"))
        ax.barh(y, medium, left=high, color="#f39c12", label=label("中风险", "medium"))
        for i, (h, m) in enumerate(zip(high, medium, strict=True)):
            ax.text(h + m, i, f" {h + m}", va="center", fontsize=9)
        ax.set_yticks(y, list(kinds))
        ax.invert_yaxis()
        ax.set_xlabel(label("被标记订单数", "flagged orders"))
        ax.legend(frameon=False, loc="lower right")
        return png(fig)


def trend_chart(nights: Sequence[str], flagged: Sequence[int], high: Sequence[int],
                rings: Sequence[int]) -> str:
    """Flagged orders (bars, high risk darker) and rings (line) per night."""
    with style():
        fig, ax = plt.subplots(figsize=(8, 3.2))
        x = np.arange(len(nights))
        width = 0.6 if len(nights) > 3 else 0.35
        ax.bar(x, flagged, width=width, color="#f5b041", label=label("被标记订单", "flagged orders"))
        ax.bar(x, high, width=width, color=RED, label=label("其中高风险", "of which high"))
        crowded = len(nights) > 6
        ax.set_xticks(x, list(nights), rotation=30 if crowded else 0, ha="right" if crowded else "center")
        ax.set_ylabel(label("订单数", "orders"))
        ax2 = ax.twinx()
        ax2.plot(x, rings, color=BLUE, marker="o", label=label("团伙数", "rings"))
        ax2.set_ylabel(label("团伙数", "rings"))
        ax2.set_ylim(0, max(list(rings) + [1]) * 1.3)
        ax2.spines["top"].set_visible(False)
        handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
        # below the dates, which take more room when they are slanted
        ax.legend(handles, labels, frameon=False, loc="upper center",
                  bbox_to_anchor=(0.5, -0.34 if crowded else -0.14), ncol=3, fontsize=9)
        return png(fig)


MAX_DRAWN_ACCOUNTS = 40  # account nodes (a folded group is one); past this a drawing is a tangle
PERSONS = ("account", "group", "upline")


def fold_alike_accounts(graph: nx.Graph, owner: str | None = None) -> nx.Graph:
    """Three or more accounts with exactly the same neighbours (the same shared identifiers,
    the same inviter) become one node of kind 'group' with their number in `size`: a farm of
    38 accounts on one address and two IPs is one node, not 38 overlapping labels, and a
    chain's row of leaf invitees under one account is one node. The owner is never folded."""
    alike: dict[frozenset, list[str]] = {}
    for node, data in graph.nodes(data=True):
        if data.get("kind") == "account" and node != owner:
            alike.setdefault(frozenset(graph[node]), []).append(node)
    groups = sorted((sorted(accounts) for accounts in alike.values() if len(accounts) >= 3),
                    key=lambda accounts: accounts[0])
    into = {account: f"group:{accounts[0]}" for accounts in groups for account in accounts}
    folded = graph.copy()
    folded.remove_nodes_from(into)
    for accounts in groups:
        folded.add_node(into[accounts[0]], kind="group", size=len(accounts))
    for accounts in groups:
        for neighbour in sorted(graph[accounts[0]]):
            folded.add_edge(into[accounts[0]], into.get(neighbour, neighbour),
                            **graph.edges[accounts[0], neighbour])
    return folded


def _keep_most_connected(graph: nx.Graph, limit: int) -> nx.Graph:
    """At most `limit` account and group nodes: the largest parts first, each walked
    breadth-first from its best-connected node, so what is drawn stays joined up."""
    keep: set[str] = set()
    drawn = 0
    for part in sorted(nx.connected_components(graph), key=lambda c: (-len(c), min(c))):
        start = max(sorted(part), key=graph.degree)
        for node in [start, *(v for _, v in nx.bfs_edges(graph, start, sort_neighbors=sorted))]:
            person = graph.nodes[node].get("kind") in ("account", "group")
            if person and drawn >= limit:
                continue
            keep.add(node)
            drawn += person
    sub = graph.subgraph(keep).copy()
    # an identifier or upline whose accounts were all left out says nothing
    lonely = [n for n in sub if sub.degree(n) == 0 and sub.nodes[n].get("kind") not in ("account", "group")]
    sub.remove_nodes_from(lonely)
    return sub


def _members(graph: nx.Graph) -> int:
    return sum(d.get("size", 1) for _, d in graph.nodes(data=True) if d.get("kind") in ("account", "group"))


def draw_ring(ax, graph: nx.Graph, owner: str | None = None, english: bool = False) -> str:
    """A ring's accounts (circles: the owner red, uplines outside the ring grey, a folded
    group of alike accounts larger and labelled with its number) and the identifiers they
    share (squares coloured by type, labelled by type and number, never by value); dashed red
    lines: invitations. Returns a note on what a large ring left out ('' when all is drawn)."""
    chinese = not english and cjk_font()
    words = ID_WORDS_ZH if chinese else ID_WORDS_EN
    total = _members(graph)
    folded = fold_alike_accounts(graph, owner)
    shown = _keep_most_connected(folded, MAX_DRAWN_ACCOUNTS)
    people = sorted(n for n, d in shown.nodes(data=True) if d.get("kind") in PERSONS)
    ids = sorted(n for n, d in shown.nodes(data=True) if d.get("kind") not in PERSONS)
    ordered = nx.Graph()
    ordered.add_nodes_from((n, shown.nodes[n]) for n in people + ids)
    ordered.add_edges_from(sorted((tuple(sorted((u, v))) + (d,) for u, v, d in shown.edges(data=True)),
                                  key=lambda e: (e[0], e[1])))
    numbering: dict[str, int] = {}
    labels = {}
    for n in ids:
        kind = ordered.nodes[n]["kind"]
        numbering[kind] = numbering.get(kind, 0) + 1
        labels[n] = f"{words.get(kind, kind)}{'' if chinese else ' '}{numbering[kind]}"
    for n in people:
        size = ordered.nodes[n].get("size")
        labels[n] = n if size is None else (f"{size} 个账号" if chinese else f"{size} accounts")
    if ordered.number_of_nodes():
        pos = nx.spring_layout(ordered, seed=7, k=2.4 / max(1, ordered.number_of_nodes()) ** 0.5,
                               iterations=200)
        shared = [(u, v) for u, v, d in ordered.edges(data=True) if d.get("kind") != "invite"]
        invites = [(u, v) for u, v, d in ordered.edges(data=True) if d.get("kind") == "invite"]
        nx.draw_networkx_edges(ordered, pos, edgelist=shared, ax=ax, edge_color="#bbbbbb", width=1.0)
        nx.draw_networkx_edges(ordered, pos, edgelist=invites, ax=ax, edge_color=RED, width=1.6,
                               style="dashed")
        colours = [RED if n == owner else GREY if ordered.nodes[n]["kind"] == "upline" else BLUE
                   for n in people]
        sizes = [120 * ordered.nodes[n].get("size", 1) ** 0.5 * (1.6 if "size" in ordered.nodes[n] else 1)
                 for n in people]
        nx.draw_networkx_nodes(ordered, pos, nodelist=people, ax=ax, node_size=sizes, node_color=colours)
        nx.draw_networkx_nodes(ordered, pos, nodelist=ids, ax=ax, node_size=220, node_shape="s",
                               node_color=[ID_COLOURS.get(ordered.nodes[n]["kind"], GREY) for n in ids])
        font = cjk_font() or "DejaVu Sans"
        nx.draw_networkx_labels(ordered, pos, labels=labels, ax=ax, font_size=7, font_family=font)
    ax.axis("off")
    drawn = _members(shown)
    if drawn == total:
        return ""
    english_note = f"{drawn} of {total} accounts drawn, most connected first"
    return f"只画出 {drawn} / {total} 个账号 ({english_note})" if chinese else english_note


def ring_drawing(graph: nx.Graph, title: str, owner: str | None = None) -> str:
    """draw_ring as a PNG data URI for the report, with what it left out below."""
    with style():
        fig, ax = plt.subplots(figsize=(8, 5.6))
        note = draw_ring(ax, graph, owner)
        ax.set_title(title, fontsize=11)
        if note:
            ax.text(0.0, -0.04, note, transform=ax.transAxes, fontsize=8, color="#555555", va="top")
        return png(fig)
