"""Words about a work, in English and Chinese, written from its report.

Each sentence is built from report fields and lists them (``fields``, dotted paths into the
report), so ``tests/unit/test_analysis_describe.py`` can check that every sentence rests on
fields that exist, and that two different works are not described alike. Numbers are phrased as
a person would say them ("about a third", "38%"); thresholds that turn a figure into a word are
named here once.
"""

from __future__ import annotations

from typing import Any

from shared.styles import get_style

WARMTH_WORDS = ((-0.35, "cool", "冷"), (-0.1, "slightly cool", "偏冷"), (0.1, "neutral", "中性"),
                (0.35, "slightly warm", "偏暖"), (float("inf"), "warm", "暖"))
KEY_WORDS = ((0.35, "low-key", "低调（偏暗）"), (0.65, "mid-toned", "中间调"),
             (float("inf"), "high-key", "高调（明亮）"))
SATURATION_WORDS = ((0.2, "muted", "柔和低饱和"), (0.5, "moderately saturated", "中等饱和"),
                    (float("inf"), "strongly saturated", "高饱和"))
CONTRAST_WORDS = ((0.25, "gentle", "柔和"), (0.5, "moderate", "适中"), (float("inf"), "strong", "强烈"))
COLOURFULNESS_ZH = {"not colourful": "几乎没有色彩", "slightly colourful": "略有色彩",
                    "moderately colourful": "色彩适中",
                    "averagely colourful": "色彩中等丰富", "quite colourful": "色彩相当丰富",
                    "highly colourful": "色彩非常丰富", "extremely colourful": "色彩极其丰富"}
HARMONY_ZH = {"monochrome": "单色", "analogous": "类似色", "complementary": "互补色", "split": "分裂互补色",
              "triadic": "三角色", "varied": "多色散布"}
HARMONY_EN = {"monochrome": "a monochrome", "analogous": "an analogous", "complementary": "a complementary",
              "split": "a split-complementary", "triadic": "a triadic"}
# HSV hue sectors (upper bound, degrees) and their names.
HUE_WORDS = ((15, "red", "红"), (45, "orange", "橙"), (70, "yellow", "黄"), (160, "green", "绿"),
             (200, "cyan", "青"), (255, "blue", "蓝"), (290, "violet", "紫"), (335, "magenta", "品红"),
             (360, "red", "红"))
OFF_CENTRE = 0.07
BALANCED = 0.85
SURFACE_ZH = {"smooth": "平滑", "brushy": "有笔触感", "impasto-like": "近似厚涂"}
ORIENTATION_ZH = {"horizontal": "水平", "vertical": "垂直", "rising diagonal": "右上斜向",
                  "falling diagonal": "右下斜向"}


def _word(value: float, table: tuple[tuple[float, str, str], ...]) -> tuple[str, str]:
    return next((en, zh) for bound, en, zh in table if value < bound)


def percent(share: float) -> str:
    return f"{round(share * 100)}%"


def share_words(share: float) -> tuple[str, str]:
    """A share as a person says it: "about a third", "nearly all"."""
    for target, en, zh in ((1.0, "nearly all", "几乎全部"), (0.75, "about three quarters", "约四分之三"),
                           (2 / 3, "about two thirds", "约三分之二"), (0.5, "about half", "约一半"),
                           (1 / 3, "about a third", "约三分之一"), (0.25, "about a quarter", "约四分之一"),
                           (0.1, "about a tenth", "约十分之一")):
        if abs(share - target) <= 0.04 or (target == 1.0 and share >= 0.93):
            return en, zh
    return percent(share), percent(share)


def hue_words(hue: float) -> tuple[str, str]:
    return next((en, zh) for bound, en, zh in HUE_WORDS if hue % 360 < bound)


def _sentences(r: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    out: list[tuple[str, str, list[str]]] = []
    colour, comp, tex = r["colour"], r["composition"], r["texture"]
    palette = r["palette"]

    warm_en, warm_zh = _word(colour["warmth"], WARMTH_WORDS)
    key_en, key_zh = _word(colour["brightness"], KEY_WORDS)
    # Two palette colours can share a name (a light and a dark brown): a viewer hears one colour.
    named: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(palette):
        found = named.setdefault(entry["name_en"], {**entry, "share": 0.0, "indices": []})
        found["share"] += entry["share"]
        found["indices"].append(index)
    leading = sorted(named.values(), key=lambda c: -c["share"])[:3]
    lead, rest = leading[0], leading[1:]
    en = f"A {warm_en}, {key_en} palette led by {lead['name_en']} ({percent(lead['share'])})"
    zh = f"{warm_zh}调、{key_zh}的色盘，以{lead['name_zh']}（{percent(lead['share'])}）为主"
    if rest:
        en += ", with " + " and ".join(f"{c['name_en']} ({percent(c['share'])})" for c in rest)
        zh += "，辅以" + "和".join(f"{c['name_zh']}（{percent(c['share'])}）" for c in rest)
    out.append((en + ".", zh + "。", ["colour.warmth", "colour.brightness"]
                + [f"palette.{i}" for c in leading for i in c["indices"]]))

    sat_en, sat_zh = _word(colour["saturation"], SATURATION_WORDS)
    harmony = colour["harmony"]
    level = colour["colourfulness_level"]
    if harmony["type"] == "varied":
        en = f"The colours are {level} and {sat_en}, with hues spread all round the colour wheel."
        zh = f"画面{COLOURFULNESS_ZH[level]}，{sat_zh}，色相遍布整个色轮。"
    elif not harmony["hues"]:  # under 2% of the pixels have a hue at all: saturation would mislead
        en = f"The colours are {level}: almost without hue, a monochrome of greys."
        zh = f"画面{COLOURFULNESS_ZH[level]}，几乎没有色相，是灰色调的单色构成。"
    else:
        names = list(dict.fromkeys(hue_words(h) for h in harmony["hues"]))
        en = (f"The colours are {level} and {sat_en}, in {HARMONY_EN[harmony['type']]} harmony of "
              + " and ".join(n[0] for n in names) + (" hues." if len(names) > 1 else "."))
        zh = (f"画面{COLOURFULNESS_ZH[level]}，{sat_zh}，呈{HARMONY_ZH[harmony['type']]}和谐："
              + "、".join(n[1] for n in names) + "色调。")
    out.append((en, zh, ["colour.colourfulness_level", "colour.saturation", "colour.harmony"]))

    con_en, con_zh = _word(colour["contrast"], CONTRAST_WORDS)
    out.append((f"Tonal contrast between light and dark is {con_en}.", f"明暗对比{con_zh}。", ["colour.contrast"]))

    # Off-centre by more than OFF_CENTRE of the side names a direction; a balance under
    # BALANCED is at least 0.075 off on one axis, so an unbalanced work always gets one.
    cx, cy = comp["centre_of_mass"]["x"], comp["centre_of_mass"]["y"]
    vertical = ("upper", "上") if cy < 0.5 - OFF_CENTRE else ("lower", "下") if cy > 0.5 + OFF_CENTRE else ("", "")
    horizontal = ("left", "左") if cx < 0.5 - OFF_CENTRE else ("right", "右") if cx > 0.5 + OFF_CENTRE else ("", "")
    if vertical[0] and horizontal[0]:
        place_en, place_zh = f"the {vertical[0]} {horizontal[0]}", f"{horizontal[1]}{vertical[1]}方"
    elif vertical[0] or horizontal[0]:
        place_en = "the " + {"upper": "top", "lower": "bottom"}.get(vertical[0], horizontal[0])
        place_zh = f"{vertical[1] or horizontal[1]}方"
    else:
        place_en = place_zh = ""
    fields = ["composition.centre_of_mass", "composition.balance"]
    if comp["balance"] >= BALANCED:
        en = "The visual weight sits near the centre" + (f", a little toward {place_en}" if place_en else "")
        zh = "视觉重心靠近画面中央" + (f"，略偏{place_zh}" if place_zh else "")
        tail_en, tail_zh = ", and the whole is well balanced.", "，整体平衡稳定。"
    else:
        en, zh = f"The visual weight gathers toward {place_en}", f"视觉重心偏向画面{place_zh}"
        tail_en, tail_zh = ", so the picture leans that way.", "，画面因此向那一侧倾斜。"
    if comp["rule_of_thirds"] >= 0.5:
        en += ", close to a rule-of-thirds point"
        zh += "，接近三分法的交点"
        fields.append("composition.rule_of_thirds")
    out.append((en + tail_en, zh + tail_zh, fields))

    lr, tb = comp["symmetry"]["left_right"], comp["symmetry"]["top_bottom"]
    if max(lr, tb) >= 0.85:
        axis_en, axis_zh, value = ("left to right", "左右", lr) if lr >= tb else ("top to bottom", "上下", tb)
        out.append((f"It is almost mirror-symmetric {axis_en} ({percent(value)}).",
                    f"画面{axis_zh}几乎镜像对称（{percent(value)}）。", ["composition.symmetry"]))
    elif max(lr, tb) >= 0.6:
        out.append(("Its halves loosely echo each other.", "画面两半大致呼应。", ["composition.symmetry"]))
    else:
        out.append(("Neither half mirrors the other: the layout is asymmetric.", "两半互不对称，布局不对称。",
                    ["composition.symmetry"]))

    space_en, space_zh = share_words(comp["negative_space"])
    density = comp["edge_density"]
    busy_en, busy_zh = (("edges are sparse", "线条稀疏") if density < 0.03 else
                        ("edges are moderately dense", "线条疏密适中") if density < 0.1 else
                        ("edges crowd the surface", "线条密集"))
    if comp["negative_space"] < 0.05:
        space_en_sentence, space_zh_sentence = "Hardly any of the surface is left empty", "画面几乎没有留白"
    else:
        space_en_sentence = f"{space_en[0].upper() + space_en[1:]} of the surface is quiet, empty ground"
        space_zh_sentence = f"{space_zh}的画面是安静的留白"
    out.append((f"{space_en_sentence}, and {busy_en}.", f"{space_zh_sentence}，{busy_zh}。",
                ["composition.negative_space", "composition.edge_density"]))

    orientations = comp["orientations"]
    if orientations:
        top = orientations[0]
        out.append((f"{top['name'].capitalize()} lines carry the most weight ({percent(top['share'])} of the "
                    "line energy).",
                    f"{ORIENTATION_ZH[top['name']]}线条最为突出（占线条能量的{percent(top['share'])}）。",
                    ["composition.orientations"]))
    else:
        out.append(("No line direction stands out.", "没有突出的线条方向。", ["composition.orientations"]))

    coherence = tex["coherence"]
    if tex["surface"] == "smooth":  # no strokes to speak of: their direction would be noise
        out.append(("The surface reads as smooth, with little visible brushwork.", "表面平滑，几乎看不到笔触。",
                    ["texture.surface", "texture.fine_detail"]))
    else:
        flow_en, flow_zh = (("strokes running largely one way", "笔触大体朝同一方向") if coherence >= 0.6 else
                            ("strokes in several directions", "笔触方向多样") if coherence >= 0.3 else
                            ("marks crossing every way", "笔触纵横交错"))
        out.append((f"The surface reads as {tex['surface']}, with {flow_en}.",
                    f"表面{SURFACE_ZH[tex['surface']]}，{flow_zh}。", ["texture.surface", "texture.coherence"]))

    top_styles = r["style"]["top"]
    if top_styles:
        first = top_styles[0]
        en = f"In style it is closest to {first['name']} ({get_style(first['name']).description})"
        zh = f"风格上最接近 {first['name']}"
        if len(top_styles) > 1:
            en += f", then {top_styles[1]['name']}"
            zh += f"，其次是 {top_styles[1]['name']}"
        out.append((en + ".", zh + "。", ["style.top"]))

    models = r["style"].get("models") or []
    if models:  # the first model only: one sentence, not a list
        model, label = models[0]["model"], models[0]["top"][0]["name"]
        out.append((f"Among the labels of your model {model}, it is closest to {label}.",
                    f"在你的模型 {model} 的风格标签中，它最接近 {label}。", ["style.models.0"]))

    similar = r.get("similar_works") or []
    if similar:
        best = similar[0]
        what_en = f"{best['kind']} {best['id']}" + (f" result {best['result']}" if "result" in best else "")
        what_zh = f"{'上传' if best['kind'] == 'upload' else '结果'} {best['id']}"
        out.append((f"Among your works, the nearest is {what_en} (similarity {percent(best['score'])}).",
                    f"在你的作品中，最相近的是{what_zh}（相似度{percent(best['score'])}）。", ["similar_works.0"]))
    return out


def describe(report: dict[str, Any], language: str = "both") -> dict[str, Any]:
    sentences = _sentences(report)
    out: dict[str, Any] = {}
    if language in ("en", "both"):
        out["en"] = " ".join(en for en, _, _ in sentences)
    if language in ("zh", "both"):
        out["zh"] = "".join(zh for _, zh, _ in sentences)
    out["sentences"] = [{**({"en": en} if "en" in out else {}), **({"zh": zh} if "zh" in out else {}),
                         "fields": fields} for en, zh, fields in sentences]
    return out
