"""The interface every library adapter fills in."""
import torch


class Adapter:
    """How one downstream library does what the tools need.

    ``scope`` is the library's registry scope (a config's ``default_scope``);
    ``dump_metric`` the metric type that ``tools/test.py --out`` appends.
    """

    scope = None
    dump_metric = 'DumpResults'

    def show(self, cfg, hook, show_dir):
        """Turn on painting of every test image into ``show_dir`` through the
        config's ``default_hooks.visualization`` (``hook``, edited in place).
        """
        raise NotImplementedError

    def tta(self, cfg, config_path):
        """Make sure ``cfg`` has ``tta_model`` and ``tta_pipeline`` for
        ``--tta``.
        By default the config must carry both."""
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ValueError(
                f'{config_path}: --tta needs tta_model and tta_pipeline in '
                'the config')

    def prepare_model(self, model):
        """Called on the Runner's model once it is built (default: nothing)."""

    def inferencer(self, cfg, checkpoint, device, score_thr=0.3, **kwargs):
        """The library's own inferencer for ``cfg``, as a callable that takes
        image paths and returns (predictions, painted RGB images)."""
        raise NotImplementedError(f'no inferencer for {self.scope}')

    def dataset_classes(self, dataset_type):
        """The default class names of the library's dataset class
        ``dataset_type`` (its ``METAINFO``), or None."""
        return None

    def packed_batch(self, model, batch_size, shape, training):
        """A random batch of ``batch_size`` images of ``shape`` (H, W) with
        labels, in the library's packed format, through the model's data
        preprocessor (benchmark.py's whole-model rows)."""
        raise NotImplementedError(f'no benchmark batch for {self.scope}')


def random_images(batch_size, shape):
    h, w = shape
    return [
        torch.randint(0, 255, (3, h, w), dtype=torch.uint8)
        for _ in range(batch_size)
    ]
