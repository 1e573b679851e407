"""Procedural training images: the structures SR networks lose most on (facades and window grids in perspective,
brick bonds and tiles, text, manga screentones, hatching and ink strokes, dead leaves), drawn from a seed.

``render(kind, seed, size)`` is deterministic: the same kind, seed and size give the same pixels on any machine
with the same library versions. Each image is drawn at ``SUPERSAMPLE`` times its size and downscaled with
OpenCV's area filter, so edges are antialiased as a camera's or a scanner's are. Synthetic images train only: they
never validate (``training.free_images`` writes them to a training folder).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SUPERSAMPLE = 3
LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
CJK = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 400)) + "".join(chr(c) for c in range(0x3041, 0x3097))


def _color(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _finish(canvas: Image.Image, size: int) -> np.ndarray:
    """The supersampled drawing, area-downscaled to ``size`` x ``size`` RGB uint8."""
    return cv2.resize(np.asarray(canvas.convert("RGB")), (size, size), interpolation=cv2.INTER_AREA)


def _perspective(img: np.ndarray, rng: np.random.Generator, strength: float, background: tuple[int, int, int]) -> np.ndarray:
    """``img`` seen from another angle: its corners moved inwards by up to ``strength`` of the side."""
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(0, strength, (4, 2)) * np.float32([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * np.float32([w, h])
    matrix = cv2.getPerspectiveTransform(src, (src + jitter).astype(np.float32))
    return cv2.warpPerspective(img, matrix, (w, h), flags=cv2.INTER_CUBIC, borderValue=background)


def facade(rng: np.random.Generator, side: int) -> Image.Image:
    """A building front: a wall, a grid of framed windows with mullions, floors' ledges; then a perspective."""
    wall = _color(rng, 60, 230)
    canvas = Image.new("RGB", (side, side), wall)
    draw = ImageDraw.Draw(canvas)
    rows, cols = int(rng.integers(4, 12)), int(rng.integers(3, 10))
    cell_w, cell_h = side / cols, side / rows
    glass, frame = _color(rng, 10, 120), _color(rng, 180, 256) if rng.random() < 0.5 else _color(rng, 0, 80)
    fill_w, fill_h = rng.uniform(0.45, 0.8), rng.uniform(0.45, 0.75)
    for r in range(rows):
        y = r * cell_h
        draw.rectangle([0, y + cell_h * 0.93, side, y + cell_h], fill=tuple(max(0, c - 40) for c in wall))  # ledge
        for c in range(cols):
            x0 = c * cell_w + cell_w * (1 - fill_w) / 2
            y0 = y + cell_h * (1 - fill_h) / 2
            x1, y1 = x0 + cell_w * fill_w, y0 + cell_h * fill_h
            lit = tuple(min(255, v + int(rng.integers(0, 90))) for v in glass)
            draw.rectangle([x0, y0, x1, y1], fill=lit, outline=frame, width=max(1, int(side / 300)))
            for k in range(1, int(rng.integers(1, 4))):  # mullions
                xm = x0 + (x1 - x0) * k / 3
                draw.line([xm, y0, xm, y1], fill=frame, width=max(1, int(side / 400)))
    sky = _color(rng, 150, 256)
    return Image.fromarray(_perspective(np.asarray(canvas), rng, 0.18, sky))


def bricks(rng: np.random.Generator, side: int) -> Image.Image:
    """Brick courses in running or stack bond, mortar joints, each brick's colour varied."""
    mortar = _color(rng, 150, 230)
    canvas = Image.new("RGB", (side, side), mortar)
    draw = ImageDraw.Draw(canvas)
    base = np.array(_color(rng, 70, 200))
    brick_h = side / rng.integers(8, 28)
    brick_w = brick_h * rng.uniform(1.8, 3.2)
    joint = max(1.0, brick_h * rng.uniform(0.08, 0.18))
    running = rng.random() < 0.7
    y, row = 0.0, 0
    while y < side:
        x = -brick_w / 2 if running and row % 2 else 0.0
        while x < side:
            tone = np.clip(base + rng.normal(0, 18, 3), 0, 255).astype(int)
            draw.rectangle([x + joint / 2, y + joint / 2, x + brick_w - joint / 2, y + brick_h - joint / 2], fill=tuple(tone))
            x += brick_w
        y += brick_h
        row += 1
    img = np.asarray(canvas)
    return Image.fromarray(_perspective(img, rng, 0.12, mortar) if rng.random() < 0.5 else img)


def tiles(rng: np.random.Generator, side: int) -> Image.Image:
    """Square or diagonal floor tiles with grout, two or three alternating colours."""
    grout = _color(rng, 40, 200)
    canvas = Image.new("RGB", (side, side), grout)
    draw = ImageDraw.Draw(canvas)
    colours = [_color(rng) for _ in range(int(rng.integers(2, 4)))]
    n = int(rng.integers(5, 20))
    step, gap = side / n, max(1.0, side / n * rng.uniform(0.04, 0.12))
    for i in range(n + 1):
        for j in range(n + 1):
            draw.rectangle(
                [i * step + gap, j * step + gap, (i + 1) * step - gap, (j + 1) * step - gap], fill=colours[(i + j) % len(colours)]
            )
    if rng.random() < 0.5:
        canvas = canvas.rotate(45, resample=Image.BICUBIC, fillcolor=grout).resize((side, side))
    return canvas


def _font(fonts: Sequence[Path], rng: np.random.Generator, size: int) -> ImageFont.FreeTypeFont:
    if fonts:
        path = fonts[int(rng.integers(0, len(fonts)))]
        return ImageFont.truetype(str(path), size, index=0)
    return ImageFont.load_default(size)  # Pillow's own scalable font where no font files are given


def text(rng: np.random.Generator, side: int, fonts: Sequence[Path] = (), cjk_fonts: Sequence[Path] = ()) -> Image.Image:
    """Lines of text (Latin words and digits, or CJK characters) in several fonts, sizes and colours, on a plain
    or a two-tone background, as on signs, pages and screens."""
    background = _color(rng)
    canvas = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(canvas)
    ink = tuple(255 - v for v in background) if rng.random() < 0.7 else _color(rng)
    y = float(rng.integers(0, side // 20 + 1))
    while y < side:
        size = int(side * rng.uniform(0.02, 0.09))
        use_cjk = bool(cjk_fonts) and rng.random() < 0.35
        font = _font(cjk_fonts if use_cjk else fonts, rng, size)
        alphabet = CJK if use_cjk else LATIN
        words = []
        for _ in range(int(rng.integers(3, 12))):
            length = int(rng.integers(1, 5 if use_cjk else 10))
            words.append("".join(alphabet[int(i)] for i in rng.integers(0, len(alphabet), length)))
        line = ("" if use_cjk else " ").join(words)
        draw.text((float(rng.integers(-side // 10, side // 10)), y), line, font=font, fill=ink)
        y += size * rng.uniform(1.1, 1.8)
    return canvas


def screentone(rng: np.random.Generator, side: int) -> Image.Image:
    """Manga-like panels: regions of halftone dots at an angle and of flat black, with ink outlines."""
    canvas = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = rng.integers(0, side, 2)
        w, h = rng.integers(side // 6, side // 2, 2)
        box = [int(x0), int(y0), int(x0 + w), int(y0 + h)]
        pitch = float(rng.uniform(side / 120, side / 40))
        radius = pitch * float(rng.uniform(0.15, 0.45))
        angle = math.radians(float(rng.choice([0.0, 15.0, 45.0, 75.0])))
        region = Image.new("L", (side, side), 0)
        shape = ImageDraw.Draw(region).ellipse if rng.random() < 0.4 else ImageDraw.Draw(region).rectangle
        shape(box, fill=255)
        dots = Image.new("L", (side, side), 255)
        dots_draw = ImageDraw.Draw(dots)
        for i in range(-side // int(pitch) - 2, 2 * side // int(pitch) + 2):
            for j in range(-side // int(pitch) - 2, 2 * side // int(pitch) + 2):
                x = i * pitch * math.cos(angle) - j * pitch * math.sin(angle)
                y = i * pitch * math.sin(angle) + j * pitch * math.cos(angle)
                if -pitch < x < side + pitch and -pitch < y < side + pitch:
                    dots_draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=0)
        canvas.paste(dots, mask=region)
        if rng.random() < 0.6:
            draw.rectangle(box, outline=0, width=max(1, side // 150))
    _ink_strokes(draw, rng, side, int(rng.integers(2, 8)))
    return canvas.convert("RGB")


def _ink_strokes(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int, count: int, ink: int | tuple = 0) -> None:
    """Smooth curves of varying width: quadratic Bezier paths drawn as chains of short segments."""
    for _ in range(count):
        p0, p1, p2 = (rng.uniform(0, side, 2) for _ in range(3))
        width = float(rng.uniform(side / 400, side / 60))
        points = [tuple((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2) for t in np.linspace(0, 1, 40)]
        for k, (a, b) in enumerate(itertools.pairwise(points)):
            taper = math.sin(math.pi * (k + 0.5) / len(points))  # thin at both ends, as a brush stroke
            draw.line([a, b], fill=ink, width=max(1, int(width * taper + 0.5)))


def hatching(rng: np.random.Generator, side: int) -> Image.Image:
    """Pen drawing: regions of parallel and cross hatching at several angles and pitches, and ink strokes."""
    paper = _color(rng, 215, 256)
    canvas = Image.new("RGB", (side, side), paper)
    ink = _color(rng, 0, 70)
    for _ in range(int(rng.integers(3, 7))):
        layer = Image.new("RGB", (side, side), paper)
        layer_draw = ImageDraw.Draw(layer)
        pitch = float(rng.uniform(side / 90, side / 25))
        width = max(1, int(pitch * rng.uniform(0.1, 0.35)))
        for angle in rng.uniform(0, 180, int(rng.integers(1, 3))):
            direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
            normal = np.array([-direction[1], direction[0]])
            for offset in np.arange(-side * 1.5, side * 1.5, pitch):
                centre = np.array([side / 2, side / 2]) + offset * normal
                a, b = centre - 2 * side * direction, centre + 2 * side * direction
                layer_draw.line([tuple(a), tuple(b)], fill=ink, width=width)
        mask = Image.new("L", (side, side), 0)
        x0, y0 = rng.integers(-side // 8, side, 2)
        w, h = rng.integers(side // 4, side * 2 // 3, 2)
        shape = ImageDraw.Draw(mask).ellipse if rng.random() < 0.5 else ImageDraw.Draw(mask).rectangle
        shape([int(x0), int(y0), int(x0 + w), int(y0 + h)], fill=255)
        canvas.paste(layer, mask=mask)
    _ink_strokes(ImageDraw.Draw(canvas), rng, side, int(rng.integers(3, 12)), ink)
    return canvas


def dead_leaves(rng: np.random.Generator, side: int) -> Image.Image:
    """The dead-leaves model: opaque discs and polygons of random colours and sizes (a power law), each occluding
    the ones drawn before: edges at every scale and orientation, as in natural images."""
    canvas = Image.new("RGB", (side, side), _color(rng))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(300, 900))):
        radius = min(0.3, 0.01 / math.sqrt(max(float(rng.random()), 1e-3))) * side  # density ~ 1/r^3: scale-free
        x, y = rng.uniform(-radius, side + radius, 2)
        colour = _color(rng)
        if rng.random() < 0.6:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
        else:
            corners = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
            draw.polygon([(x + radius * math.cos(a), y + radius * math.sin(a)) for a in angles], fill=colour)
    return canvas


KINDS: dict[str, Callable[..., Image.Image]] = {
    "facade": facade,
    "bricks": bricks,
    "tiles": tiles,
    "text": text,
    "screentone": screentone,
    "hatching": hatching,
    "deadleaves": dead_leaves,
}


def render(kind: str, seed: int, size: int, fonts: Sequence[Path] = (), cjk_fonts: Sequence[Path] = ()) -> np.ndarray:
    """Image ``seed`` of ``kind`` (one of ``KINDS``), ``size`` x ``size`` RGB uint8."""
    rng = np.random.default_rng((seed, sorted(KINDS).index(kind)))
    side = size * SUPERSAMPLE
    canvas = text(rng, side, fonts, cjk_fonts) if kind == "text" else KINDS[kind](rng, side)
    return _finish(canvas, size)
