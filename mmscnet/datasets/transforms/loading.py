"""``type='mmscnet.LoadImageFromFile'``: mmcv's image loader whose errors name
the file and what is wrong with it (see mmscnet/datasets/datacheck.py for the
whole list of data checks)."""
import struct

import mmcv
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log

from mmscnet.registry import TRANSFORMS

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


@TRANSFORMS.register_module()
class LoadImageFromFile(MMCVLoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` (same arguments and results) whose errors
    name the file and what is wrong with it."""

    def transform(self, results):
        # mmcv's deprecated path, as it is
        if self.file_client_args is not None:
            return super().transform(results)
        filename = results['img_path']
        try:
            data = fileio.get(filename, backend_args=self.backend_args)
            problem = image_problem(data)
        except FileNotFoundError:
            data, problem = None, 'does not exist'
        img = None
        if problem is None:
            img = mmcv.imfrombytes(
                data, flag=self.color_type, backend=self.imdecode_backend)
            if img is None:
                problem = (
                    f'cannot be decoded by {self.imdecode_backend}: not an '
                    f'image, or corrupt ({len(data)} bytes)')
        if problem is not None:
            if self.ignore_empty:
                print_log(
                    f'skipped image {filename}: it {problem}',
                    logger='current',
                    level=30)
                return None
            raise ValueError(
                f'image {filename} {problem}; fix or remove it (or set '
                'ignore_empty=True in LoadImageFromFile to skip such images)')
        if self.to_float32:
            img = img.astype('float32')
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
