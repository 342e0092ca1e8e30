"""``tools/test.py --deploy``: ``type='mmscnet.DeployHook'``."""
from mmengine.hooks import Hook

from mmscnet.deploy import PRECISIONS, optimize, unfused_batchnorms
from mmscnet.registry import HOOKS


@HOOKS.register_module()
class DeployHook(Hook):
    """``tools/test.py --deploy``: optimizes the model once its checkpoint is
    loaded."""

    priority = 'VERY_HIGH'

    def __init__(self, precision='fp32', compile=False):
        if precision not in PRECISIONS:
            raise ValueError(
                f'--deploy must be one of {PRECISIONS}, got {precision!r}')
        self.precision = precision
        self.compile = compile

    def before_test(self, runner):
        from mmengine.model import is_model_wrapper
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        optimize(model, self.precision, compile=self.compile)
        left = unfused_batchnorms(model)
        runner.logger.info(
            f'deploy mode ({self.precision}): BatchNorm folded into the '
            'convs, channels_last' +
            ('; backbone compiled (inductor, frozen weights) on its first '
             'batch and on each '
             'new input shape' if self.compile else '') +
            (f'; {len(left)} BN layers not after a conv left as they are: '
             f'{left[:5]}' if left else ''))
