"""What is wrong with an image file, told before a decoder gives a vague
answer: used by ``mmscnet.LoadImageFromFile`` and the exported model's
runtime (which needs only numpy and cv2, so this module imports neither
torch nor mmengine)."""
import struct

_JPEG, _PNG = b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n'


def _jpeg_is_truncated(data):
    """True if no end-of-image marker follows the first scan. Walks the marker
    segments up to the scan, so an EXIF thumbnail's own end marker does not
    count."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False  # not a layout we can follow: let the decoder judge
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the entropy-coded data follows
            return data.find(b'\xff\xd9', pos) == -1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2  # markers without a length
            continue
        pos += 2 + struct.unpack('>H', data[pos + 2:pos + 4])[0]
    return True  # ended before the scan


def image_problem(data):
    """What is wrong with the bytes of an image file, or None."""
    if not data:
        return 'is empty (0 bytes)'
    if data.startswith(_JPEG) and _jpeg_is_truncated(data):
        return ('is a truncated JPEG (no end-of-image marker; '
                f'{len(data)} bytes)')
    if data.startswith(_PNG) and data.rfind(b'IEND') == -1:
        return f'is a truncated PNG (no IEND chunk; {len(data)} bytes)'
    return None


def read_image(path):
    """The image file at ``path`` as HxWx3 uint8 BGR, read as mmcv's
    ``LoadImageFromFile`` reads it by default (cv2, ``color``: grayscale
    replicated, alpha dropped, EXIF orientation applied), or a ValueError
    that names the file and what is wrong with it."""
    import cv2
    import numpy as np
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f'image {path} does not exist') from None
    except IsADirectoryError:
        raise ValueError(f'image {path} is a directory, not a file') from None
    problem = image_problem(data)
    img = None
    if problem is None:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            problem = ('cannot be decoded by cv2: not an image, or corrupt '
                       f'({len(data)} bytes)')
    if problem is not None:
        raise ValueError(f'image {path} {problem}')
    return img
