"""QR codes in pictures, decoded with the zbar library (Debian `libzbar0`, through `pyzbar`)."""

from __future__ import annotations

from PIL import Image
from pyzbar.pyzbar import ZBarSymbol
from pyzbar.pyzbar import decode as zbar_decode


def decode_qr(image: Image.Image) -> list[str]:
    """The texts of the QR codes in `image`, top to bottom then left to right, each once.

    Only QR codes are looked for: other barcode types cost time and give false readings in photos.
    """
    symbols = zbar_decode(image, symbols=[ZBarSymbol.QRCODE])  # converts to 8-bit grey itself
    ordered = sorted(symbols, key=lambda symbol: (symbol.rect.top, symbol.rect.left))
    texts = (symbol.data.decode("utf-8", errors="replace") for symbol in ordered)
    return list(dict.fromkeys(texts))
