"""``type='mmscnet.LoadImageFromFile'``: mmcv's image loader whose errors name
the file and what is wrong with it (see mmscnet/datasets/datacheck.py for the
whole list of data checks)."""
import mmcv
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log

from mmscnet.registry import TRANSFORMS
from mmscnet.utils.image_file import image_problem


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
