"""An exported graph in ONNX Runtime or OpenVINO as an mmengine model, so
that the config's own test loop, evaluator, dumps and painting hooks run
on it: ``tools/test.py CONFIG F.onnx --backend onnxruntime``.

Each test batch's images are read again from their files and go through
the runtime's own preprocessing (:mod:`.runtime.model`), not the test
pipeline's tensors: what is evaluated is what a deployment computes. The
library's adapter puts the runtime's results into the batch's data samples
as its ``predict`` would (``pred_instances``, ``pred_sem_seg``,
``pred_score`` and ``pred_label``)."""
from mmengine.model import BaseModel


class RuntimeModel(BaseModel):
    """The graph at ``graph_path`` in ``backend`` for the test loop of
    ``cfg`` (whose ``test_cfg`` and preprocessing must be those it was
    exported with), through ``adapter``."""

    def __init__(self, adapter, cfg, graph_path, backend, threads=None):
        super().__init__()
        from mmscnet.adapters.base import check_config_for_runtime
        from .runtime import ExportedModel
        if adapter.runtime_task is None:
            raise ValueError(
                '--backend takes mmdet, mmseg and mmpretrain configs: no '
                f'runtime for {adapter.scope} models yet')
        self.adapter = adapter
        self.runtime = ExportedModel(graph_path, backend, threads,
                                     adapter.runtime_task)
        check_config_for_runtime(adapter, cfg, self.runtime.spec, graph_path)

    def forward(self, *args, **kwargs):
        raise RuntimeError('an exported model runs through test_step')

    def test_step(self, data):
        samples = data['data_samples']
        results = self.runtime([s.img_path for s in samples])
        return self.adapter.runtime_samples(samples, results)

    val_step = test_step
