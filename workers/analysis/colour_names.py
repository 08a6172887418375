"""Names for colours, in English and Chinese: the nearest entry of a small painter's table by CIEDE2000.

The table holds pigment and everyday names a viewer would use for a painting's colours; each
entry's sRGB value is the colour the name usually means. ``name_colour`` returns the entry
nearest in CIELAB (ΔE2000), so every name a report gives comes from measured Lab values.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab


@dataclass(frozen=True)
class ColourName:
    en: str
    zh: str
    rgb: tuple[int, int, int]


COLOUR_NAMES: tuple[ColourName, ...] = (
    ColourName("black", "黑色", (15, 15, 15)),
    ColourName("charcoal", "炭灰色", (54, 56, 60)),
    ColourName("slate grey", "石板灰", (98, 108, 122)),
    ColourName("grey", "灰色", (128, 128, 128)),
    ColourName("silver", "银灰色", (190, 190, 192)),
    ColourName("white", "白色", (248, 248, 246)),
    ColourName("ivory", "象牙白", (245, 240, 220)),
    ColourName("cream", "奶油色", (240, 228, 190)),
    ColourName("beige", "米色", (215, 198, 165)),
    ColourName("sand", "沙色", (194, 170, 128)),
    ColourName("khaki", "卡其色", (170, 160, 110)),
    ColourName("tan", "棕褐色", (190, 145, 100)),
    ColourName("ochre", "赭黄色", (204, 150, 40)),
    ColourName("mustard", "芥末黄", (200, 170, 40)),
    ColourName("gold", "金色", (222, 180, 60)),
    ColourName("yellow", "黄色", (245, 215, 40)),
    ColourName("lemon", "柠檬黄", (250, 245, 110)),
    ColourName("orange", "橙色", (240, 130, 30)),
    ColourName("peach", "桃色", (250, 190, 150)),
    ColourName("coral", "珊瑚色", (245, 120, 95)),
    ColourName("vermilion", "朱红色", (225, 55, 30)),
    ColourName("red", "红色", (200, 30, 35)),
    ColourName("crimson", "绯红色", (160, 20, 50)),
    ColourName("maroon", "栗色", (110, 25, 30)),
    ColourName("burgundy", "酒红色", (120, 30, 60)),
    ColourName("rust", "铁锈红", (165, 75, 40)),
    ColourName("brown", "棕色", (120, 75, 40)),
    ColourName("umber", "赭褐色", (90, 60, 35)),
    ColourName("dark brown", "深褐色", (60, 40, 25)),
    ColourName("pink", "粉色", (240, 160, 185)),
    ColourName("rose", "玫瑰色", (210, 90, 130)),
    ColourName("magenta", "洋红色", (210, 40, 160)),
    ColourName("plum", "梅紫色", (120, 50, 100)),
    ColourName("purple", "紫色", (110, 50, 150)),
    ColourName("violet", "紫罗兰色", (140, 90, 200)),
    ColourName("lavender", "薰衣草紫", (185, 165, 220)),
    ColourName("indigo", "靛蓝色", (50, 40, 120)),
    ColourName("navy", "藏青色", (25, 35, 85)),
    ColourName("ultramarine", "群青色", (40, 60, 175)),
    ColourName("cobalt blue", "钴蓝色", (30, 90, 190)),
    ColourName("blue", "蓝色", (50, 110, 220)),
    ColourName("sky blue", "天蓝色", (135, 195, 235)),
    ColourName("pale blue", "淡蓝色", (190, 215, 235)),
    ColourName("steel blue", "钢蓝色", (75, 115, 160)),
    ColourName("cyan", "青色", (40, 200, 220)),
    ColourName("turquoise", "绿松石色", (60, 200, 180)),
    ColourName("teal", "蓝绿色", (20, 120, 125)),
    ColourName("mint", "薄荷绿", (160, 225, 190)),
    ColourName("emerald", "翠绿色", (30, 150, 90)),
    ColourName("green", "绿色", (50, 160, 50)),
    ColourName("forest green", "墨绿色", (30, 80, 40)),
    ColourName("olive", "橄榄绿", (110, 110, 40)),
    ColourName("sage", "灰绿色", (150, 165, 130)),
    ColourName("lime", "青柠绿", (170, 215, 50)),
)


@functools.cache
def _table_lab() -> np.ndarray:
    rgb = np.array([entry.rgb for entry in COLOUR_NAMES], dtype=np.float64) / 255.0
    return np.asarray(rgb2lab(rgb[None])[0])


def name_colour(lab: np.ndarray) -> ColourName:
    """The table's entry nearest to one CIELAB colour (ΔE2000)."""
    table = _table_lab()
    distances = deltaE_ciede2000(np.broadcast_to(np.asarray(lab, dtype=np.float64), table.shape), table)
    return COLOUR_NAMES[int(np.argmin(distances))]
