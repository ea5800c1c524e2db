"""A fixed palette of distinct colours, indexed by class id."""

from __future__ import annotations

__all__ = ["Colors", "colors"]

# Kelly's colours of maximum contrast (Kelly 1965), without white and black.
_PALETTE_HEX = (
    "F3C300",
    "875692",
    "F38400",
    "A1CAF1",
    "BE0032",
    "C2B280",
    "848482",
    "008856",
    "E68FAC",
    "0067A5",
    "F99379",
    "604E97",
    "F6A600",
    "B3446C",
    "DCD300",
    "882D17",
    "8DB600",
    "654522",
    "E25822",
    "2B3D26",
)


class Colors:
    """Index -> colour. ``colors(i)`` is an RGB tuple of ints 0..255; ``colors(i, bgr=True)`` the BGR tuple (cv2).

    Indices wrap around the palette, so any non-negative class id has a colour.
    """

    def __init__(self, palette_hex: tuple[str, ...] = _PALETTE_HEX):
        if not palette_hex:
            raise ValueError("palette_hex is empty; give at least one 'RRGGBB' colour")
        self.palette = [self.hex2rgb(h) for h in palette_hex]

    def __len__(self) -> int:
        return len(self.palette)

    def __call__(self, i: int, bgr: bool = False) -> tuple[int, int, int]:
        if int(i) < 0:
            raise ValueError(f"colour index {i!r} is invalid; it must be >= 0")
        r, g, b = self.palette[int(i) % len(self.palette)]
        return (b, g, r) if bgr else (r, g, b)

    @staticmethod
    def hex2rgb(h: str) -> tuple[int, int, int]:
        """``'RRGGBB'`` or ``'#RRGGBB'`` -> ``(r, g, b)``."""
        s = h.lstrip("#")
        if len(s) != 6:
            raise ValueError(f"colour {h!r} is invalid; expected 'RRGGBB' hex")
        try:
            return int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16)
        except ValueError:
            raise ValueError(f"colour {h!r} is invalid; expected 'RRGGBB' hex") from None


colors = Colors()  # shared default palette
